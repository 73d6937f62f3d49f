package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// The cluster's secret key: inline secrets of a task spec are sealed with
// it before they enter Raft. The first leader makes it; every other node
// fetches it from a node that has it, over mutual TLS, and keeps it in
// its data directory (secret.KeyringFile, 0600).

// ensureKey makes the cluster's key (on a leader, when the cluster has
// none) or fetches it (when this node lacks the key the state names).
func ensureKey(ctx context.Context, coord *coordinator.Coordinator, kr *secret.Keyring, peers []string) error {
	id := coord.SecretKey()
	if id == "" {
		if !coord.IsLeader() {
			return nil
		}
		newID, err := kr.Generate()
		if err != nil {
			return fmt.Errorf("make the cluster's secret key: %w", err)
		}
		err = coord.Apply(ctx, coordinator.SetSecretKey{ID: newID})
		if errors.Is(err, coordinator.ErrKeyExists) {
			return nil // another leader made one: fetched next round
		}
		return err
	}
	if kr.Has(id) {
		return nil
	}
	return fetchKeyring(ctx, coord, kr, id, peers)
}

// fetchKeyring asks the leader, then each peer, for the cluster's keys.
func fetchKeyring(ctx context.Context, coord *coordinator.Coordinator, kr *secret.Keyring, id string, peers []string) error {
	var targets []string
	if n, ok := coord.Node(coord.Leader()); ok && n.API != "" {
		targets = append(targets, n.API)
	}
	targets = append(targets, peers...)
	client, scheme := coord.NodeHTTP()
	var errs []error
	for _, t := range targets {
		b, err := getKeyring(ctx, client, scheme+"://"+t+coordinator.KeyringPath)
		if err == nil {
			if err = kr.Import(b); err == nil && kr.Has(id) {
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
	}
	return fmt.Errorf("fetch the cluster's secret key %s: %w", id, errors.Join(errs...))
}

func getKeyring(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return b, nil
}

// sealer seals a spec's inline secrets with the cluster's current key.
// The key must be on a majority of the voters first (a key only this
// node holds would die with it, and with it every secret it sealed): right
// after a cluster's start the others fetch it within a second or two, so
// a spec with secrets waits for that, a spec without any does not.
func sealer(coord *coordinator.Coordinator, kr *secret.Keyring) func(*proto.TaskSpec) error {
	return func(s *proto.TaskSpec) error {
		ready := false
		return secret.SealSpec(s, func(v string) (string, error) {
			id := coord.SecretKey()
			if !ready {
				if err := waitKeyHeld(coord, kr, sealWait); err != nil {
					return "", err
				}
				id, ready = coord.SecretKey(), true
			}
			return kr.Seal(id, v)
		})
	}
}

// sealWait bounds how long sealing waits for the key to be held.
const sealWait = 15 * time.Second

// waitKeyHeld waits until the cluster names a key that this node and a
// majority of the voters hold.
func waitKeyHeld(coord *coordinator.Coordinator, kr *secret.Keyring, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		id := coord.SecretKey()
		if id != "" && kr.Has(id) && coord.KeyHeldByMajority(id, true) {
			return nil
		}
		if time.Now().After(deadline) {
			if id == "" {
				return errors.New("the cluster has no secret key yet; retry in a moment")
			}
			return fmt.Errorf("the cluster's secret key %s is not yet on a majority of the coordinators; retry in a moment", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
