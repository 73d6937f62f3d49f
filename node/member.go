package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/secret"
)

// member keeps this node in the cluster: it registers the node with the
// leader (which also adds it to Raft when it joins a running cluster) and
// heartbeats, so the leader knows it is alive and the worker knows it may
// run its units.
type member struct {
	cfg      ClusterConfig
	coord    *coordinator.Coordinator
	worker   *Worker
	logger   *slog.Logger
	failover time.Duration

	registered atomic.Bool
	// apiAddr is the address the API listens on (for the client config).
	apiAddr string
	keyring *secret.Keyring
	// slots, on the leader, are its measurements of the tasks' slots,
	// sent with its heartbeat's live figures (nil: none).
	slots  func() map[string]coordinator.SlotLive
	keyErr string // the last key error logged, so it is logged once
}

// peerAPIs are the peers' API addresses.
func (m *member) peerAPIs() []string {
	var out []string
	for _, p := range m.cfg.Peers {
		if p.API != "" {
			out = append(out, p.API)
		}
	}
	return out
}

// memberCallTimeout bounds a registration or heartbeat call.
const memberCallTimeout = 5 * time.Second

// beatEvery: several heartbeats fit in the failover timeout, so one lost
// packet or a short election does not make the node look dead.
func (m *member) beatEvery() time.Duration {
	return min(max(m.failover/6, 100*time.Millisecond), time.Second)
}

func (m *member) run(ctx context.Context) {
	tick := time.NewTicker(m.beatEvery())
	defer tick.Stop()
	for {
		if !m.registered.Load() {
			if err := m.register(ctx); err != nil {
				m.logger.Debug("cannot register with the cluster yet", "err", err)
			} else {
				m.registered.Store(true)
				m.logger.Info("registered with the cluster", "leader", m.coord.Leader())
			}
		}
		if created, err := bootstrapAdmin(ctx, &m.cfg, m.coord); err != nil {
			m.logger.Debug("cannot make the cluster's first admin token yet", "err", err)
		} else if created {
			if path, err := writeClientEntry(&m.cfg, m.coord, m.apiAddr); err != nil {
				m.logger.Warn("cannot write the client config", "err", err)
			} else {
				m.logger.Info("made the cluster's first admin token", "token_file", filepath.Join(m.cfg.DataDir, AdminTokenFile), "client_config", path)
			}
		}
		if err := ensureKey(ctx, m.coord, m.keyring, m.peerAPIs()); err != nil {
			if err.Error() != m.keyErr {
				m.logger.Warn("the cluster's secret key is not here yet", "err", err)
			}
			m.keyErr = err.Error()
		} else {
			m.keyErr = ""
		}
		if m.registered.Load() {
			err := m.heartbeat(ctx)
			switch {
			case err == nil:
			case errors.Is(err, coordinator.ErrNodeNotFound):
				m.registered.Store(false) // removed, or a new leader's state lacks it
			default:
				m.logger.Debug("heartbeat failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitReady waits until Raft has a leader, this node's state has caught
// up with it, and the node is registered.
func (m *member) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.registered.Load() && m.coord.Leader() != "" {
			if _, ok := m.coord.Node(m.cfg.ID); ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s did not join the cluster (no Raft leader, or no peer answered): %w", m.cfg.ID, ctx.Err())
		case <-tick.C:
		}
	}
}

func (m *member) self() coordinator.Node {
	return coordinator.Node{ID: m.cfg.ID, API: m.cfg.API, Raft: m.cfg.Raft, Roles: m.cfg.Roles, Pool: m.cfg.Pool, Capacity: m.cfg.Capacity}
}

func (m *member) register(ctx context.Context) error {
	if m.coord.IsLeader() {
		return m.coord.Apply(ctx, coordinator.RegisterNode{Node: m.self(), At: time.Now()})
	}
	return m.post(ctx, coordinator.RegisterPath, m.self(), nil)
}

func (m *member) heartbeat(ctx context.Context) error {
	hb := coordinator.Heartbeat{Node: m.cfg.ID, Units: m.worker.Health(), Keys: m.keyring.IDs(), Live: m.worker.LiveReport()}
	if m.coord.IsLeader() {
		hb.Live = withSlots(hb.Live, m.slots)
		if _, ok := m.coord.Node(m.cfg.ID); !ok {
			return coordinator.ErrNodeNotFound
		}
		if err := m.coord.Heartbeat(hb); err != nil {
			return err
		}
		m.worker.Beat(m.coord.Index())
		return nil
	}
	var reply coordinator.HeartbeatReply
	if err := m.post(ctx, coordinator.HeartbeatPath, hb, &reply); err != nil {
		return err
	}
	m.worker.Beat(reply.Index)
	return nil
}

// withSlots adds the leader's slot measurements to its live figures (a
// task whose units run elsewhere gets an entry of its own).
func withSlots(live []coordinator.TaskLive, slots func() map[string]coordinator.SlotLive) []coordinator.TaskLive {
	if slots == nil {
		return live
	}
	for name, s := range slots() {
		live = append(live, coordinator.TaskLive{Task: name, Slot: &s})
	}
	return live
}

// post sends a request to the leader's API, as the local state knows it,
// else to each peer's API in turn (they forward to the leader). A node
// still joining has no state yet, so the peers are its way in.
func (m *member) post(ctx context.Context, path string, body, reply any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var targets []string
	if id := m.coord.Leader(); id != "" {
		if n, ok := m.coord.Node(id); ok {
			targets = append(targets, n.API)
		}
	}
	for _, p := range m.cfg.Peers {
		if p.API != "" {
			targets = append(targets, p.API)
		}
	}
	if len(targets) == 0 {
		return errors.New("no leader known and no peer api configured")
	}
	var errs []error
	for _, t := range targets {
		err := m.postTo(ctx, t, path, payload, reply)
		if err == nil || errors.Is(err, coordinator.ErrNodeNotFound) {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (m *member) postTo(ctx context.Context, target, path string, payload []byte, reply any) error {
	client, scheme := m.coord.NodeHTTP()
	rctx, cancel := context.WithTimeout(ctx, memberCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, scheme+"://"+target+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode < 300:
		if reply != nil && len(msg) > 0 {
			return json.Unmarshal(msg, reply)
		}
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return coordinator.ErrNodeNotFound
	default:
		return fmt.Errorf("%s%s: %s: %s", target, path, resp.Status, bytes.TrimSpace(msg))
	}
}
