// Package pipeline is the task pipeline: a task's phases (precheck, schema,
// full, incremental), the consistent cut between the full and the
// incremental sync, the retry windows, adding tables to a running task
// and keeping its tables in step with DDL. It drives the source
// (Source: capture), the destination (apply's registry) and the
// replicated state (Store: the coordinator) through small interfaces, so
// that it runs and is tested without a node; node/ assembles it into a
// process beside the apply and copy units.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Config tunes a task's pipeline; zero values take defaults.
type Config struct {
	// SnapshotReaders is the number of copy units a task's full sync is
	// shared among: parallel readers of the snapshot, each with its
	// destination writer, placed on the task's workers like apply groups.
	SnapshotReaders int
	// PagesPerChunk splits tables for full sync (8 KiB pages).
	PagesPerChunk int64
	// SequenceInterval is how often a task's sequences are brought in
	// step while the source is busy (sequences.go; default 5s): quiet
	// points bring them in step at once.
	SequenceInterval time.Duration
	// VerifyInterval, when set, replaces every task's verify.interval
	// (tests: the spec's minimum is a minute).
	VerifyInterval time.Duration
	// VerifyWholeRows: continuous verification compares a table the
	// planner estimates at no more rows whole in each round, whatever the
	// sample (a slice would save little, and one pass finds any
	// difference); a bigger keyless table, which has no slices, is left
	// out (default 100,000).
	VerifyWholeRows int64
	Retry           RetryConfig
}

func (c *Config) setDefaults() {
	if c.SnapshotReaders <= 0 {
		c.SnapshotReaders = 4
	}
	if c.PagesPerChunk <= 0 {
		c.PagesPerChunk = 4096 // 32 MiB
	}
	if c.SequenceInterval <= 0 {
		c.SequenceInterval = defaultSequenceInterval
	}
	if c.VerifyWholeRows <= 0 {
		c.VerifyWholeRows = 100_000
	}
}

// Runner runs one task's capture unit: its phases, then its capture, with
// its retries. The apply groups and copy units are units of their own,
// which the coordinator places once the phases ask for them.
type Runner struct {
	Name   string
	Store  Store
	Config Config
	// Source returns the task's source as an attempt's spec has it.
	Source func(spec *proto.TaskSpec) Source
	// OpenSink connects to the destination (default apply.Open).
	OpenSink func(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error)
	// EnsureStream makes the task's change stream carry tables, those
	// linked by foreign keys in one group (linked: table key to anchor).
	EnsureStream func(ctx context.Context, tables []proto.TableID, linked map[string]string) error
	Logger       *slog.Logger
	// JetStream holds the task's stream: continuous verification's
	// re-checks wait for the apply groups by it (nil: no continuous
	// verification).
	JetStream jetstream.JetStream
	// OnAttempt, if set, is called as each attempt starts (live metrics
	// start over); Health receives the unit's health.
	OnAttempt func()
	Health    HealthFunc

	epoch uint64 // the task's epoch when this runner started
}

// errReleased ends a task that has nothing more to do (full sync only).
var errReleased = errors.New("task finished")

