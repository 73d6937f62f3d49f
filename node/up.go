package node

import (
	"context"
	"crypto/tls"
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
	"golang.org/x/net/netutil"

	"github.com/sluicedb/sluice/console"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/broker"
	"github.com/sluicedb/sluice/internal/pki"
	"github.com/sluicedb/sluice/internal/secret"
)

// Up runs a single-node cluster until ctx is cancelled (SIGTERM), then
// stops gracefully. Started again on the same DataDir it resumes its tasks.
func Up(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	cc := ClusterConfig{
		ID: soloNodeID, DataDir: cfg.DataDir, API: cfg.Listen, Raft: cfg.RaftListen, NATS: cfg.BrokerListen,
		Pprof: cfg.PprofListen, TLS: cfg.TLS, MetricsPublic: cfg.MetricsPublic, ClientConfig: cfg.ClientConfig,
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
	// No log line repeats a secret this process has seen.
	log = slog.New(secret.Handler(log.Handler())).With("node", cc.ID)
	installPanicLog(log)
	if err := os.MkdirAll(cc.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cc.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	pk, err := loadTLS(&cc)
	if err != nil {
		return err
	}
	// The API port first: a taken port is the likeliest mistake, and
	// nothing else has started yet.
	ln, err := net.Listen("tcp", cc.API)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cc.API, err)
	}
	defer ln.Close()
	// The cap below TLS: http.Server sees a *tls.Conn, so requests carry
	// their client certificate (r.TLS).
	apiAddr, scheme := ln.Addr().String(), "http"
	ln = netutil.LimitListener(ln, maxAPIConns)
	if pk != nil {
		ln, scheme = tls.NewListener(ln, pk.OptionalClientTLS()), "https"
	}

	nc, stopBroker, err := connectBroker(cc, pk)
	if err != nil {
		return err
	}
	defer stopBroker()
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}

	ccfg := coordinator.Config{
		NodeID: cc.ID, DataDir: cc.DataDir, BindAddr: cc.Raft, Logger: log,
		Bootstrap: !cc.joins(), Voters: cc.voters(), Resolve: cc.resolvePeer,
	}
	keyring, err := secret.OpenKeyring(cc.DataDir)
	if err != nil {
		return err
	}
	ready := &readiness{}
	apiOpts := coordinator.APIOptions{Logger: log, TokenHint: tokenHint(cc.DataDir), Unseal: secret.UnsealSpec, Keyring: keyring.Export, NewKey: keyring.Generate, Ready: ready.check}
	if pk != nil {
		ccfg.TLS = &coordinator.TransportTLS{Server: pk.ServerTLS(), Client: pk.ClientTLS}
		ccfg.NodeTLS = pk.ClientTLS("")
		apiOpts.PeerNode = pk.PeerNodeID
	}
	coord, err := coordinator.Open(ccfg)
	if err != nil {
		return err
	}
	defer coord.Shutdown()
	apiOpts.Seal = sealer(coord, keyring)

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
	var metrics http.Handler = metricsHandler(coord, worker, alerts)
	if !cc.MetricsPublic {
		metrics = coordinator.RequireToken(coord, func(*http.Request) coordinator.Scope { return coordinator.ScopeRead }, apiOpts.TokenHint, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	// The web console's files hold no data: they are public, and its
	// pages read and act through the API below with the user's token.
	mux.Handle(console.Prefix, console.Handler())
	mux.Handle("/", coordinator.NewAPI(coord, &backend{worker: worker, coord: coord, js: js, logger: log}, apiOpts))
	srv := newAPIServer(mux)
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
		keepRunning(bg, "scheduler", func(ctx context.Context) {
			coord.RunScheduler(ctx, coordinator.SchedulerConfig{FailoverTimeout: failover, Groups: runner.Groups, Logger: log})
		})
	}()
	go func() { defer wg.Done(); alerts.run(bg) }()
	m := &member{cfg: cc, coord: coord, worker: worker, logger: log, failover: failover, apiAddr: apiAddr, keyring: keyring, slots: alerts.slots}
	go func() { defer wg.Done(); keepRunning(bg, "member", m.run) }()

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
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = bootstrapAdmin(bctx, &cc, coord)
	if err != nil {
		log.Warn("cannot make the cluster's first admin token yet", "err", err)
	}
	if err := ensureKey(bctx, coord, keyring, m.peerAPIs()); err != nil {
		log.Warn("the cluster's secret key is not here yet", "err", err)
	}
	cancel()
	if path, err := writeClientEntry(&cc, coord, apiAddr); err != nil {
		log.Warn("cannot write the client config", "err", err)
	} else if path != "" {
		log.Info("the admin token is in the client config: the sluice CLI on this machine needs no other step", "client_config", path, "token_file", filepath.Join(cc.DataDir, AdminTokenFile))
	}
	if cc.has(coordinator.RoleWorker) {
		wg.Add(1)
		go func() { defer wg.Done(); worker.Run(bg) }()
	}
	ready.markStarted(m, cc.has(coordinator.RoleWorker))
	log.Info("sluice is up", "api", scheme+"://"+apiAddr, "console", scheme+"://"+apiAddr+console.Prefix, "raft", coord.RaftAddr(), "data_dir", cc.DataDir, "roles", cc.Roles, "pool", cc.Pool)

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

// API server limits: a client gets 30 s to send its request (header and
// body: one that trickles its body is cut off), a response 5 minutes (a
// task create runs the precheck against both databases), an idle
// keep-alive connection 30 s; headers are small and connections are
// capped, so no client ties up the node's memory or file descriptors.
// An idle connection holds a slot until its timeout, so the cap leaves
// room for the other nodes' calls beside many clients.
const (
	apiReadTimeout    = 30 * time.Second
	apiHeaderTimeout  = 10 * time.Second
	apiWriteTimeout   = 5 * time.Minute
	apiIdleTimeout    = 30 * time.Second
	apiMaxHeaderBytes = 64 << 10
	maxAPIConns       = 1024
)

func newAPIServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: apiHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
	}
}

