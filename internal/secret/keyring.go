package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/sluicedb/sluice/internal/atomicfile"
)

// The keyring: AES-256-GCM keys by id, kept in a node's data directory
// (KeyringFile, mode 0600) and shared by the cluster's nodes over their
// mutual-TLS internal endpoint, never through Raft. The replicated state
// names the current key; sealed values name theirs, so a rotated key goes
// on opening what it sealed until every value is sealed again.

// KeyringFile is the keyring's file in a data directory.
const KeyringFile = "secrets.keyring"

// sealVersion prefixes a sealed value's argument.
const sealVersion = "v1"

// Keyring is one node's keys.
type Keyring struct {
	mu   sync.Mutex
	path string
	keys map[string][]byte
}

type keyringFile struct {
	Keys map[string]string `json:"keys"` // id -> base64 key
}

// known is every key this process has loaded, for Unseal: a process may
// hold several nodes (tests), each with its keyring.
var known struct {
	mu   sync.RWMutex
	keys map[string][]byte
}

func remember(id string, key []byte) {
	known.mu.Lock()
	defer known.mu.Unlock()
	if known.keys == nil {
		known.keys = map[string][]byte{}
	}
	known.keys[id] = key
}

// OpenKeyring reads dir's keyring (an empty one when it has none yet). A
// file others may read is refused.
func OpenKeyring(dir string) (*Keyring, error) {
	k := &Keyring{path: filepath.Join(dir, KeyringFile), keys: map[string][]byte{}}
	fi, err := os.Stat(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring %s is mode %o: others may read the cluster's key; chmod 600 it", k.path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, err
	}
	if err := k.merge(b); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", k.path, err)
	}
	return k, nil
}

// merge adds the keys of an encoded keyring.
func (k *Keyring) merge(b []byte) error {
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, enc := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 || !validKeyID(id) {
			return fmt.Errorf("key %q is not a 256-bit key", id)
		}
		k.keys[id] = key
		remember(id, key)
	}
	return nil
}

func validKeyID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Generate adds a new random key, saves the keyring and returns its id.
func (k *Keyring) Generate() (string, error) {
	var key [32]byte
	var id [8]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	kid := hex.EncodeToString(id[:])
	k.mu.Lock()
	k.keys[kid] = key[:]
	k.mu.Unlock()
	remember(kid, key[:])
	return kid, k.save()
}

// Has reports whether the keyring holds key id.
func (k *Keyring) Has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.keys[id]
	return ok
}

// IDs lists the keys held.
func (k *Keyring) IDs() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.keys))
	for id := range k.keys {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Export encodes the keyring, for another node of the cluster (over
// mutual TLS only).
func (k *Keyring) Export() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := keyringFile{Keys: map[string]string{}}
	for id, key := range k.keys {
		f.Keys[id] = base64.StdEncoding.EncodeToString(key)
	}
	b, _ := json.Marshal(f)
	return b
}

// Import adds another node's keys and saves the keyring.
func (k *Keyring) Import(b []byte) error {
	if err := k.merge(b); err != nil {
		return fmt.Errorf("keyring from the cluster: %w", err)
	}
	return k.save()
}

func (k *Keyring) save() error { return atomicfile.Write(k.path, k.Export(), 0o600) }

// Seal encrypts a secret with key id and returns the reference that
// replaces it: ${sealed:v1:<id>:<nonce and ciphertext, base64url>}.
func (k *Keyring) Seal(id, plaintext string) (string, error) {
	k.mu.Lock()
	key, ok := k.keys[id]
	k.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("the cluster's key %s is not on this node yet; retry in a moment", id)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := aead.Seal(nonce, nonce, []byte(plaintext), []byte(id))
	return refOpen + "sealed:" + sealVersion + ":" + id + ":" + base64.RawURLEncoding.EncodeToString(sealed) + "}", nil
}

// ErrNoKey: a sealed value names a key this process does not hold.
var ErrNoKey = errors.New("the key that sealed this secret is not on this node")

// Unseal opens the argument of a ${sealed:...} reference with the keys
// this process holds.
func Unseal(arg string) (string, error) {
	parts := strings.SplitN(arg, ":", 3)
	if len(parts) != 3 || parts[0] != sealVersion {
		return "", fmt.Errorf("%w: a sealed value must be ${sealed:%s:<key>:<data>}", ErrReference, sealVersion)
	}
	id := parts[1]
	known.mu.RLock()
	key, ok := known.keys[id]
	known.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("%w (key %s): it comes from the cluster's keyring, which this node fetches from the leader", ErrNoKey, id)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", fmt.Errorf("%w: sealed data: %w", ErrReference, err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(data) < aead.NonceSize() {
		return "", fmt.Errorf("%w: sealed data too short", ErrReference)
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
	if err != nil {
		return "", fmt.Errorf("%w: sealed data does not open with key %s (damaged, or sealed elsewhere)", ErrReference, id)
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// IsSealed reports whether s holds a sealed value.
func IsSealed(s string) bool { return strings.Contains(s, refOpen+"sealed:") }
