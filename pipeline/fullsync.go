package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// createSlot gives task (at epoch) a fresh slot, whose exported snapshot
// is its consistent cut, and forgets the positions at its destination:
// nothing was applied from a slot not recorded yet.
func (r *Runner) createSlot(ctx context.Context, task string, epoch uint64, source Source, src Session, sink apply.TaskSink) (Snapshot, error) {
	info, err := src.LookupSlot(ctx)
	if err != nil {
		return nil, err
	}
	if info.Exists {
		// Created by an attempt that died before recording it; nothing
		// was applied from it, so a new one is as good.
		if err := src.DropSlot(ctx); err != nil {
			return nil, err
		}
	}
	if err := sink.ResetOffsets(ctx, task); err != nil {
		return nil, fmt.Errorf("reset applied positions at the destination: %w", err)
	}
	snap, err := source.CreateSlot(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.Store.Apply(ctx, coordinator.MarkSlotCreated{Name: task, Epoch: epoch, ConsistentLSN: snap.LSN()}); err != nil {
		snap.Close()
		return nil, err
	}
	return snap, nil
}

// phases is one attempt's work before (and beside) incremental sync.
type phases struct {
	r      *Runner
	task   *coordinator.Task
	source Source
	src    Session
	sink   apply.TaskSink
	tables []proto.TableID
	g      *errgroup.Group // the attempt's units: the capture joins it
}

// full runs everything before incremental sync: the slot and its
// snapshot, the schema before the load, the parallel copy, and what is
// cheaper after the load. The capture starts as soon as the snapshot is
// imported, so the source keeps no more WAL than it must while tables
// copy.
func (p *phases) full(ctx context.Context) error {
	r, task, spec := p.r, p.task, &p.task.Spec
	incremental := spec.Sync.IncrementalEnabled()
	var remaining []proto.TableID
	if spec.Sync.FullEnabled() {
		for _, t := range p.tables {
			if _, done := task.TablesCopied[t.Key()]; !done {
				remaining = append(remaining, t)
			}
		}
	}

	// 1. The consistent cut (invariant 4): the slot's exported snapshot on
	// the first run; after an interruption the slot's snapshot is gone,
	// and tables still to copy get a fresh one whose LSN their changes are
	// skipped up to.
	var exported Snapshot
	closeExported := func() {
		if exported != nil {
			exported.Close()
			exported = nil
		}
	}
	defer closeExported()
	fromSlot := false
	if incremental && !task.SlotCreated {
		var err error
		if exported, err = r.createSlot(ctx, r.Name, r.epoch, p.source, p.src, p.sink); err != nil {
			return err
		}
		if err := r.Store.Apply(ctx, coordinator.ResetTablesCopied{Name: r.Name, Epoch: r.epoch}); err != nil {
			return err
		}
		task.ConsistentLSN, task.RowsCopied, fromSlot = exported.LSN(), 0, true
		remaining = nil
		if spec.Sync.FullEnabled() {
			remaining = p.tables
		}
	} else if len(remaining) > 0 || beforeFull(task.Phase) {
		var err error
		if exported, err = p.source.TemporarySnapshot(ctx); err != nil {
			return err
		}
	}

	// holder keeps the snapshot open for the schema, the chunk plan and
	// the copy units, wherever they run, until the load ends.
	var holder SnapshotSession
	closeHolder := func() {
		if holder != nil {
			holder.Close()
			holder = nil
		}
	}
	defer closeHolder()
	if exported != nil {
		var err error
		if holder, err = p.source.OpenSnapshot(ctx, exported.Name()); err != nil {
			return err
		}
	}
	var schema *proto.Schema
	var err error
	if holder != nil {
		schema, err = holder.ReadSchema(ctx)
	} else {
		schema, err = p.src.ReadSchema(ctx)
	}
	if err != nil {
		return err
	}
	// Only the task's tables (a table created since it started is not).
	synced := make(map[string]bool, len(p.tables))
	for _, t := range p.tables {
		synced[t.Key()] = true
	}
	schema.Tables = slices.DeleteFunc(schema.Tables, func(d proto.TableDef) bool { return !synced[d.ID.Key()] })

	// 2. Capture, once the holder has the snapshot.
	if incremental {
		var handover Snapshot
		if fromSlot {
			handover, exported = exported, nil
		}
		if err := p.startCapture(ctx, handover); err != nil {
			return err
		}
	}
	var snapshotLSN proto.LSN
	if exported != nil || fromSlot {
		snapshotLSN = task.ConsistentLSN
		if exported != nil {
			snapshotLSN = exported.LSN()
		}
	}
	closeExported()

	// 3. Schema before the load.
	if beforeFull(task.Phase) {
		if spec.Sync.SchemaEnabled() && spec.ConflictPolicy() == "ignore" {
			// Which tables exist before the task creates any: the full
			// sync keeps their rows.
			if err := p.markKeptTables(ctx, p.tables); err != nil {
				return err
			}
		}
		if spec.Sync.SchemaEnabled() {
			r.setStatus(ctx, proto.PhaseSchema, proto.StateRunning, nil, true)
			if err := p.sink.ApplyPreData(ctx, schema); err != nil {
				return fmt.Errorf("schema sync: %w", err)
			}
		}
		if spec.Sync.FullEnabled() {
			r.setStatus(ctx, proto.PhaseFull, proto.StateRunning, nil, true)
		}
	}

	// 4. The load, by the copy units (those of an earlier attempt's plan
	// taken over first).
	if len(remaining) > 0 {
		if !beforeFull(task.Phase) {
			if err := p.takeOverCopyUnits(ctx); err != nil {
				return err
			}
		}
		if err := p.load(ctx, holder, schema, remaining, len(p.tables), task.RowsCopied, snapshotLSN); err != nil {
			return err
		}
	}
	closeHolder()

	// 5. After the load: secondary indexes, foreign keys, sequences; then
	// the destination names (renames run again harmlessly).
	if !task.PostDataDone {
		if spec.Sync.SchemaEnabled() {
			if err := p.sink.ApplyPostData(ctx, schema); err != nil {
				return fmt.Errorf("schema sync after the full load: %w", err)
			}
			if err := p.sink.SyncSequences(ctx, schema); err != nil {
				return fmt.Errorf("sequence sync: %w", err)
			}
		}
		if err := r.Store.Apply(ctx, coordinator.MarkPostDataDone{Name: r.Name, Epoch: r.epoch}); err != nil {
			return err
		}
	}
	if !spec.Sync.SchemaEnabled() {
		return nil
	}
	return p.renameTables(ctx, schema)
}

// startCapture runs the capture in the attempt's group, from the slot's
// confirmed position, or on the session of the slot just created
// (handover).
func (p *phases) startCapture(ctx context.Context, handover Snapshot) error {
	r := p.r
	task, _ := r.Store.Task(r.Name)
	start := task.ConsistentLSN
	if handover == nil {
		slot, err := p.src.LookupSlot(ctx)
		if err != nil {
			return err
		}
		if !slot.Exists {
			return fmt.Errorf("replication slot %s is missing in the source: it was dropped outside Sluice; delete and recreate the task", proto.SlotName(r.Name))
		}
		if slot.ConfirmedLSN > start {
			start = slot.ConfirmedLSN
		}
	}
	var onDDL func(context.Context, *proto.DDLEvent) error
	if task.Spec.Sync.DDLEnabled() {
		onDDL = r.onDDL
	}
	p.g.Go(safe.Go("capture", func() error { return p.source.RunCapture(ctx, start, handover, onDDL) }))
	return nil
}

// renameTables gives loaded tables their destination names, where the
// destination loads under the source's (apply.TableRenamer).
func (p *phases) renameTables(ctx context.Context, schema *proto.Schema) error {
	rn, ok := p.sink.(apply.TableRenamer)
	if !ok {
		return nil
	}
	defs := make([]*proto.TableDef, len(schema.Tables))
	for i := range schema.Tables {
		defs[i] = &schema.Tables[i]
	}
	return rn.RenameTables(ctx, p.r.Name, p.task.Spec.Names(), defs)
}

func beforeFull(ph proto.Phase) bool { return ph == proto.PhasePrecheck || ph == proto.PhaseSchema }

// load plans the chunks of tables, shares them among copy units (which
// the leader places on the task's workers), and finishes each table once
// its chunks are loaded. It keeps the snapshot open meanwhile.
func (p *phases) load(ctx context.Context, holder SnapshotSession, schema *proto.Schema, tables []proto.TableID, tablesTotal int, rowsBefore int64, lsn proto.LSN) error {
	r := p.r
	plan, err := p.planLoad(ctx, holder, schema, tables)
	if err != nil {
		return err
	}
	if plan.Snapshot, err = holder.Export(ctx); err != nil {
		return err
	}
	plan.LSN, plan.TablesTotal, plan.RowsEstimated = lsn, tablesTotal, plan.RowsEstimated+rowsBefore
	if err := r.Store.Apply(ctx, coordinator.SetFullSyncPlan{Name: r.Name, Epoch: r.epoch, Plan: *plan}); err != nil {
		return fmt.Errorf("record the full-sync plan: %w", err)
	}
	task, ok := r.Store.Task(r.Name)
	if !ok || task.FullSync == nil {
		return fmt.Errorf("task %s: the full-sync plan just recorded is gone", r.Name)
	}
	id := task.FullSync.ID
	chunks := 0
	for _, t := range plan.Tables {
		dest, _ := t.Target()
		if err := p.sink.BeginTable(ctx, r.Name, dest, id, t.Keep); err != nil {
			return err
		}
		chunks += len(t.Chunks)
	}
	if err := r.Store.Apply(ctx, coordinator.MarkFullSyncReady{Name: r.Name, Epoch: r.epoch, Plan: id}); err != nil {
		return err
	}
	r.Logger.Info("full sync", "task", r.Name, "plan", id, "tables", len(plan.Tables), "chunks", chunks, "copy_units", plan.Units,
		"estimated_rows", plan.RowsEstimated-rowsBefore, "snapshot_lsn", lsn.String())

	finished := make([]bool, len(plan.Tables))
	left := len(plan.Tables)
	// A finished table is noticed within 50 ms: the replicated state is
	// in memory, and a table's end (its keys built, its position stored)
	// is the full sync's critical path once its chunks are in.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastCheck := time.Now()
	for left > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		// The copy units import the holder's snapshot: if its session
		// ended, they cannot, and the load starts over from a new one.
		if time.Since(lastCheck) > 5*time.Second {
			if err := holder.Alive(ctx); err != nil {
				return fmt.Errorf("the session holding the full sync's snapshot ended: %w", err)
			}
			lastCheck = time.Now()
		}
		task, ok := r.Store.Task(r.Name)
		if !ok {
			return fmt.Errorf("task %s is gone", r.Name)
		}
		fs := task.FullSync
		if fs == nil || fs.ID != id {
			return fmt.Errorf("%w: full-sync plan %d of %s was replaced", coordinator.ErrStaleEpoch, id, r.Name)
		}
		for i := range fs.Tables {
			done, rows := fs.TableDone(i)
			if finished[i] || !done {
				continue
			}
			t := fs.Tables[i].Table
			dest, _ := fs.Tables[i].Target()
			if err := p.sink.FinishTable(ctx, r.Name, dest, id, proto.EndOf(lsn), r.epoch); err != nil {
				return err
			}
			if err := r.Store.Apply(ctx, coordinator.MarkTablesCopied{Name: r.Name, Epoch: r.epoch, Tables: map[string]proto.LSN{t.Key(): lsn}, Rows: rows}); err != nil {
				return err
			}
			finished[i] = true
			left--
		}
	}
	return nil
}

