package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	_ "github.com/sluicedb/sluice/apply/destinations" // every destination this build writes to
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/pipeline"
	"github.com/sluicedb/sluice/proto"
)

// RunnerConfig tunes how a node runs tasks' units; zero values take
// defaults (the pipeline's for what it takes: pipeline.Config,
// pipeline.RetryConfig).
type RunnerConfig struct {
	// SnapshotReaders and PagesPerChunk: pipeline.Config.
	SnapshotReaders int
	PagesPerChunk   int64
	// Groups is the number of table groups (apply workers).
	Groups int
	// StreamReplicas: brokers holding each task stream (default 1).
	StreamReplicas int
	Capture        capture.Config
	Worker         apply.WorkerConfig
	// MinBackoff, MaxBackoff and RetryMinute: pipeline.RetryConfig.
	MinBackoff, MaxBackoff time.Duration
	RetryMinute            time.Duration
	// VerifyInterval and VerifyWholeRows: pipeline.Config (tests).
	VerifyInterval  time.Duration
	VerifyWholeRows int64
}

func (c *RunnerConfig) setDefaults() {
	if c.Groups <= 0 {
		c.Groups = apply.DefaultGroups
	}
}

// retry is the units' retry settings.
func (c *RunnerConfig) retry() pipeline.RetryConfig {
	return pipeline.RetryConfig{MinBackoff: c.MinBackoff, MaxBackoff: c.MaxBackoff, RetryMinute: c.RetryMinute}
}

// heartbeatGroup is the apply group that writes a task's heartbeat
// messages (destination.heartbeat). Every group's consumer takes every
// source heartbeat (apply.ConsumerConfig), so one is enough and more
// would write each heartbeat once per group. Group 0 because it always
// exists while the task is incremental: the coordinator makes one apply
// unit per group whether or not any table hashes into it
// (coordinator.TaskUnits), so there is exactly one writer, on whichever
// node runs that unit, fenced like the unit's other writes.
const heartbeatGroup = 0

// openSink connects to a task's destination for one use.
func openSink(ctx context.Context, spec *proto.TaskSpec, use apply.Use, logger *slog.Logger) (apply.TaskSink, error) {
	use.Logger = logger
	return apply.Open(ctx, spec, use)
}

// captureRunner is the task pipeline of a capture unit placed here: its
// source over PostgreSQL, its stream in JetStream, its live metrics.
func captureRunner(name string, store pipeline.Store, js jetstream.JetStream, cfg RunnerConfig, logger *slog.Logger, l *live, health *unitHealth) *pipeline.Runner {
	return &pipeline.Runner{
		Name:  name,
		Store: store,
		Config: pipeline.Config{SnapshotReaders: cfg.SnapshotReaders, PagesPerChunk: cfg.PagesPerChunk, Retry: cfg.retry(),
			VerifyInterval: cfg.VerifyInterval, VerifyWholeRows: cfg.VerifyWholeRows},
		Source: func(spec *proto.TaskSpec) pipeline.Source {
			return &pipeline.PGSource{Spec: spec, Capture: cfg.Capture, JetStream: js, Logger: logger, OnCapture: l.setCapture}
		},
		EnsureStream: func(ctx context.Context, tables []proto.TableID, linked map[string]string) error {
			return apply.EnsureStream(ctx, js, name, cfg.Groups, cfg.StreamReplicas, tables, linked)
		},
		Logger:    logger,
		JetStream: js,
		OnAttempt: l.reset,
		Health:    health.set,
	}
}
