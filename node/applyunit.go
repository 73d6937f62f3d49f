package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/transform"
	"github.com/sluicedb/sluice/pipeline"
	"github.com/sluicedb/sluice/proto"
)

// applyUnit runs one table group of a task: its durable consumer into
// the destination, writing with the assignment's epoch so that a sink
// refuses it once the group has moved to a newer owner (invariant 3).
type applyUnit struct {
	task   string
	group  int
	epoch  uint64
	store  pipeline.Store
	js     jetstream.JetStream
	cfg    RunnerConfig
	logger *slog.Logger
	live   *live
	health *unitHealth
}

func (u *applyUnit) run(ctx context.Context) (fenced bool) {
	return pipeline.Supervise(ctx, pipeline.Unit{Task: u.task, What: "apply group", Where: "attempt/apply", Store: u.store, Retry: u.cfg.retry(), Log: u.logger, Health: u.health.set}, u.attempt)
}

// attempt applies until the first error (Supervise sets the task back to
// running once it has run well for a while after an error).
func (u *applyUnit) attempt(ctx context.Context) error {
	task, ok := u.store.Task(u.task)
	if !ok {
		return fmt.Errorf("task %s is gone", u.task)
	}
	sink, err := openSink(ctx, &task.Spec, apply.Use{Kind: apply.UseApply, Unit: u.group, HeartbeatWriter: u.group == heartbeatGroup}, u.logger)
	if err != nil {
		return err
	}
	defer sink.Close(context.Background())
	wcfg := u.cfg.Worker
	wcfg.Task, wcfg.Group, wcfg.JetStream, wcfg.Sink, wcfg.Epoch, wcfg.Logger = u.task, u.group, u.js, sink, u.epoch, u.logger
	wcfg.Names = task.Spec.Names()
	wcfg.DDLOps = task.Spec.Sync.DDLOps()
	wcfg.Groups = u.cfg.Groups
	closeTransform := setTransform(&wcfg, &task.Spec)
	defer func() { closeTransform() }()
	wcfg.Stats = &apply.WorkerStats{}
	u.live.setWorker(u.group, wcfg.Stats)
	// The task's incremental throttle, shared with its groups here.
	lim, release := u.live.throttle(u.store, u.task, proto.PhaseIncremental, u.cfg.Groups)
	defer release()
	wcfg.Throttle = lim

	// The rows it applies count in the task's total, which outlives
	// this run (coordinator.ReportRowsApplied).
	rows := &rowsReporter{store: u.store, task: u.task, unit: fmt.Sprintf("apply/%d", u.group), epoch: u.epoch, log: u.logger}
	rows.use(ctx, wcfg.Stats)
	stopRows := rows.start(ctx)
	defer stopRows()
	gate := &tableGate{store: u.store, task: u.task}
	wcfg.Held = gate.held
	for {
		err := apply.RunWorker(ctx, wcfg)
		var held *apply.HeldError
		if !errors.As(err, &held) {
			return err
		}
		// A table added to the task is being copied: the group waits
		// (its other tables too), then starts again from the positions.
		u.logger.Info("apply group waits for a table being added", "table", held.Table.String())
		for gate.refresh(); gate.held(held.Table); gate.refresh() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
		wcfg.Stats = &apply.WorkerStats{}
		u.live.setWorker(u.group, wcfg.Stats)
		rows.use(ctx, wcfg.Stats)
		if t, ok := u.store.Task(u.task); ok {
			wcfg.Names = t.Spec.Names()
			// The added table's transforms too.
			closeTransform()
			closeTransform = setTransform(&wcfg, &t.Spec)
		}
	}
}

// tableGate tells the tables whose changes must wait: those added to the
// running task and not copied yet. Its view of the replicated state is
// refreshed at most every 200 ms: ChangeTables is committed before the
// capture starts over to publish the added tables.
type tableGate struct {
	store pipeline.Store
	task  string
	at    time.Time
	hold  []string // source names, as TableID.String
	// objects: changes to objects beside tables wait until schema sync
	// has created those the snapshot saw (after the load), or it would
	// put an older definition back over a newer one.
	objects bool
}

func (g *tableGate) refresh() {
	g.at = time.Now()
	g.hold, g.objects = nil, false
	if t, ok := g.store.Task(g.task); ok {
		g.hold = t.AddingNotCopied()
		g.objects = !t.PostDataDone
	}
}

func (g *tableGate) held(t proto.TableID) bool {
	if time.Since(g.at) > 200*time.Millisecond {
		g.refresh()
	}
	if t == proto.ObjectsTable {
		return g.objects
	}
	return slices.Contains(g.hold, t.String())
}

// setTransform gives the worker the task's column transforms (none when
// the spec has none) and returns what closes their source connection.
func setTransform(wcfg *apply.WorkerConfig, spec *proto.TaskSpec) (close func()) {
	wcfg.Transform = nil
	tr := transform.New(spec.Source.ConnDSN(), spec)
	if tr == nil {
		return func() {}
	}
	wcfg.Transform = tr
	return tr.Close
}
