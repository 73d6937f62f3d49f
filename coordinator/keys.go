package coordinator

import (
	"errors"
	"net/http"
)

// The cluster's secret key. The replicated state names the key inline
// secrets are sealed with (its id, never the key): the first leader makes
// one, and each node fetches the keys it lacks from the leader's internal
// endpoint, over mutual TLS. A rotation names a new key; values sealed
// with the old one open with it until they are sealed again.

// CmdSetSecretKey names the cluster's current secret key.
const CmdSetSecretKey CommandType = 23

// SetSecretKey makes key ID the one new secrets are sealed with. Without
// Rotate it is refused (ErrKeyExists) once a key is named, so two leaders
// racing at a cluster's start name one between them.
type SetSecretKey struct {
	ID     string `json:"id"`
	Rotate bool   `json:"rotate,omitempty"`
}

func (SetSecretKey) Type() CommandType { return CmdSetSecretKey }

// ErrKeyExists: the cluster names a secret key already.
var ErrKeyExists = errors.New("the cluster has a secret key already")

func init() { register(applySetSecretKey) }

func applySetSecretKey(d *data, _ uint64, cmd *SetSecretKey) error {
	if len(cmd.ID) != 16 {
		return errors.New("set secret key: bad id")
	}
	if d.SecretKey != "" && !cmd.Rotate {
		return ErrKeyExists
	}
	d.SecretKey = cmd.ID
	return nil
}

// SecretKey is the id of the key new secrets are sealed with ("" until
// the first leader made one).
func (s *Store) SecretKey() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.SecretKey
}

// SecretKey reads the local state.
func (c *Coordinator) SecretKey() string { return c.store.SecretKey() }

// keyringPath is where nodes fetch the cluster's keys.
const keyringPath = internalPrefix + "keyring"

// KeyringPath is the internal endpoint of the cluster's keys.
const KeyringPath = keyringPath

func (a *api) keyring(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Keyring == nil {
		a.fail(w, http.StatusNotFound, "this node holds no keyring", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(a.opts.Keyring())
}
