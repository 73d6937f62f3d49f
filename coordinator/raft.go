// Package coordinator holds Sluice's replicated state (a hashicorp/raft
// FSM of tasks; nodes and assignments come with clustering) and the HTTP
// API that reads and writes it.
package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	// Bootstrap makes a cluster of this node and Voters when DataDir has
	// no Raft state yet. Every initial coordinator bootstraps with the same
	// voter ids, so it does not matter which starts first. Without it a
	// new node waits to be added (see Join).
	Bootstrap bool
	// Voters are the other initial voters (id and Raft address).
	Voters []Peer
	// Resolve, when set, gives the address at which this node reaches a
	// peer's Raft (its own view, which may differ from the address the
	// peer advertises, e.g. through a proxy); "" falls back to the
	// address in the Raft configuration.
	Resolve func(id string) string
	// Timers overrides the Raft timers; zero picks defaults for one voter
	// or for several.
	HeartbeatTimeout time.Duration
	// TLS, when set, runs the Raft transport over mutual TLS: Server for
	// the listener (client certificates required and verified), Client for
	// dialing a peer (its certificate checked against the dialed host).
	TLS *TransportTLS
	// Logger receives the coordinator's and Raft's logs; default: none.
	Logger *slog.Logger
	// NodeTLS, when set, is the client side of mutual TLS for calls to
	// other nodes' APIs (forwarded commands and requests): https with
	// this node's certificate. Nil: plain http (a node without tls).
	NodeTLS *tls.Config
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

// TransportTLS holds the TLS configs of the Raft transport (see
// Config.TLS). Server must use tls.RequireAndVerifyClientCert; Client
// returns the config for dialing a peer whose certificate must be valid
// for serverName (the host of the peer's Raft address).
type TransportTLS struct {
	Server *tls.Config
	Client func(serverName string) *tls.Config
}

// Peer is another coordinator.
type Peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// Raft timers. A one-voter cluster elects itself after one heartbeat
// timeout, so short timers make `sluice up` and the tests ready fast.
// Several voters sharing busy machines with PostgreSQL need more slack
// against needless elections, yet a lost leader must be replaced well
// within the failover budget (10 s by default): an election takes one to
// two heartbeat timeouts.
const (
	soloHeartbeatTimeout  = 200 * time.Millisecond
	multiHeartbeatTimeout = time.Second
	commitTimeout         = 10 * time.Millisecond
	snapshotsRetained     = 2
	transportPool         = 3
	transportTimeout      = 10 * time.Second
)

// ErrNotLeader: a write went to a node that is not the Raft leader (or lost
// leadership before the write committed). The caller may retry on the
// leader.
var ErrNotLeader = errors.New("coordinator: not the Raft leader")

// errNotApplied marks an ErrNotLeader whose command certainly did not
// enter the Raft log (no leader took it, or none could be reached), so
// sending it again cannot apply it twice. Without it, an ErrNotLeader may
// hide a command the next leader still commits.
var errNotApplied = errors.New("the command was not applied")

// errNotLeaderNotApplied: refused by a node that checked first that it
// does not lead.
var errNotLeaderNotApplied = fmt.Errorf("%w: %w", ErrNotLeader, errNotApplied)

// Coordinator is one Raft voter with the replicated state.
type Coordinator struct {
	cfg       Config
	logger    *slog.Logger
	store     *Store
	beats     heartbeats
	live      liveCache // a follower's copy of the leader's live figures
	history   taskHistory
	raft      *raft.Raft
	wal       *raftwal.WAL
	meta      *metadb.BoltMetaDB
	dirLock   io.Closer
	transport *raft.NetworkTransport

	// nodeHTTP calls other nodes' APIs (mutual TLS with Config.NodeTLS).
	nodeHTTP *http.Client

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
	// v0.4.1 at least: v0.4.0 marks the tail sealed when Raft clears a log
	// suffix without writing its index, and the node then panics at its
	// next start ("sealed segment has no index block", raft-wal#31).
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
	tcfg := &raft.NetworkTransportConfig{MaxPool: transportPool, Timeout: transportTimeout, Logger: hlog.Named("transport")}
	if cfg.Resolve != nil {
		self, resolve := cfg.NodeID, cfg.Resolve
		tcfg.ServerAddressProvider = resolver(func(id string) string {
			if id == self {
				return cfg.BindAddr
			}
			return resolve(id)
		})
	}
	var transport *raft.NetworkTransport
	if cfg.TLS != nil {
		var layer *tlsStreamLayer
		if layer, err = newTLSStreamLayer(cfg.BindAddr, nil, cfg.TLS.Server, cfg.TLS.Client); err == nil {
			tcfg.Stream = layer
			transport = raft.NewNetworkTransportWithConfig(tcfg)
		}
	} else {
		transport, err = raft.NewTCPTransportWithConfig(cfg.BindAddr, nil, tcfg)
	}
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("coordinator: Raft transport on %s: %w", cfg.BindAddr, err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	hb := cfg.HeartbeatTimeout
	if hb == 0 {
		hb = soloHeartbeatTimeout
		if len(cfg.Voters) > 0 || !cfg.Bootstrap {
			hb = multiHeartbeatTimeout
		}
	}
	rc.HeartbeatTimeout = hb
	rc.ElectionTimeout = hb
	rc.LeaderLeaseTimeout = hb / 2
	rc.CommitTimeout = commitTimeout

	c := &Coordinator{
		cfg:       cfg,
		logger:    logger,
		store:     NewStore(),
		beats:     heartbeats{seen: map[string]time.Time{}, units: map[string][]UnitHealth{}},
		wal:       wal,
		meta:      meta,
		dirLock:   dirLock,
		transport: transport,
		nodeHTTP:  newNodeHTTP(cfg.NodeTLS),
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
			// Record this node under its configured address (a host name
			// stays a name, as the peers list it), unless it asked for a
			// free port.
			self := raft.ServerAddress(cfg.BindAddr)
			if _, port, _ := net.SplitHostPort(cfg.BindAddr); port == "0" {
				self = transport.LocalAddr()
			}
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter,
				ID:       rc.LocalID,
				Address:  self,
			}}}
			for _, p := range cfg.Voters {
				conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			}
			if err := raft.BootstrapCluster(rc, wal, wal, snaps, transport, conf); err != nil {
				closeAll()
				return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
			}
			logger.Info("bootstrapped the Raft cluster", "node_id", cfg.NodeID, "raft_addr", string(transport.LocalAddr()), "voters", len(conf.Servers))
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