func (r *Runner) init() {
	r.Config.setDefaults()
	if r.OpenSink == nil {
		r.OpenSink = apply.Open
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
}

// Run supervises the task until ctx ends or the task fails for good.
// Each failure is retried with backoff while its kind's retry window is
// open (invariant 7); the window opens at the first failure and closes
// the task when it ends. An attempt that ran for a while resets it.
func (r *Runner) Run(ctx context.Context) (fenced bool) {
	r.init()
	// Raise the epoch first, fencing an earlier capture of the task. A
	// leader election can refuse it for a moment: try again.
	for {
		err := r.Store.Apply(ctx, coordinator.BumpEpoch{Name: r.Name})
		if err == nil {
			break
		}
		if errors.Is(err, coordinator.ErrTaskNotFound) || ctx.Err() != nil {
			return false
		}
		r.Logger.Warn("cannot start task yet", "task", r.Name, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	task, ok := r.Store.Task(r.Name)
	if !ok {
		return false
	}
	r.epoch = task.Epoch
	rw := NewRetryWindow(r.Config.Retry)
	for {
		started := time.Now()
		r.Health.set(true, nil)
		// A panic in the attempt is an error of kind other (logged with
		// its stack by the process's hook, counted), retried in the
		// other-failures window; the attempt's deferred calls have
		// stopped its units and closed its connections by then.
		err := safe.Run("attempt/capture", func() error {
			actx, stop := context.WithCancel(ctx)
			defer stop()
			go ResolveWhenHealthy(actx, r.Store, r.Name, started, r.Logger)
			return r.attempt(actx)
		})
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errTablesChanged) {
			r.Logger.Info("the task's tables changed; its capture starts over", "task", r.Name)
			continue
		}
		if errors.Is(err, errReleased) {
			r.setStatus(ctx, "", proto.StateReleased, nil, true)
			return false
		}
		if errors.Is(err, apply.ErrFenced) || errors.Is(err, coordinator.ErrStaleEpoch) {
			r.Logger.Warn("task fenced by a newer owner; stopping here", "task", r.Name)
			return true
		}
		r.Health.set(false, err)
		task, ok := r.Store.Task(r.Name)
		if !ok {
			return false
		}
		terr, closed := rw.Fail(err, time.Since(started), &task, r.Store.Tasks())
		if closed {
			r.Logger.Error("task failed: retry window closed", "task", r.Name, "kind", terr.Kind, "err", err)
			r.setStatus(ctx, "", proto.StateFailed, terr, false)
			return false
		}
		r.Logger.Warn("task error; retrying", "task", r.Name, "kind", terr.Kind, "in", rw.backoff, "until", terr.RetryUntil.Format(time.RFC3339), "err", err)
		r.setStatus(ctx, "", proto.StateRetrying, terr, false)
		if !rw.Wait(ctx) {
			return false
		}
	}
}

func (r *Runner) setStatus(ctx context.Context, phase proto.Phase, state proto.State, terr *proto.TaskError, keepErr bool) {
	cmd := coordinator.SetTaskStatus{Name: r.Name, Epoch: r.epoch, Phase: phase, State: state, Error: terr, KeepError: keepErr}
	err := r.Store.Apply(ctx, cmd)
	// A leader election refuses writes for a moment; a lost phase change
	// would leave the task's apply groups unplaced, so try again.
	for deadline := time.Now().Add(30 * time.Second); errors.Is(err, coordinator.ErrNotLeader) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		err = r.Store.Apply(ctx, cmd)
	}
	if errors.Is(err, coordinator.ErrStaleEpoch) {
		return // paused or handed over: the worker stops this runner
	}
	if err != nil && ctx.Err() == nil {
		r.Logger.Warn("cannot record task status", "task", r.Name, "err", err)
	}
}

// attempt runs the task's remaining phases once, then its capture until
// it fails.
func (r *Runner) attempt(ctx context.Context) error {
	task, ok := r.Store.Task(r.Name)
	if !ok {
		return fmt.Errorf("task %s is gone", r.Name)
	}
	spec := task.Spec
	if r.OnAttempt != nil {
		r.OnAttempt()
	}
	if task.State != proto.StateRetrying {
		r.setStatus(ctx, "", proto.StateRunning, nil, true)
	} // else running again once it has run well a while (ResolveWhenHealthy)

	source := r.Source(&spec)
	src, err := source.Session(ctx)
	if err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	defer src.Close()
	sink, err := r.OpenSink(ctx, &spec, apply.Use{Kind: apply.UseTask, Logger: r.Logger})
	if err != nil {
		return err
	}
	defer sink.Close(context.Background())

	tables, err := r.taskTables(ctx, src, &task)
	if err != nil {
		return err
	}
	incremental := spec.Sync.IncrementalEnabled()
	if incremental {
		if err := r.EnsureStream(ctx, tables, r.linked()); err != nil {
			return err
		}
		if err := src.PrepareSource(ctx, tables); err != nil {
			return err
		}
		if spec.Sync.DDLEnabled() {
			if err := src.InstallDDLCapture(ctx, tables); err != nil {
				return err
			}
		}
	}

	// Units (the capture) run in g; whichever fails first stops the
	// others, and so does a failing phase.
	unitsCtx, stopUnits := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(unitsCtx)
	defer func() { stopUnits(); _ = g.Wait() }()
	p := &phases{r: r, task: &task, source: source, src: src, sink: sink, tables: tables, g: g}
	if task.Phase != proto.PhaseIncremental {
		if err := p.full(gctx); err != nil {
			stopUnits()
			// A unit's failure cancels the phase: report the cause.
			if cause := waitOthers(g); cause != nil {
				return cause
			}
			return err
		}
		if !incremental {
			return errReleased
		}
		if task, ok = r.Store.Task(r.Name); !ok {
			return fmt.Errorf("task %s is gone", r.Name)
		}
	} else if incremental {
		if err := p.startCapture(gctx, nil); err != nil {
			return err
		}
		if len(task.Adding) > 0 {
			if err := p.addTables(gctx); err != nil {
				stopUnits()
				if cause := waitOthers(g); cause != nil {
					return cause
				}
				return err
			}
		}
	}
	changes := task.TablesChanges
	g.Go(safe.Go("watch-tables", func() error { return r.watchTables(gctx, changes) }))
	if incremental && !task.Spec.IsReverse() {
		g.Go(safe.Go("periodic", func() error { return r.runPeriodic(gctx, sink, &task.Spec) }))
		// The reverse direction of a two-way task compares the same
		// tables: its forward direction verifies them.
		g.Go(safe.Go("verify", func() error { return r.runVerify(gctx) }))
	}
	if task.Phase != proto.PhaseIncremental {
		if task.Spec.IsTwoWay() && !task.Spec.IsReverse() {
			if err := r.prepareReverse(gctx, &task, tables); err != nil {
				return err
			}
		}
		r.setStatus(ctx, proto.PhaseIncremental, proto.StateRunning, nil, true)
	}
	// Sequences are not in the change stream: this unit keeps them in
	// step beside the capture.
	if k := r.newSequenceKeeper(&task.Spec, source, sink, tables); k != nil {
		g.Go(safe.Go("sequences", func() error { return k.run(gctx) }))
	}
	// The apply groups are units of their own, which the leader places
	// once the task is incremental; this unit goes on capturing.
	return g.Wait()
}

// waitOthers collects the errors of units already started when a phase
// failed (the group's context is cancelled by then).
func waitOthers(g *errgroup.Group) error {
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// errTablesChanged ends an attempt when tables were added to or removed
// from the running task: the next one publishes the new set.
var errTablesChanged = errors.New("the task's tables changed")

// watchTables returns errTablesChanged once the task's tables change
// (ChangeTables) after an attempt started with changes of them.
func (r *Runner) watchTables(ctx context.Context, changes uint64) error {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if t, ok := r.Store.Task(r.Name); ok && t.TablesChanges != changes {
			return errTablesChanged
		}
	}
}

// onDDL keeps the task's tables in step with a schema change before the
// capture publishes it: a new or renamed table joins the recorded set and
// its group consumer's subjects (or interest retention would drop its
// rows); a dropped one leaves the set.
func (r *Runner) onDDL(ctx context.Context, ev *proto.DDLEvent) error {
	task, ok := r.Store.Task(r.Name)
	if !ok {
		return fmt.Errorf("task %s is gone", r.Name)
	}
	keys := slices.Clone(task.Tables)
	if ev.Old != nil && ev.New == nil || ev.Renamed() {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == ev.Old.ID.Key() })
	}
	if ev.New != nil && !slices.Contains(keys, ev.New.ID.Key()) {
		keys = append(keys, ev.New.ID.Key())
		if ev.Old == nil {
			r.logNewTable(ev.New)
		}
	}
	if slices.Equal(keys, task.Tables) {
		return nil
	}
	tables := make([]proto.TableID, 0, len(keys)+1)
	for _, k := range keys {
		tables = append(tables, proto.TableIDFromKey(k))
	}
	if ev.Renamed() {
		// The old subject keeps its consumer until the rename, published
		// there, has been applied.
		tables = append(tables, ev.Old.ID)
	}
	if err := r.EnsureStream(ctx, tables, r.linked()); err != nil {
		return err
	}
	return r.Store.Apply(ctx, coordinator.SetTaskTables{Name: r.Name, Epoch: r.epoch, Tables: keys})
}