// loadTLS reads the node's certificate (nil without tls) and checks that
// it names this node: peers know a node by the id in its certificate.
func loadTLS(cc *ClusterConfig) (*pki.Config, error) {
	if cc.TLS == nil {
		return nil, nil
	}
	pk, err := pki.Load(cc.TLS.CA, cc.TLS.Cert, cc.TLS.Key)
	if err != nil {
		return nil, err
	}
	if pk.ID != cc.ID {
		return nil, fmt.Errorf("tls cert %s is node %s's, and this node is %s: make its own with sluice cert node --id %s", cc.TLS.Cert, pk.ID, cc.ID, cc.ID)
	}
	return pk, nil
}

// connectBroker starts the embedded broker (broker role) or connects to
// the external NATS cluster. The embedded broker takes only clients with
// its credentials (kept in the data directory, 0600) or, over TLS, a node
// certificate; its routes take only nodes.
func connectBroker(cc ClusterConfig, pk *pki.Config) (*nats.Conn, func(), error) {
	if !cc.has(coordinator.RoleBroker) {
		opts, err := externalNATS(&cc, pk)
		if err != nil {
			return nil, nil, err
		}
		nc, err := nats.Connect(cc.NATSURL, opts...)
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
	creds, err := broker.LoadOrCreateCredentials(cc.DataDir)
	if err != nil {
		return nil, nil, err
	}
	bo := broker.Options{
		StoreDir: filepath.Join(cc.DataDir, "jetstream"), Listen: cc.NATS, Name: cc.ID,
		ClusterListen: cc.NATSCluster, Routes: routes, Credentials: creds,
	}
	if pk != nil {
		bo.TLS = pk.OptionalClientTLS()
		rt := pk.ServerTLS()
		rt.RootCAs = pk.CAs
		bo.RouteTLS = rt
		bo.NodeCert = func(cs *tls.ConnectionState) bool { _, ok := pk.PeerNodeID(cs); return ok }
	}
	br, err := broker.Start(bo)
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

// externalNATS are the options of a connection to nats_url: the node's
// certificate over TLS (the brokers of a Sluice cluster take it), or the
// credentials file, or the user and password the configuration gives.
func externalNATS(cc *ClusterConfig, pk *pki.Config) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("sluice node " + cc.ID), nats.ReconnectBufSize(-1), nats.MaxReconnects(-1)}
	if pk != nil {
		opts = append(opts, nats.Secure(pk.ClientTLS("")))
	}
	if cc.NATSCredentials != "" {
		opts = append(opts, nats.UserCredentials(cc.NATSCredentials))
	}
	if cc.NATSUser != "" {
		pw, err := secret.ResolveField(cc.NATSPassword)
		if err != nil {
			return nil, fmt.Errorf("nats_password: %w", err)
		}
		secret.Register(pw)
		opts = append(opts, nats.UserInfo(cc.NATSUser, pw))
	}
	return opts, nil
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
