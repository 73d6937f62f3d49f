// Package coordinator holds Sluice's replicated state (a hashicorp/raft
// FSM of tasks; nodes and assignments come with clustering) and the HTTP
// API that reads and writes it.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// Config configures a coordinator. Open fills defaults and validates it.
type Config struct {
	// NodeID is this voter's Raft server ID; default "node1". It must stay
	// the same across restarts on one DataDir.
	NodeID string
	// DataDir holds Raft's files, in DataDir/raft. Required.
	DataDir string
	// BindAddr is the Raft TCP transport address, such as 127.0.0.1:7421.
	// Required; it must be an address other nodes can reach (not 0.0.0.0).
	// Port 0 picks a free port.
	BindAddr string
	// Bootstrap makes a one-voter cluster of this node when DataDir has no
	// Raft state yet. Without it a new node waits to be added.
	Bootstrap bool
	// Logger receives the coordinator's and Raft's logs; default: none.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" {
		c.NodeID = "node1"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DataDir == "" {
		return errors.New("coordinator: DataDir is required")
	}
	if c.BindAddr == "" {
		return errors.New("coordinator: BindAddr is required (the Raft address, e.g. 127.0.0.1:7421)")
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("coordinator: BindAddr %q: %w", c.BindAddr, err)
	}
	return nil
}

// Raft timers. Raft's defaults (1 s) suit WAN-ish clusters; a one-voter
// cluster elects itself after one heartbeat timeout, so short timers make
// `sluice up` and the tests ready fast. The cluster issue should revisit
// them for multi-voter clusters on real networks.
const (
	heartbeatTimeout   = 200 * time.Millisecond
	electionTimeout    = 200 * time.Millisecond
	leaderLeaseTimeout = 100 * time.Millisecond
	commitTimeout      = 10 * time.Millisecond
	snapshotsRetained  = 2
	transportPool      = 3
	transportTimeout   = 10 * time.Second
)

// ErrNotLeader: a write went to a node that is not the Raft leader (or lost
// leadership before the write committed). The caller may retry on the
// leader.
var ErrNotLeader = errors.New("coordinator: not the Raft leader")

// Coordinator is one Raft voter with the replicated state.
type Coordinator struct {
	cfg       Config
	logger    *slog.Logger
	store     *Store
	raft      *raft.Raft
	wal       *raftwal.WAL
	meta      *metadb.BoltMetaDB
	dirLock   io.Closer
	transport *raft.NetworkTransport

	shutdownOnce sync.Once
	shutdownErr  error
}

// Open opens (or creates) the Raft state in cfg.DataDir and starts Raft.
// It returns once Raft runs; call WaitLeader before writing.
func Open(cfg Config) (*Coordinator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "coordinator")
	hlog := newHCLogger(cfg.Logger)

	raftDir := filepath.Join(cfg.DataDir, "raft")
	walDir := filepath.Join(raftDir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	// Two processes on one DataDir would corrupt it; bbolt's own lock would
	// make the second wait forever instead of saying why.
	dirLock, err := lockDir(raftDir)
	if err != nil {
		return nil, err
	}
	// raft-wal is both the log store and the stable store (term, vote). We
	// hold its meta store ourselves because WAL.Close (v0.4.0) does not
	// close it, and its file lock would block a reopen in this process.
	meta := &metadb.BoltMetaDB{}
	wal, err := raftwal.Open(walDir, raftwal.WithMetaStore(meta), raftwal.WithLogger(hlog.Named("wal")))
	if err != nil {
		_ = meta.Close()
		_ = dirLock.Close()
		return nil, fmt.Errorf("coordinator: open Raft log in %s: %w", walDir, err)
	}
	closeStores := func() {
		_ = wal.Close()
		_ = meta.Close()
		_ = dirLock.Close()
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("coordinator: open snapshot store in %s: %w", raftDir, err)
	}
	transport, err := raft.NewTCPTransportWithLogger(cfg.BindAddr, nil, transportPool, transportTimeout, hlog.Named("transport"))
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("coordinator: Raft transport on %s: %w", cfg.BindAddr, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = heartbeatTimeout
	rc.ElectionTimeout = electionTimeout
	rc.LeaderLeaseTimeout = leaderLeaseTimeout
	rc.CommitTimeout = commitTimeout

	c := &Coordinator{
		cfg:       cfg,
		logger:    logger,
		store:     NewStore(),
		wal:       wal,
		meta:      meta,
		dirLock:   dirLock,
		transport: transport,
	}
	closeAll := func() {
		_ = transport.Close()
		closeStores()
	}

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(wal, wal, snaps)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("coordinator: read Raft state: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter,
				ID:       rc.LocalID,
				Address:  transport.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, wal, wal, snaps, transport, conf); err != nil {
				closeAll()
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
			logger.Info("bootstrapped a one-voter cluster", "node_id", cfg.NodeID, "raft_addr", string(transport.LocalAddr()))
		}
	}

	r, err := raft.NewRaft(rc, &fsm{store: c.store, logger: logger}, wal, wal, snaps, transport)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("coordinator: start Raft: %w", err)
	}
	c.raft = r
	logger.Info("raft started", "node_id", cfg.NodeID, "raft_addr", string(transport.LocalAddr()), "dir", raftDir)
	return c, nil
}

