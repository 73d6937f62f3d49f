package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Store is what the pipeline needs of the replicated state.
type Store interface {
	Task(name string) (coordinator.Task, bool)
	Tasks() []coordinator.Task
	Apply(ctx context.Context, cmd coordinator.Command) error
}

// HealthFunc receives a unit's health: whether it runs well, and the
// error it last failed with.
type HealthFunc func(running bool, err error)

func (h HealthFunc) set(running bool, err error) {
	if h != nil {
		h(running, err)
	}
}

// Unit is what Supervise needs to know of a unit placed beside a task's
// capture (an apply group, a copy unit).
type Unit struct {
	Task  string
	What  string // "apply group", "copy unit": for logs
	Where string // "attempt/apply", "attempt/copy": names its panics (metrics)
	Store Store
	Retry RetryConfig
	Log   *slog.Logger
	// Health receives the unit's health (nil: nobody listens).
	Health HealthFunc
}

// Supervise runs attempt until it returns nil (the unit's work is done),
// ctx ends, or a sink says a newer owner writes for the unit (fenced: the
// unit stops here). Any other error is retried with backoff within the
// retry window of its kind (invariant 7), shared with the task's other
// units through the replicated state; the task shows retrying meanwhile,
// and failed when the window closes.
func Supervise(ctx context.Context, u Unit, attempt func(context.Context) error) (fenced bool) {
	rw := NewRetryWindow(u.Retry)
	if u.Where == "" {
		u.Where = "attempt/" + u.What
	}
	failed := false // this unit recorded a failure
	for {
		started := time.Now()
		u.Health.set(true, nil)
		// A panic in the attempt is an error of kind other (logged with
		// its stack by the process's hook, counted), retried in the
		// other-failures window like any bug-shaped failure.
		err := safe.Run(u.Where, func() error {
			actx, stop := context.WithCancel(ctx)
			defer stop()
			go ResolveWhenHealthy(actx, u.Store, u.Task, started, u.Log)
			return attempt(actx)
		})
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			if failed {
				// Done after a failure, perhaps sooner than HealthyAfter
				// (a copy unit whose retried chunk loads in seconds): its
				// error is over, and no later run of it will say so.
				resolve(ctx, u.Store, u.Task, started, u.Log)
			}
			return false
		}
		if errors.Is(err, apply.ErrFenced) {
			u.Log.Warn(u.What+" fenced: a newer owner writes it; stopping here", "err", err)
			u.Health.set(false, err)
			return true
		}
		u.Health.set(false, err)
		task, ok := u.Store.Task(u.Task)
		if !ok {
			return false
		}
		terr, closed := rw.Fail(err, time.Since(started), &task, u.Store.Tasks())
		if errors.Is(err, apply.ErrStopTask) {
			closed = true
		}
		state := proto.StateRetrying
		if closed {
			terr.RetryUntil = time.Time{}
			state = proto.StateFailed
			u.Log.Error("task failed: retry window of its "+u.What+" closed", "kind", terr.Kind, "err", err)
		} else {
			u.Log.Warn(u.What+" error; retrying", "kind", terr.Kind, "in", rw.backoff, "until", terr.RetryUntil.Format(time.RFC3339), "err", err)
		}
		// Unless the task was paused or stopped meanwhile.
		failed = true
		err = u.Store.Apply(ctx, coordinator.SetTaskStatus{Name: u.Task, State: state, Error: terr, IfRunnable: true})
		if err != nil && !errors.Is(err, coordinator.ErrStaleEpoch) && ctx.Err() == nil {
			u.Log.Warn("cannot record task status", "err", err)
		}
		if closed || !rw.Wait(ctx) {
			return false
		}
	}
}

// HealthyAfter: a unit that has run this long since it started counts as
// running well again, and an error from before its start is resolved.
var HealthyAfter = 10 * time.Second

// ResolveWhenHealthy waits until the unit that started at started has run
// HealthyAfter (or ctx ends: the attempt is over), then records that the
// task runs again: its state back to running, its retry window ended,
// and an error from before the unit's start kept as history only
// (coordinator.ResolveError). An error newer than the start
// (another of the task's units failing meanwhile) stays current. Run it
// beside each attempt.
func ResolveWhenHealthy(ctx context.Context, store Store, task string, started time.Time, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(started.Add(HealthyAfter))):
	}
	resolve(ctx, store, task, started, log)
}