// nodeCallTimeout bounds one call to another node's API.
const nodeCallTimeout = 30 * time.Second

func newNodeHTTP(tc *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		tr.TLSClientConfig = tc.Clone()
	}
	return &http.Client{Timeout: nodeCallTimeout, Transport: tr}
}

// nodeScheme is how this node calls other nodes' APIs.
func (c *Coordinator) nodeScheme() string {
	if c.cfg.NodeTLS != nil {
		return "https"
	}
	return "http"
}

// NodeHTTP is the client and URL scheme for calls to other nodes' APIs
// (mutual TLS when the node has tls).
func (c *Coordinator) NodeHTTP() (*http.Client, string) { return c.nodeHTTP, c.nodeScheme() }

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

// Apply proposes a command and waits until it is applied here. On a
// follower it sends the command to the leader (see forward) and waits
// until the local state has caught up with it, so a read after Apply sees
// the write. It returns the handler's error (errors.Is(err, ErrTaskExists)
// works), ErrNotLeader when no leader can take it, or ctx's error. When
// ctx ends first the command may still be applied later: callers that
// retry must be idempotent or re-read the state.
func (c *Coordinator) Apply(ctx context.Context, cmd Command) error {
	if !c.IsLeader() && c.Leader() != "" {
		return c.forward(ctx, cmd)
	}
	_, err := c.applyLocal(ctx, cmd)
	return err
}

// applyLocal proposes cmd to this node's Raft (the leader) and returns
// the entry's index.
func (c *Coordinator) applyLocal(ctx context.Context, cmd Command) (uint64, error) {
	entry, err := Encode(cmd)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var timeout time.Duration // bounds only the enqueueing in Raft
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := c.raft.Apply(entry, timeout)
	if err := waitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			// Refused before it entered the log: never applied.
			return 0, fmt.Errorf("%w: %w: %w", ErrNotLeader, errNotApplied, err)
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			// In the log, maybe committed by the next leader: unknown.
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, fmt.Errorf("coordinator: apply %s: %w", commandName(cmd.Type()), err)
	}
	if err, ok := f.Response().(error); ok {
		return f.Index(), err
	}
	return f.Index(), nil
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

// resolver adapts a lookup function to raft.ServerAddressProvider.
type resolver func(id string) string

func (r resolver) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if addr := r(string(id)); addr != "" {
		return raft.ServerAddress(addr), nil
	}
	return "", fmt.Errorf("no address configured for %s", id)
}

// Join adds a node to the Raft configuration, as a voter or as a
// non-voter (which receives the log and serves reads but does not vote).
// Only the leader can; it is a no-op for a member already there.
func (c *Coordinator) Join(ctx context.Context, id, addr string, voter bool) error {
	if !c.IsLeader() {
		return errNotLeaderNotApplied
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, s := range cf.Configuration().Servers {
		// Already a member: nodes reach each other at the addresses of
		// their own configuration, so the one recorded here may differ.
		if s.ID == raft.ServerID(id) && (s.Suffrage == raft.Voter) == voter {
			return nil
		}
	}
	var f raft.IndexFuture
	if voter {
		f = c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)
	} else {
		f = c.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)
	}
	return waitFuture(ctx, f)
}

// Leave removes a node from the Raft configuration (leader only).
func (c *Coordinator) Leave(ctx context.Context, id string) error {
	if !c.IsLeader() {
		return errNotLeaderNotApplied
	}
	return waitFuture(ctx, c.raft.RemoveServer(raft.ServerID(id), 0, 0))
}

// RaftMember is a server of the Raft configuration.
type RaftMember struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// Members returns the Raft configuration as this node knows it.
func (c *Coordinator) Members() []RaftMember {
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	var out []RaftMember
	for _, s := range cf.Configuration().Servers {
		out = append(out, RaftMember{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// LeaderCh reports leadership changes of this node (true: it became
// leader). hashicorp/raft's channel drops values when nobody reads, so
// the leader loop also polls IsLeader.
func (c *Coordinator) LeaderCh() <-chan bool { return c.raft.LeaderCh() }

// NodeID is this coordinator's Raft server id.
func (c *Coordinator) NodeID() string { return c.cfg.NodeID }