// takeOverCopyUnits opens, and closes, a sink of every copy unit an
// earlier attempt's plan can have had (Config.SnapshotReaders): the sink
// of a unit's new owner ends what an earlier owner left open at the
// destination. That plan went with its capture unit (BumpEpoch), so its
// units are not placed any more, and one that died in a chunk's middle
// would otherwise leave it open: a Kafka transaction, which holds back
// read_committed readers (BeginTable's among them) until it times out.
// Before the new plan is recorded, so that no unit of it runs yet.
func (p *phases) takeOverCopyUnits(ctx context.Context) error {
	for unit := range p.r.Config.SnapshotReaders {
		s, err := p.r.OpenSink(ctx, &p.task.Spec, apply.Use{Kind: apply.UseCopy, Unit: unit, Logger: p.r.Logger})
		if err != nil {
			return fmt.Errorf("take over copy unit %d of an earlier attempt: %w", unit, err)
		}
		s.Close(context.Background())
	}
	return nil
}

// planLoad splits tables into chunks and shares them among copy units:
// biggest tables first, each chunk to the unit with the least bytes so
// far, so the units end together.
func (p *phases) planLoad(ctx context.Context, holder SnapshotSession, schema *proto.Schema, tables []proto.TableID) (*coordinator.FullSyncPlan, error) {
	r := p.r
	defs := map[string]*proto.TableDef{}
	for i := range schema.Tables {
		defs[schema.Tables[i].ID.Key()] = &schema.Tables[i]
	}
	var ordered []*proto.TableDef
	for _, t := range tables {
		def := defs[t.Key()]
		if def == nil {
			return nil, fmt.Errorf("table %s is not in the schema read from the source", t)
		}
		ordered = append(ordered, def)
	}
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].EstimatedBytes > ordered[j].EstimatedBytes })
	sourceMajor, err := holder.ServerMajor(ctx)
	if err != nil {
		return nil, err
	}
	task, ok := r.Store.Task(r.Name)
	if !ok {
		return nil, fmt.Errorf("task %s is gone", r.Name)
	}
	spec := &task.Spec
	names := spec.Names()
	_, renamesAfterLoad := p.sink.(apply.TableRenamer)
	plan := &coordinator.FullSyncPlan{}
	total := 0
	for _, def := range ordered {
		chunks, err := holder.PlanChunks(ctx, def, r.Config.PagesPerChunk)
		if err != nil {
			return nil, err
		}
		format, err := p.sink.CopyFormatFor(ctx, def, sourceMajor)
		if err != nil {
			return nil, err
		}
		if len(spec.ColumnExprs(def.ID)) > 0 {
			// Computed values load through their text form, which a
			// destination column of another type that accepts them
			// (conflicting_tables: ignore) parses; the binary form would
			// have to be the column's own type.
			format = proto.CopyText
		}
		pc := coordinator.PlannedCopy{Table: def.ID, Columns: def.CopiedColumns(), Format: format, Filter: spec.RowFilter(def.ID),
			Partitioned: def.Partitioned, Keep: task.KeptTables[def.ID.Key()], Types: def.CopiedTypes(), Key: def.PrimaryKey,
			Estimated: def.EstimatedRows}
		if names != nil && (!spec.Sync.SchemaEnabled() || !renamesAfterLoad) {
			// No schema sync: the table exists at the destination under
			// its new names already. (With schema sync, a TableRenamer
			// creates and loads it under the source's and renames it
			// after the load.)
			dest := names.Table(def.ID)
			pc.Dest, pc.DestColumns, pc.DestKey = &dest, names.ColumnsOf(def.ID, pc.Columns), names.ColumnsOf(def.ID, pc.Key)
		}
		for _, c := range chunks {
			pc.Chunks = append(pc.Chunks, coordinator.PlannedChunk{FromPage: c.FromPage, ToPage: c.ToPage})
		}
		plan.Tables = append(plan.Tables, pc)
		plan.RowsEstimated += def.EstimatedRows
		total += len(chunks)
	}
	plan.Units = max(1, min(r.Config.SnapshotReaders, total))
	load := make([]int64, plan.Units)
	for i, def := range ordered {
		pc := &plan.Tables[i]
		weight := max(1, def.EstimatedBytes/int64(len(pc.Chunks)))
		for j := range pc.Chunks {
			u := 0
			for k := range load {
				if load[k] < load[u] {
					u = k
				}
			}
			pc.Chunks[j].Unit = u
			load[u] += weight
		}
	}
	return plan, nil
}

