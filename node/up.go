package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/node/broker"
)

// Up runs a single-node cluster until ctx is cancelled (SIGTERM), then
// stops gracefully. Started again on the same DataDir it resumes its tasks.
func Up(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	cc := ClusterConfig{
		ID: soloNodeID, DataDir: cfg.DataDir, API: cfg.Listen, Raft: cfg.RaftListen, NATS: cfg.BrokerListen,
		Pprof: cfg.PprofListen,
	}
	if err := cc.Validate(); err != nil {
		return err
	}
	return Run(ctx, cc, Options{Logger: cfg.Logger, Runner: cfg.Runner})
}

// soloNodeID is the node id of `sluice up` (Raft's default before nodes
// had ids, so existing data directories keep working).
const soloNodeID = "node1"

// Options are a node's settings that are not in its configuration file.
type Options struct {
	Logger *slog.Logger
	Runner RunnerConfig
}

// Run runs a node of a cluster (or, with no peers, a cluster of one)
// until ctx is cancelled, then stops gracefully.
func Run(ctx context.Context, cc ClusterConfig, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cc.ID)
	if err := os.MkdirAll(cc.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cc.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// The API port first: a taken port is the likeliest mistake, and
	// nothing else has started yet.
	ln, err := net.Listen("tcp", cc.API)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cc.API, err)
	}
	defer ln.Close()

	nc, stopBroker, err := connectBroker(cc)
	if err != nil {
		return err
	}
	defer stopBroker()
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}

	coord, err := coordinator.Open(coordinator.Config{
		NodeID: cc.ID, DataDir: cc.DataDir, BindAddr: cc.Raft, Logger: log,
		Bootstrap: !cc.joins(), Voters: cc.voters(), Resolve: cc.resolvePeer,
	})
	if err != nil {
		return err
	}
	defer coord.Shutdown()

	failover := time.Duration(cc.FailoverTimeout)
	if failover <= 0 {
		failover = coordinator.DefaultFailoverTimeout
	}
	runner := opts.Runner
	if cc.CopyUnits > 0 {
		runner.SnapshotReaders = cc.CopyUnits
	}
	if cc.ChunkPages > 0 {
		runner.PagesPerChunk = cc.ChunkPages
	}
	runner.setDefaults()
	runner.StreamReplicas = cc.streamReplicas()
	worker := NewWorker(cc.ID, coord, js, runner, failover, log)

	if cc.Pprof != "" {
		stopPprof, err := servePprof(cc.Pprof)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	alerts := newAlerter(coord, log)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(coord, worker, alerts))
	mux.Handle("/", coordinator.NewAPI(coord, &backend{worker: worker, coord: coord, js: js, logger: log}, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	// Background loops: the leader's scheduler, this node's membership
	// and heartbeats, and its worker. They stop before Raft does.
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	wg.Add(3)
	go func() {
		defer wg.Done()
		coord.RunScheduler(bg, coordinator.SchedulerConfig{FailoverTimeout: failover, Groups: runner.Groups, Logger: log})
	}()
	go func() { defer wg.Done(); alerts.run(bg) }()
	m := &member{cfg: cc, coord: coord, worker: worker, logger: log, failover: failover}
	go func() { defer wg.Done(); m.run(bg) }()

	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = m.waitReady(wctx)
	if err == nil {
		// On the leader, a barrier: the whole log is applied before the
		// worker reads its assignments.
		err = coord.WaitLeader(wctx)
	}
	cancel()
	if err != nil {
		return err
	}
	if cc.has(coordinator.RoleWorker) {
		wg.Add(1)
		go func() { defer wg.Done(); worker.Run(bg) }()
	}
	log.Info("sluice is up", "api", "http://"+ln.Addr().String(), "raft", coord.RaftAddr(), "data_dir", cc.DataDir, "roles", cc.Roles, "pool", cc.Pool)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API server: %w", err)
		}
	}
	return nil
}

// connectBroker starts the embedded broker (broker role) or connects to
// the external NATS cluster.
func connectBroker(cc ClusterConfig) (*nats.Conn, func(), error) {
	if !cc.has(coordinator.RoleBroker) {
		nc, err := nats.Connect(cc.NATSURL, nats.Name("sluice node "+cc.ID), nats.ReconnectBufSize(-1), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS at %s: %w", cc.NATSURL, err)
		}
		return nc, func() {}, nil
	}
	var routes []string
	for _, p := range cc.Peers {
		if p.NATSCluster != "" {
			routes = append(routes, p.NATSCluster)
		}
	}
	br, err := broker.Start(broker.Options{
		StoreDir: filepath.Join(cc.DataDir, "jetstream"), Listen: cc.NATS, Name: cc.ID,
		ClusterListen: cc.NATSCluster, Routes: routes,
	})
	if err != nil {
		return nil, nil, err
	}
	nc, err := br.Connect("sluice node " + cc.ID)
	if err != nil {
		br.Shutdown()
		return nil, nil, fmt.Errorf("connect to the embedded broker: %w", err)
	}
	return nc, br.Shutdown, nil
}

// lockDataDir keeps a second process off the same data directory: two
// nodes sharing Raft and JetStream files would corrupt both.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another sluice process", dir)
	}
	return func() { f.Close() }, nil
}

// servePprof serves the profiler on its own listener, apart from the API.
func servePprof(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
