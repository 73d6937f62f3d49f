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
// defaults.
type RunnerConfig struct {
	// SnapshotReaders is the number of copy units a task's full sync is
	// shared among: parallel readers of the snapshot, each with its
	// destination writer, placed on the task's workers like apply groups.
	SnapshotReaders int
	// PagesPerChunk splits tables for full sync (8 KiB pages).
	PagesPerChunk int64
	// Groups is the number of table groups (apply workers).
	Groups int
	// StreamReplicas: brokers holding each task stream (default 1).
	StreamReplicas int
	Capture        capture.Config
	Worker         apply.WorkerConfig
	// Backoff bounds between retries.
	MinBackoff, MaxBackoff time.Duration
	// RetryMinute is how long a minute of a task's retry window lasts:
	// a minute, except in tests, which shorten windows that a task spec
	// may not set below 10 (connection) and 1 (other) minutes.
	RetryMinute time.Duration
}

func (c *RunnerConfig) setDefaults() {
	if c.SnapshotReaders <= 0 {
		c.SnapshotReaders = 4
	}
	if c.PagesPerChunk <= 0 {
		c.PagesPerChunk = 4096 // 32 MiB
	}
	if c.Groups <= 0 {
		c.Groups = apply.DefaultGroups
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.RetryMinute <= 0 {
		c.RetryMinute = time.Minute
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
		Name:   name,
		Store:  store,
		Config: pipeline.Config{SnapshotReaders: cfg.SnapshotReaders, PagesPerChunk: cfg.PagesPerChunk, Retry: cfg.retry()},
		Source: func(spec *proto.TaskSpec) pipeline.Source {
			return &pipeline.PGSource{Spec: spec, Capture: cfg.Capture, JetStream: js, Logger: logger, OnCapture: l.setCapture}
		},
		EnsureStream: func(ctx context.Context, tables []proto.TableID) error {
			return apply.EnsureStream(ctx, js, name, cfg.Groups, cfg.StreamReplicas, tables)
		},
		Logger:    logger,
		OnAttempt: l.reset,
		Health:    health.set,
	}
}
