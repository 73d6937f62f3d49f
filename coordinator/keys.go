package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sluicedb/sluice/proto"
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

// KeyringPath is where nodes fetch the cluster's keys.
const KeyringPath = internalPrefix + "keyring"

func (a *api) keyring(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Keyring == nil {
		a.fail(w, http.StatusNotFound, "this node holds no keyring", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(a.opts.Keyring())
}

// CmdResealTask replaces a task's sealed secrets (after a key rotation).
const CmdResealTask CommandType = 24

// ResealTask gives a task its secrets sealed again, with the current key:
// the fields that may hold secrets, whole. Destination maps the
// destination's secret fields by name (proto.SecretField.Name).
type ResealTask struct {
	Name        string            `json:"name"`
	SourceDSN   string            `json:"source_dsn"`
	Destination map[string]string `json:"destination,omitempty"`
	Webhook     string            `json:"webhook,omitempty"`

	// Entries written before destinations named their secret fields
	// carry them here; they read as Destination["dsn"],
	// Destination["sasl.password"] and Destination["schema_registry"].
	LegacyDestinationDSN string `json:"destination_dsn,omitempty"`
	LegacySASLPassword   string `json:"sasl_password,omitempty"`
	LegacySchemaRegistry string `json:"schema_registry,omitempty"`
}

// destinationSecrets are the command's destination fields by name, the
// legacy ones included.
func (c *ResealTask) destinationSecrets() map[string]string {
	out := map[string]string{}
	for name, v := range map[string]string{"dsn": c.LegacyDestinationDSN, "sasl.password": c.LegacySASLPassword, "schema_registry": c.LegacySchemaRegistry} {
		if v != "" {
			out[name] = v
		}
	}
	for name, v := range c.Destination {
		out[name] = v
	}
	return out
}

func (ResealTask) Type() CommandType { return CmdResealTask }

func init() { register(applyResealTask) }

func applyResealTask(d *data, index uint64, cmd *ResealTask) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	t.Spec.Source.DSN = cmd.SourceDSN
	if cfg := t.Spec.Destination.Config; cfg != nil {
		secrets := cmd.destinationSecrets()
		for _, f := range cfg.Secrets() {
			*f.Value = secrets[f.Name]
		}
	}
	if t.Spec.Alerts != nil {
		a := *t.Spec.Alerts
		a.Webhook = cmd.Webhook
		t.Spec.Alerts = &a
	}
	t.ModifyIndex = index
	return nil
}

// rotationWait bounds how long a rotation waits for a majority of the
// voters to hold the new key.
const rotationWait = 30 * time.Second

// KeyRotation is the answer of POST /api/v1/keys/rotate.
type KeyRotation struct {
	Key      string   `json:"key"`
	Resealed []string `json:"resealed"`
}

// rotateKey makes a new secret key the cluster's current one and seals
// every task's secrets again with it. The old keys stay in the keyring
// files, so values they sealed (in older Raft entries, say) still open.
func (a *api) rotateKey(w http.ResponseWriter, r *http.Request) {
	if a.opts.NewKey == nil || a.opts.Seal == nil || a.opts.Unseal == nil {
		a.fail(w, http.StatusNotFound, "this node holds no keyring", nil)
		return
	}
	if !a.c.IsLeader() {
		a.failNotLeader(w)
		return
	}
	// Every task's secrets must open before anything changes.
	tasks := a.c.Tasks()
	open := make([]proto.TaskSpec, len(tasks))
	for i, t := range tasks {
		s, err := a.unsealed(t.Spec)
		if err != nil {
			a.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("task %s's secrets do not open here: %v", t.Spec.Name, err), nil)
			return
		}
		open[i] = s
	}
	id, err := a.opts.NewKey()
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "make a key: "+err.Error(), nil)
		return
	}
	if err := a.c.Apply(r.Context(), SetSecretKey{ID: id, Rotate: true}); err != nil {
		a.applyFailed(w, err)
		return
	}
	out := KeyRotation{Key: id, Resealed: []string{}}
	for _, s := range open {
		// The nodes fetch the new key within a second of the state
		// naming it; it seals once a majority of the voters hold it.
		var sealed proto.TaskSpec
		deadline := time.Now().Add(rotationWait)
		for {
			sealed = s.Clone()
			err := a.opts.Seal(&sealed)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || r.Context().Err() != nil {
				a.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("key %s is the cluster's now, but task %s's secrets could not be sealed with it (%v): run sluice key rotate again once the nodes are up", id, s.Name, err), nil)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		cmd := ResealTask{Name: s.Name, SourceDSN: sealed.Source.DSN, Destination: map[string]string{}}
		if cfg := sealed.Destination.Config; cfg != nil {
			for _, f := range cfg.Secrets() {
				if *f.Value != "" {
					cmd.Destination[f.Name] = *f.Value
				}
			}
		}
		if sealed.Alerts != nil {
			cmd.Webhook = sealed.Alerts.Webhook
		}
		if err := a.c.Apply(r.Context(), cmd); err != nil && !errors.Is(err, ErrTaskNotFound) {
			a.applyFailed(w, err)
			return
		}
		out.Resealed = append(out.Resealed, s.Name)
	}
	a.logger.Info("secret key rotated", "key", id, "tasks", len(out.Resealed))
	a.reply(w, http.StatusOK, out)
}

// RotateKey makes a new secret key and seals every task's secrets with it.
func (c *Client) RotateKey(ctx context.Context) (*KeyRotation, error) {
	var out KeyRotation
	if err := c.do(ctx, http.MethodPost, "/api/v1/keys/rotate", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
