package node

import (
	"context"
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
	log := u.logger.With("task", u.task, "group", u.group, "epoch", u.epoch)
	return superviseUnit(ctx, unitSupervisor{task: u.task, what: "apply group", store: u.store, cfg: u.cfg, log: log, health: u.health}, u.attempt)
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
	wcfg.Names = task.Spec.Names()
	wcfg.DDLOps = task.Spec.Sync.DDLOps()
	wcfg.Stats = &apply.WorkerStats{}
	u.live.setWorker(u.group, wcfg.Stats)
	// The task's incremental throttle, shared with its groups here.
	lim, release := u.live.throttle(u.store, u.task, proto.PhaseIncremental, u.cfg.Groups)
	defer release()
	wcfg.Throttle = lim

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