// RaftAddr is the address the Raft transport listens on (useful with port 0).
func (c *Coordinator) RaftAddr() string { return string(c.transport.LocalAddr()) }

// Leader returns the leader's server ID, "" when none is known.
func (c *Coordinator) Leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the leader.
func (c *Coordinator) IsLeader() bool { return c.raft.State() == raft.Leader }

// WaitLeader waits until a leader is known. On the leader it also waits
// until every entry committed before is applied (a Raft barrier), so that
// reads after it see the whole state, as after a restart, where the log is
// replayed only once the new leader commits.
func (c *Coordinator) WaitLeader(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.Leader() != "" {
			if !c.IsLeader() {
				return nil
			}
			err := waitFuture(ctx, c.raft.Barrier(0))
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("coordinator: waiting for the Raft log to be applied: %w", ctx.Err())
			}
			// Leadership changed during the barrier: look again.
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator: waiting for a Raft leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Apply proposes a command and waits until it is applied. It returns the
// handler's error (errors.Is(err, ErrTaskExists) works), ErrNotLeader on a
// follower, or ctx's error. When ctx ends first the command may still be
// applied later: callers that retry must be idempotent or re-read the state.
func (c *Coordinator) Apply(ctx context.Context, cmd Command) error {
	entry, err := Encode(cmd)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var timeout time.Duration // bounds only the enqueueing in Raft
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := c.raft.Apply(entry, timeout)
	if err := waitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return fmt.Errorf("coordinator: apply %s: %w", commandName(cmd.Type()), err)
	}
	if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// waitFuture waits for a Raft future or ctx. Raft futures cannot be
// cancelled; the goroutine ends when Raft resolves the future (at the
// latest on shutdown).
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Task returns a copy of the named task.
func (c *Coordinator) Task(name string) (Task, bool) { return c.store.Task(name) }

// Tasks returns copies of all tasks, sorted by name.
func (c *Coordinator) Tasks() []Task { return c.store.Tasks() }

// Changed returns a channel closed at the next state change; see
// Store.Changed.
func (c *Coordinator) Changed() <-chan struct{} { return c.store.Changed() }

// Shutdown stops Raft and closes its files. It is safe to call twice.
func (c *Coordinator) Shutdown() error {
	c.shutdownOnce.Do(func() {
		// Raft first (it writes to the stores), then what it used.
		errs := []error{c.raft.Shutdown().Error()}
		errs = append(errs, c.transport.Close(), c.wal.Close(), c.meta.Close(), c.dirLock.Close())
		c.shutdownErr = errors.Join(errs...)
		if c.shutdownErr != nil {
			c.shutdownErr = fmt.Errorf("coordinator: shutdown: %w", c.shutdownErr)
		}
		c.logger.Info("raft stopped")
	})
	return c.shutdownErr
}