// logNewTable says that a table created in a schema the task takes
// whole joined it; one without a primary key was given REPLICA IDENTITY
// FULL by the DDL capture in its creating transaction (capture/ddl.go),
// or PostgreSQL would refuse its updates and deletes once published.
func (r *Runner) logNewTable(def *proto.TableDef) {
	if len(def.PrimaryKey) == 0 && def.ReplicaIdentity == proto.IdentityFull {
		r.Logger.Info("a new table without a primary key joined the task; its replica identity was set at its creation", "task", r.Name, "table", def.ID.String(), "statement", capture.IdentityFixStatement(def.ID.String()))
		return
	}
	r.Logger.Info("a new table joined the task", "task", r.Name, "table", def.ID.String())
}

// linked is the task's tables linked by foreign keys (Task.Linked).
func (r *Runner) linked() map[string]string {
	task, _ := r.Store.Task(r.Name)
	return task.Linked
}

// taskTables are the tables the task syncs: the selection as it was when
// the task started. A table created later in a selected schema would
// otherwise join the publication on the next restart while nothing
// created or copied it at the destination; it is left out, with a
// warning, unless DDL sync brought it in.
func (r *Runner) taskTables(ctx context.Context, src Session, task *coordinator.Task) ([]proto.TableID, error) {
	if task.Spec.Sync.DDLEnabled() && task.Tables != nil {
		pinned := make([]proto.TableID, len(task.Tables))
		for i, k := range task.Tables {
			pinned[i] = proto.TableIDFromKey(k)
		}
		present, err := src.PresentTables(ctx, pinned)
		if err != nil {
			return nil, err
		}
		// A table the trigger added to the publication but the capture
		// has not reached yet must stay published.
		traced, err := src.DDLTables(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range traced {
			if !slices.Contains(present, t) {
				present = append(present, t)
			}
		}
		return present, nil
	}
	tables, err := src.ListTables(ctx)
	if err != nil {
		return nil, err
	}
	if task.Tables == nil {
		if !beforeFull(task.Phase) {
			return tables, nil // a task from before the set was recorded
		}
		keys := make([]string, len(tables))
		for i, t := range tables {
			keys[i] = t.Key()
		}
		linked, err := src.LinkedTables(ctx, tables)
		if err != nil {
			return nil, err
		}
		if err := r.Store.Apply(ctx, coordinator.SetTaskTables{Name: r.Name, Epoch: r.epoch, Tables: keys, Linked: linked}); err != nil {
			return nil, err
		}
		return tables, nil
	}
	pinned := make(map[string]bool, len(task.Tables))
	for _, k := range task.Tables {
		pinned[k] = true
	}
	kept := tables[:0]
	var later []string
	for _, t := range tables {
		if pinned[t.Key()] {
			kept = append(kept, t)
		} else {
			later = append(later, t.String())
		}
	}
	if len(later) > 0 {
		r.Logger.Warn("tables created after the task started are not synced (add them with sluice task update, or turn on DDL sync)", "task", r.Name, "tables", later)
	}
	return kept, nil
}
