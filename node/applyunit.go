package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// applyUnit runs one table group of a task: its durable consumer into
// the destination, writing with the assignment's epoch so that a sink
// refuses it once the group has moved to a newer owner (invariant 3).
type applyUnit struct {
	task   string
	group  int
	epoch  uint64
	store  TaskStore
	js     jetstream.JetStream
	cfg    RunnerConfig
	logger *slog.Logger
	live   *live
	health *unitHealth
}

// healthyAfter: an apply that ran this long after an error counts as
// recovered, and the task is shown running again.
const healthyAfter = 10 * time.Second

func (u *applyUnit) run(ctx context.Context) (fenced bool) {
	rw := newRetryWindow(u.cfg)
	log := u.logger.With("task", u.task, "group", u.group, "epoch", u.epoch)
	for {
		started := time.Now()
		u.health.set(true, nil)
		err := u.attempt(ctx)
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, apply.ErrFenced) {
			log.Warn("apply group fenced: a newer owner writes it; stopping here")
			u.health.set(false, err)
			return true
		}
		u.health.set(false, err)
		task, ok := u.store.Task(u.task)
		if !ok {
			return false
		}
		terr, closed := rw.fail(err, time.Since(started), &task, u.store.Tasks())
		state := proto.StateRetrying
		if closed {
			terr.RetryUntil = time.Time{}
			state = proto.StateFailed
			log.Error("task failed: retry window of its apply group closed", "kind", terr.Kind, "err", err)
		} else {
			log.Warn("apply error; retrying", "kind", terr.Kind, "in", rw.backoff, "until", terr.RetryUntil.Format(time.RFC3339), "err", err)
		}
		u.report(ctx, state, terr)
		if closed || !rw.wait(ctx) {
			return false
		}
	}
}

// report records the group's trouble in the task's status, unless the
// task was paused or stopped meanwhile.
func (u *applyUnit) report(ctx context.Context, state proto.State, terr *proto.TaskError) {
	err := u.store.Apply(ctx, coordinator.SetTaskStatus{Name: u.task, State: state, Error: terr, IfRunnable: true})
	if err != nil && !errors.Is(err, coordinator.ErrStaleEpoch) && ctx.Err() == nil {
		u.logger.Warn("cannot record task status", "task", u.task, "err", err)
	}
}

// attempt applies until the first error. Once it has run well for a while
// after a reported error, it sets the task back to running.
func (u *applyUnit) attempt(ctx context.Context) error {
	task, ok := u.store.Task(u.task)
	if !ok {
		return fmt.Errorf("task %s is gone", u.task)
	}
	sink, err := postgres.Open(ctx, postgres.Options{
		DSN: task.Spec.Destination.DSN, MaxConns: int32(postgres.DefaultShards + 1),
		Application: fmt.Sprintf("sluice task %s apply %d", u.task, u.group), Logger: u.logger,
	})
	if err != nil {
		return fmt.Errorf("connect to destination: %w", err)
	}
	defer sink.Close(context.Background())
	wcfg := u.cfg.Worker
	wcfg.Task, wcfg.Group, wcfg.JetStream, wcfg.Sink, wcfg.Epoch, wcfg.Logger = u.task, u.group, u.js, sink, u.epoch, u.logger
	wcfg.Stats = &apply.WorkerStats{}
	u.live.setWorker(u.group, wcfg.Stats)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-wctx.Done():
		case <-time.After(healthyAfter):
			if t, ok := u.store.Task(u.task); ok && t.State == proto.StateRetrying {
				_ = u.store.Apply(wctx, coordinator.SetTaskStatus{Name: u.task, State: proto.StateRunning, KeepError: true, IfRunnable: true})
			}
		}
	}()
	return apply.RunWorker(wctx, wcfg)
}
