package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// unitSupervisor is what superviseUnit needs to know of a unit placed
// beside a task's capture (an apply group, a copy unit).
type unitSupervisor struct {
	task   string
	what   string // "apply group", "copy unit": for logs
	where  string // "attempt/apply", "attempt/copy": names its panics (metrics)
	store  TaskStore
	cfg    RunnerConfig
	log    *slog.Logger
	health *unitHealth
}

// superviseUnit runs attempt until it returns nil (the unit's work is
// done), ctx ends, or a sink says a newer owner writes for the unit
// (fenced: the unit stops here). Any other error is retried with backoff
// within the retry window of its kind (invariant 7), shared with the
// task's other units through the replicated state; the task shows
// retrying meanwhile, and failed when the window closes.
func superviseUnit(ctx context.Context, u unitSupervisor, attempt func(context.Context) error) (fenced bool) {
	rw := newRetryWindow(u.cfg)
	if u.where == "" {
		u.where = "attempt/" + u.what
	}
	for {
		started := time.Now()
		u.health.set(true, nil)
		// A panic in the attempt is an error of kind other (logged with
		// its stack by the process's hook, counted), retried in the
		// other-failures window like any bug-shaped failure.
		err := safe.Run(u.where, func() error { return attempt(ctx) })
		if ctx.Err() != nil || err == nil {
			return false
		}
		if errors.Is(err, apply.ErrFenced) {
			u.log.Warn(u.what+" fenced: a newer owner writes it; stopping here", "err", err)
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
			u.log.Error("task failed: retry window of its "+u.what+" closed", "kind", terr.Kind, "err", err)
		} else {
			u.log.Warn(u.what+" error; retrying", "kind", terr.Kind, "in", rw.backoff, "until", terr.RetryUntil.Format(time.RFC3339), "err", err)
		}
		// Unless the task was paused or stopped meanwhile.
		err = u.store.Apply(ctx, coordinator.SetTaskStatus{Name: u.task, State: state, Error: terr, IfRunnable: true})
		if err != nil && !errors.Is(err, coordinator.ErrStaleEpoch) && ctx.Err() == nil {
			u.log.Warn("cannot record task status", "err", err)
		}
		if closed || !rw.wait(ctx) {
			return false
		}
	}
}
