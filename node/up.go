package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"syscall"
	"time"

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
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// The API port first: a taken port is the likeliest mistake, and
	// nothing else has started yet.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()

	br, err := broker.Start(broker.Options{StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.BrokerListen})
	if err != nil {
		return err
	}
	defer br.Shutdown()
	nc, err := br.Connect("sluice node")
	if err != nil {
		return fmt.Errorf("connect to the embedded broker: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}

	coord, err := coordinator.Open(coordinator.Config{DataDir: cfg.DataDir, BindAddr: cfg.RaftListen, Bootstrap: true, Logger: log})
	if err != nil {
		return err
	}
	defer coord.Shutdown()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = coord.WaitLeader(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}

	worker := NewWorker(coord, js, cfg.Runner, log)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() { worker.Run(workerCtx); close(workerDone) }()
	defer func() { stopWorker(); <-workerDone }()

	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	mux := http.NewServeMux()
	mux.Handle("/", coordinator.NewAPI(coord, &backend{worker: worker, js: js, logger: log}, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("sluice is up", "api", "http://"+ln.Addr().String(), "raft", coord.RaftAddr(), "data_dir", cfg.DataDir)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("API server: %w", err)
		}
	}
	sctx, cancelShutdown := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShutdown()
	_ = srv.Shutdown(sctx)
	return nil
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
