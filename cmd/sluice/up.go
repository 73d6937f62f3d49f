package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicedb/sluice/node"
)

func (a *app) upCmd() *cobra.Command {
	var (
		cfg       node.Config
		logLevel  string
		logFormat string
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
	f.IntVar(&cfg.Runner.SnapshotReaders, "snapshot-readers", 4, "parallel readers (and writers) of a task's full sync")
	f.Int64Var(&cfg.Runner.PagesPerChunk, "chunk-pages", 4096, "full sync splits tables into chunks of this many 8 KiB pages")
	f.IntVar(&cfg.Runner.Groups, "apply-groups", 4, "table groups per task: one JetStream consumer and apply worker each")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
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
