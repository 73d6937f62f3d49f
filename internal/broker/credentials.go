package broker

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicedb/sluice/internal/atomicfile"
)

// CredentialsFile is the name, in a node's data directory, of the file
// holding the user and password of its embedded broker.
const CredentialsFile = "nats-credentials.json"

// CredentialsUser is the user LoadOrCreateCredentials and NewCredentials
// make.
const CredentialsUser = "sluice"

// Credentials are the user and password every client of a broker must
// present (unless it is a node authorized by its certificate).
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// String keeps the password out of logs and error messages.
func (c Credentials) String() string {
	if c.Password == "" {
		return fmt.Sprintf("{user %q, no password}", c.User)
	}
	return fmt.Sprintf("{user %q, password redacted}", c.User)
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

func (c Credentials) valid() bool { return c.User != "" && c.Password != "" }

// NewCredentials makes fresh credentials (user CredentialsUser and a
// random 32-byte password, base64url without padding) without storing
// them: for a broker whose clients all live in this process.
func NewCredentials() (Credentials, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return Credentials{}, fmt.Errorf("broker: generate password: %w", err)
	}
	return Credentials{User: CredentialsUser, Password: base64.RawURLEncoding.EncodeToString(b[:])}, nil
}

// LoadOrCreateCredentials reads <dataDir>/nats-credentials.json or, when
// it does not exist, makes new credentials (NewCredentials) and writes
// them there with mode 0600 (a temporary file renamed into place, so a
// reader never sees half a file), creating dataDir with mode 0700 if it
// is missing. A file readable by group or others is refused: its password
// would open the broker to every local user.
func LoadOrCreateCredentials(dataDir string) (Credentials, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	c, err := readCredentials(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, err
	}
	if c, err = NewCredentials(); err != nil {
		return Credentials{}, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Credentials{}, fmt.Errorf("broker: credentials: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return Credentials{}, err
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("broker: write %s: %w", path, err)
	}
	return c, nil
}

func readCredentials(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Credentials{}, err
		}
		return Credentials{}, fmt.Errorf("broker: credentials: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Credentials{}, fmt.Errorf("broker: credentials: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Credentials{}, fmt.Errorf("broker: credentials: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return Credentials{}, fmt.Errorf("broker: credentials file %s has mode %04o, readable by group or others: run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return Credentials{}, fmt.Errorf("broker: read %s: %w", path, err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return Credentials{}, fmt.Errorf("broker: parse %s: %w", path, err)
	}
	if !c.valid() {
		return Credentials{}, fmt.Errorf("broker: %s: user and password must both be set", path)
	}
	return c, nil
}