// resolve records that the task runs well again since started (see
// ResolveWhenHealthy), if it has an error or is retrying.
func resolve(ctx context.Context, store Store, task string, started time.Time, log *slog.Logger) {
	t, ok := store.Task(task)
	if !ok || (t.CurrentError() == nil && t.State != proto.StateRetrying) {
		return
	}
	cmd := coordinator.ResolveError{Name: task, At: time.Now().UTC(), HealthySince: started.UTC()}
	if err := store.Apply(ctx, cmd); err != nil && !errors.Is(err, coordinator.ErrStaleEpoch) && ctx.Err() == nil {
		log.Warn("cannot record that the task runs well again", "task", task, "err", err)
	}
}

// RetryConfig bounds a unit's retries: the backoff between them (default
// 1 s, doubling up to 30 s), and how long a minute of a task's retry
// window lasts (a minute, except in tests, which shorten windows that a
// task spec may not set below 10 (connection) and 1 (other) minutes).
type RetryConfig struct {
	MinBackoff, MaxBackoff time.Duration
	RetryMinute            time.Duration
}

// RetryWindow tracks one unit's retry window and backoff (invariant 7).
type RetryWindow struct {
	start    time.Time
	kind     proto.ErrorKind
	backoff  time.Duration
	min, max time.Duration
	minute   time.Duration
}

// NewRetryWindow starts a unit's window, closed until its first failure.
func NewRetryWindow(cfg RetryConfig) *RetryWindow {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.RetryMinute <= 0 {
		cfg.RetryMinute = time.Minute
	}
	return &RetryWindow{backoff: cfg.MinBackoff, min: cfg.MinBackoff, max: cfg.MaxBackoff, minute: cfg.RetryMinute}
}

// Fail records a failure of an attempt that ran for ranFor; it returns
// the error to show and whether the window has closed. A new kind of
// failure, or one after a minute of running well, opens a new window.
// The window's start lives in the replicated state too (the task's
// last error and its end), so a unit moved to another node, or a task's
// other unit failing the same way, goes on with the same window instead
// of opening a fresh one.
func (rw *RetryWindow) Fail(err error, ranFor time.Duration, task *coordinator.Task, all []coordinator.Task) (*proto.TaskError, bool) {
	kind := Classify(err)
	now := time.Now()
	window := time.Duration(float64(WindowFor(task, all, kind)) * float64(rw.minute) / float64(time.Minute))
	if rw.start.IsZero() || ranFor > rw.minute || kind != rw.kind {
		rw.start, rw.kind, rw.backoff = now, kind, rw.min
		if le := task.LastError; ranFor <= rw.minute && task.State == proto.StateRetrying && le != nil && le.Kind == kind && !le.RetryUntil.IsZero() {
			if start := le.RetryUntil.Add(-window); start.Before(now) {
				rw.start = start
			}
		}
	}
	until := rw.start.Add(window)
	// The message enters Raft and the API: no secret this process knows.
	terr := &proto.TaskError{Kind: kind, Message: secret.Scrub(proto.RedactText(err.Error())), At: now, RetryUntil: until}
	if now.After(until) {
		terr.RetryUntil = time.Time{}
		return terr, true
	}
	return terr, false
}

// Wait sleeps the backoff, then doubles it; false when ctx ended.
func (rw *RetryWindow) Wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(rw.backoff):
	}
	if rw.backoff *= 2; rw.backoff > rw.max {
		rw.backoff = rw.max
	}
	return true
}

// WindowFor is the task's window for kind, or a shorter one of any task
// that shares its source or a destination server (DESIGN invariant 7:
// the shortest wins among tasks sharing an endpoint).
func WindowFor(task *coordinator.Task, all []coordinator.Task, kind proto.ErrorKind) time.Duration {
	of := func(r proto.RetrySpec) time.Duration {
		if kind == proto.ErrorConnection {
			return r.ConnectionRetry()
		}
		return r.OtherRetry()
	}
	window := of(task.Spec.Retry)
	mine := map[string]bool{}
	for _, e := range Endpoints(&task.Spec) {
		mine[e] = true
	}
	for i := range all {
		o := &all[i]
		if o.Spec.Name == task.Spec.Name || o.Deleting {
			continue
		}
		for _, e := range Endpoints(&o.Spec) {
			if mine[e] {
				window = min(window, of(o.Spec.Retry))
				break
			}
		}
	}
	return window
}

// Endpoints names the servers a task reads from and writes to, host:port
// (the destination's by its registry entry).
func Endpoints(spec *proto.TaskSpec) []string {
	out := apply.Endpoints(spec)
	if e := pgconfig.Endpoint(spec.Source.DSN); e != "" {
		out = append(out, e)
	}
	return out
}
