package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/internal/clientconfig"
	"github.com/sluicedb/sluice/node"
)

func (a *app) upCmd() *cobra.Command {
	var (
		cfg          node.Config
		logLevel     string
		logFormat    string
		memoryLimit  string
		clientConfig string
		tlsFiles     node.TLSFiles
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a single-node Sluice: coordinator, broker and worker in one process",
		Long: `Run a single-node Sluice until SIGTERM or Ctrl-C, then stop gracefully.
Started again on the same data directory it resumes its tasks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(a.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = logger
			if cfg.ClientConfig, err = a.clientConfigPath(clientConfig); err != nil {
				return err
			}
			if tlsFiles != (node.TLSFiles{}) {
				cfg.TLS = &tlsFiles
			}
			if err := setMemoryLimit(memoryLimit, a.getenv("GOMEMLIMIT"), a.getenv("GOGC")); err != nil {
				return err
			}
			err = a.up(cmd.Context(), cfg)
			if err != nil && errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // stopped by a signal: the graceful path
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "./sluice-data", "directory for Raft's log and JetStream's files")
	f.StringVar(&cfg.Listen, "listen", node.DefaultListen, "HTTP API address")
	f.StringVar(&cfg.RaftListen, "raft-listen", "", "Raft transport address (default: the API port + 1)")
	f.StringVar(&cfg.BrokerListen, "broker-listen", "", "expose the embedded NATS server on this address (default: in-process only)")
	f.IntVar(&cfg.Runner.SnapshotReaders, "snapshot-readers", 4, "copy units a task's full sync is shared among (parallel readers and writers)")
	f.Int64Var(&cfg.Runner.PagesPerChunk, "chunk-pages", 4096, "full sync splits tables into chunks of this many 8 KiB pages")
	f.IntVar(&cfg.Runner.Groups, "apply-groups", 4, "table groups per task: one JetStream consumer and apply worker each")
	f.StringVar(&memoryLimit, "memory-limit", "192MiB", "soft limit of the Go heap (as GOMEMLIMIT: 256MiB, 1GiB; 0 for none); GOMEMLIMIT wins when set")
	f.StringVar(&cfg.PprofListen, "pprof-listen", "", "serve Go's profiler (net/http/pprof) on this address")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&clientConfig, "client-config", "", "client config to write the admin token to (default $XDG_CONFIG_HOME/sluice/config.yaml, else ~/.config/sluice/config.yaml; none: do not write)")
	f.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics without a token")
	f.StringVar(&tlsFiles.CA, "tls-ca", "", "CA certificate (PEM) of the node certificate (sluice cert ca)")
	f.StringVar(&tlsFiles.Cert, "tls-cert", "", "this node's certificate (sluice cert node): the API and the exposed broker use TLS; needed to listen on anything but loopback")
	f.StringVar(&tlsFiles.Key, "tls-key", "", "the certificate's private key")
	return cmd
}

// clientConfigPath is where `up` and `node` write the admin token: the
// flag (or config key), "none" for nowhere, default the user's file.
func (a *app) clientConfigPath(v string) (string, error) {
	switch v {
	case "none":
		return "", nil
	case "":
		return clientconfig.DefaultPath(a.getenv)
	}
	return v, nil
}

// newLogger builds the process's slog logger on stderr.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", format)
	}
}

// gcPercentUnderLimit is GOGC while a memory limit holds.
const gcPercentUnderLimit = 300

// setMemoryLimit sets the runtime's soft memory limit. Sluice's buffers
// are bounded, so the heap's live part stays small; the limit keeps the
// garbage collector from letting the heap (and RSS) grow to twice its
// peak between cycles. Under a limit the collector also runs less often
// than by default (gcPercentUnderLimit, unless GOGC is set): the limit,
// not the live heap's growth, bounds the heap, and collecting the change
// stream's short-lived batches was a fifth of Sluice's CPU.
func setMemoryLimit(flag, env, gogc string) error {
	if env != "" {
		if gogc == "" {
			debug.SetGCPercent(gcPercentUnderLimit)
		}
		return nil // the runtime read GOMEMLIMIT at start
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(flag, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 {
			break
		}
		if n > 0 {
			debug.SetMemoryLimit(n * u.mult)
			if gogc == "" {
				debug.SetGCPercent(gcPercentUnderLimit)
			}
		}
		return nil
	}
	return fmt.Errorf("--memory-limit %q: use a size such as 256MiB or 1GiB, or 0", flag)
}
