package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// TaskStore is what a runner needs of the replicated state.
type TaskStore interface {
	Task(name string) (coordinator.Task, bool)
	Tasks() []coordinator.Task
	Apply(ctx context.Context, cmd coordinator.Command) error
}

// RunnerConfig tunes how a task runs; zero values take defaults.
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

// runner runs one task on this node: its phases, its capture and apply
// units, and its retries.
type runner struct {
	name   string
	epoch  uint64 // the task's epoch when this runner started
	store  TaskStore
	js     jetstream.JetStream
	cfg    RunnerConfig
	logger *slog.Logger
	live   *live
	health *unitHealth
}

// errReleased ends a task that has nothing more to do (full sync only).
var errReleased = errors.New("task finished")

// run supervises the task until ctx ends or the task fails for good.
// Each failure is retried with backoff while its kind's retry window is
// open (invariant 7); the window opens at the first failure and closes
// the task when it ends. An attempt that ran for a while resets it.
func (r *runner) run(ctx context.Context) (fenced bool) {
	// Raise the epoch first, fencing an earlier capture of the task. A
	// leader election can refuse it for a moment: try again.
	for {
		err := r.store.Apply(ctx, coordinator.BumpEpoch{Name: r.name})
		if err == nil {
			break
		}
		if errors.Is(err, coordinator.ErrTaskNotFound) || ctx.Err() != nil {
			return false
		}
		r.logger.Warn("cannot start task yet", "task", r.name, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	task, ok := r.store.Task(r.name)
	if !ok {
		return false
	}
	r.epoch = task.Epoch
	rw := newRetryWindow(r.cfg)
	for {
		started := time.Now()
		r.health.set(true, nil)
		// A panic in the attempt is an error of kind other (logged with
		// its stack by the process's hook, counted), retried in the
		// other-failures window; the attempt's deferred calls have
		// stopped its units and closed its connections by then.
		err := safe.Run("attempt/capture", func() error { return r.attempt(ctx) })
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errTablesChanged) {
			r.logger.Info("the task's tables changed; its capture starts over", "task", r.name)
			continue
		}
		if errors.Is(err, errReleased) {
			r.setStatus(ctx, "", proto.StateReleased, nil, true)
			return false
		}
		if errors.Is(err, apply.ErrFenced) || errors.Is(err, coordinator.ErrStaleEpoch) {
			r.logger.Warn("task fenced by a newer owner; stopping here", "task", r.name)
			return true
		}
		r.health.set(false, err)
		task, ok := r.store.Task(r.name)
		if !ok {
			return false
		}
		terr, closed := rw.fail(err, time.Since(started), &task, r.store.Tasks())
		if closed {
			r.logger.Error("task failed: retry window closed", "task", r.name, "kind", terr.Kind, "err", err)
			r.setStatus(ctx, "", proto.StateFailed, terr, false)
			return false
		}
		r.logger.Warn("task error; retrying", "task", r.name, "kind", terr.Kind, "in", rw.backoff, "until", terr.RetryUntil.Format(time.RFC3339), "err", err)
		r.setStatus(ctx, "", proto.StateRetrying, terr, false)
		if !rw.wait(ctx) {
			return false
		}
	}
}

// retryWindow tracks one unit's retry window and backoff (invariant 7).
type retryWindow struct {
	start    time.Time
	kind     proto.ErrorKind
	backoff  time.Duration
	min, max time.Duration
	minute   time.Duration // RunnerConfig.RetryMinute
}

func newRetryWindow(cfg RunnerConfig) *retryWindow {
	minute := cfg.RetryMinute
	if minute <= 0 {
		minute = time.Minute
	}
	return &retryWindow{backoff: cfg.MinBackoff, min: cfg.MinBackoff, max: cfg.MaxBackoff, minute: minute}
}

// fail records a failure of an attempt that ran for ranFor; it returns
// the error to show and whether the window has closed. A new kind of
// failure, or one after a minute of running well, opens a new window.
// The window's start lives in the replicated state too (the task's
// last error and its end), so a unit moved to another node, or a task's
// other unit failing the same way, goes on with the same window instead
// of opening a fresh one.
func (rw *retryWindow) fail(err error, ranFor time.Duration, task *coordinator.Task, all []coordinator.Task) (*proto.TaskError, bool) {
	kind := Classify(err)
	now := time.Now()
	window := time.Duration(float64(retryWindowFor(task, all, kind)) * float64(rw.minute) / float64(time.Minute))
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

// retryWindowFor is the task's window for kind, or a shorter one of any
// task that shares its source or destination server (DESIGN invariant 7:
// the shortest wins among tasks sharing an endpoint).
func retryWindowFor(task *coordinator.Task, all []coordinator.Task, kind proto.ErrorKind) time.Duration {
	of := func(r proto.RetrySpec) time.Duration {
		if kind == proto.ErrorConnection {
			return r.ConnectionRetry()
		}
		return r.OtherRetry()
	}
	window := of(task.Spec.Retry)
	mine := map[string]bool{}
	for _, e := range endpoints(&task.Spec) {
		mine[e] = true
	}
	for i := range all {
		o := &all[i]
		if o.Spec.Name == task.Spec.Name || o.Deleting {
			continue
		}
		for _, e := range endpoints(&o.Spec) {
			if mine[e] {
				window = min(window, of(o.Spec.Retry))
				break
			}
		}
	}
	return window
}

// endpoints names the servers a task reads from and writes to, host:port.
func endpoints(spec *proto.TaskSpec) []string {
	out := apply.Endpoints(spec)
	if e := pgconfig.Endpoint(spec.Source.DSN); e != "" {
		out = append(out, e)
	}
	return out
}

// wait sleeps the backoff, then doubles it; false when ctx ended.
func (rw *retryWindow) wait(ctx context.Context) bool {
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

func (r *runner) setStatus(ctx context.Context, phase proto.Phase, state proto.State, terr *proto.TaskError, keepErr bool) {
	cmd := coordinator.SetTaskStatus{Name: r.name, Epoch: r.epoch, Phase: phase, State: state, Error: terr, KeepError: keepErr}
	err := r.store.Apply(ctx, cmd)
	// A leader election refuses writes for a moment; a lost phase change
	// would leave the task's apply groups unplaced, so try again.
	for deadline := time.Now().Add(30 * time.Second); errors.Is(err, coordinator.ErrNotLeader) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		err = r.store.Apply(ctx, cmd)
	}
	if errors.Is(err, coordinator.ErrStaleEpoch) {
		return // paused or handed over: the worker stops this runner
	}
	if err != nil && ctx.Err() == nil {
		r.logger.Warn("cannot record task status", "task", r.name, "err", err)
	}
}

// attempt runs the task's remaining phases once.
func (r *runner) attempt(ctx context.Context) error {
	task, ok := r.store.Task(r.name)
	if !ok {
		return fmt.Errorf("task %s is gone", r.name)
	}
	spec := task.Spec
	r.live.reset()
	r.setStatus(ctx, "", proto.StateRunning, nil, true)

	src, err := pgconfig.Connect(ctx, spec.Source.ConnDSN(), "sluice task "+r.name)
	if err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	defer src.Close(context.Background())
	sink, err := openSink(ctx, &spec, apply.Use{Kind: apply.UseTask}, r.logger)
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
		if err := apply.EnsureStream(ctx, r.js, r.name, r.cfg.Groups, r.cfg.StreamReplicas, tables); err != nil {
			return err
		}
		if err := capture.PrepareSource(ctx, src, r.name, tables, spec.RowFilter, spec.SelectedColumns, spec.Sync.DDLEnabled()); err != nil {
			return err
		}
		if spec.Sync.DDLEnabled() {
			if err := capture.InstallDDLCapture(ctx, src, r.name, tables, spec.WholeSchemas()); err != nil {
				return err
			}
		}
	}

	// Units (capture, apply workers) run in g; whichever fails first
	// stops the others, and so does a failing phase.
	unitsCtx, stopUnits := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(unitsCtx)
	defer func() { stopUnits(); _ = g.Wait() }()
	if task.Phase != proto.PhaseIncremental {
		if err := r.fullPhases(gctx, g, &task, src, sink, tables); err != nil {
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
		if task, ok = r.store.Task(r.name); !ok {
			return fmt.Errorf("task %s is gone", r.name)
		}
	} else if incremental {
		if err := r.startCapture(gctx, g, src, nil); err != nil {
			return err
		}
		if len(task.Adding) > 0 {
			if err := r.addTables(gctx, &task, src, sink, tables); err != nil {
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
	if task.Phase != proto.PhaseIncremental {
		r.setStatus(ctx, proto.PhaseIncremental, proto.StateRunning, nil, true)
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

// startCapture runs the capture unit in g, from the slot's confirmed
// position, or on conn (the connection that created the slot).
func (r *runner) startCapture(ctx context.Context, g *errgroup.Group, src *pgx.Conn, exported *capture.ExportedSnapshot) error {
	ccfg := r.cfg.Capture
	ccfg.Task = r.name
	task, _ := r.store.Task(r.name)
	ccfg.SourceDSN = task.Spec.Source.ConnDSN()
	ccfg.Operations = task.Spec.Operations
	ccfg.Columns = task.Spec.SelectedColumns
	if task.Spec.Sync.DDLEnabled() {
		ccfg.OnDDL = r.onDDL
	}
	ccfg.JetStream = r.js
	ccfg.Logger = r.logger
	c, err := capture.New(ccfg)
	if err != nil {
		return err
	}
	start := task.ConsistentLSN
	if exported == nil {
		slot, err := capture.LookupSlot(ctx, src, r.name)
		if err != nil {
			return err
		}
		if !slot.Exists {
			return fmt.Errorf("replication slot %s is missing in the source: it was dropped outside Sluice; delete and recreate the task", proto.SlotName(r.name))
		}
		if slot.ConfirmedLSN > start {
			start = slot.ConfirmedLSN
		}
	}
	r.live.setCapture(c)
	var conn *pgconn.PgConn
	if exported != nil {
		conn, exported.Conn = exported.Conn, nil
	}
	g.Go(safe.Go("capture", func() error { return c.Run(ctx, start, conn) }))
	return nil
}

// errTablesChanged ends an attempt when tables were added to or removed
// from the running task: the next one publishes the new set.
var errTablesChanged = errors.New("the task's tables changed")

// watchTables returns errTablesChanged once the task's tables change
// (ChangeTables) after an attempt started with changes of them.
func (r *runner) watchTables(ctx context.Context, changes uint64) error {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if t, ok := r.store.Task(r.name); ok && t.TablesChanges != changes {
			return errTablesChanged
		}
	}
}

// onDDL keeps the task's tables in step with a schema change before the
// capture publishes it: a new or renamed table joins the recorded set and
// its group consumer's subjects (or interest retention would drop its
// rows); a dropped one leaves the set.
func (r *runner) onDDL(ctx context.Context, ev *proto.DDLEvent) error {
	task, ok := r.store.Task(r.name)
	if !ok {
		return fmt.Errorf("task %s is gone", r.name)
	}
	keys := slices.Clone(task.Tables)
	if ev.Old != nil && ev.New == nil || ev.Renamed() {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == ev.Old.ID().Key() })
	}
	if ev.New != nil && !slices.Contains(keys, ev.New.ID().Key()) {
		keys = append(keys, ev.New.ID().Key())
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
		tables = append(tables, ev.Old.ID())
	}
	if err := apply.EnsureStream(ctx, r.js, r.name, r.cfg.Groups, r.cfg.StreamReplicas, tables); err != nil {
		return err
	}
	return r.store.Apply(ctx, coordinator.SetTaskTables{Name: r.name, Epoch: r.epoch, Tables: keys})
}

// taskTables are the tables the task syncs: the selection as it was when
// the task started. A table created later in a selected schema would
// otherwise join the publication on the next restart while nothing
// created or copied it at the destination; it is left out, with a
// warning, until adding tables to a running task exists.
func (r *runner) taskTables(ctx context.Context, src *pgx.Conn, task *coordinator.Task) ([]proto.TableID, error) {
	if task.Spec.Sync.DDLEnabled() && task.Tables != nil {
		pinned := make([]proto.TableID, len(task.Tables))
		for i, k := range task.Tables {
			pinned[i] = proto.TableIDFromKey(k)
		}
		present, err := capture.PresentTables(ctx, src, pinned)
		if err != nil {
			return nil, err
		}
		// A table the trigger added to the publication but the capture
		// has not reached yet must stay published.
		traced, err := capture.DDLTables(ctx, src, r.name)
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
	tables, err := capture.ListTables(ctx, src, task.Spec.Objects)
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
		if err := r.store.Apply(ctx, coordinator.SetTaskTables{Name: r.name, Epoch: r.epoch, Tables: keys}); err != nil {
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
		r.logger.Warn("tables created after the task started are not synced (adding tables to a running task is not available yet)", "task", r.name, "tables", later)
	}
	return kept, nil
}