// markKeptTables records the tables that exist at the destination already
// (conflicting_tables: ignore), once, before the schema sync creates the
// others.
func (p *phases) markKeptTables(ctx context.Context, tables []proto.TableID) error {
	existing, err := p.sink.ExistingTables(ctx, tables)
	if err != nil {
		return fmt.Errorf("look up tables at the destination: %w", err)
	}
	keys := make([]string, len(existing))
	for i, t := range existing {
		keys[i] = t.Key()
	}
	return p.r.Store.Apply(ctx, coordinator.MarkKeptTables{Name: p.r.Name, Epoch: p.r.epoch, Tables: keys})
}

// addTables gives tables added to the running task (ChangeTables) their
// schema and copy while the capture goes on streaming: the publication
// has them already (the attempt prepared the source with them), so a
// snapshot taken now holds every change not in the stream, and the
// changes at or below its LSN are skipped at the destination
// (FinishTable). Their apply groups wait meanwhile.
func (p *phases) addTables(ctx context.Context) error {
	r, task, spec := p.r, p.task, &p.task.Spec
	adding := map[string]bool{}
	for _, k := range task.Adding {
		adding[k] = true
	}
	var added []proto.TableID
	for _, t := range p.tables {
		if adding[t.Key()] {
			added = append(added, t)
		}
	}
	r.Logger.Info("adding tables to the running task", "task", r.Name, "tables", len(added))
	exported, err := p.source.TemporarySnapshot(ctx)
	if err != nil {
		return err
	}
	defer exported.Close()
	holder, err := p.source.OpenSnapshot(ctx, exported.Name())
	if err != nil {
		return err
	}
	defer holder.Close()
	lsn := exported.LSN()
	exported.Close()
	schema, err := holder.ReadSchema(ctx)
	if err != nil {
		return err
	}
	schema.Tables = slices.DeleteFunc(schema.Tables, func(d proto.TableDef) bool { return !adding[d.ID.Key()] })
	if spec.Sync.SchemaEnabled() {
		if spec.ConflictPolicy() == "ignore" {
			if err := p.markKeptTables(ctx, added); err != nil {
				return err
			}
		}
		if err := p.sink.ApplyPreData(ctx, schema); err != nil {
			return fmt.Errorf("schema of the added tables: %w", err)
		}
	}
	if spec.Sync.FullEnabled() && len(added) > 0 {
		if err := p.takeOverCopyUnits(ctx); err != nil {
			return err
		}
		if err := p.load(ctx, holder, schema, added, len(added), 0, lsn); err != nil {
			return err
		}
	} else {
		// Nothing to copy: their changes apply from the publication's
		// start on.
		copied := map[string]proto.LSN{}
		for _, t := range added {
			copied[t.Key()] = lsn
		}
		if err := r.Store.Apply(ctx, coordinator.MarkTablesCopied{Name: r.Name, Epoch: r.epoch, Tables: copied}); err != nil {
			return err
		}
	}
	holder.Close()
	if spec.Sync.SchemaEnabled() {
		if err := p.sink.ApplyPostData(ctx, schema); err != nil {
			return fmt.Errorf("indexes and foreign keys of the added tables: %w", err)
		}
		if err := p.renameTables(ctx, schema); err != nil {
			return err
		}
	}
	r.Logger.Info("tables added", "task", r.Name, "tables", len(added), "snapshot_lsn", lsn.String())
	return r.Store.Apply(ctx, coordinator.FinishAdding{Name: r.Name, Epoch: r.epoch, Tables: task.Adding})
}
