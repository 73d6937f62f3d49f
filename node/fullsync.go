package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// fullPhases runs everything before incremental sync: the slot and its snapshot,
// the schema before the load, the parallel copy, and what is cheaper after
// the load. The capture starts as soon as the snapshot is imported, so the
// source keeps no more WAL than it must while tables copy.
func (r *runner) fullPhases(ctx context.Context, g *errgroup.Group, task *coordinator.Task, src *pgx.Conn, sink apply.TaskSink, tables []proto.TableID) error {
	spec := task.Spec
	incremental := spec.Sync.IncrementalEnabled()
	var remaining []proto.TableID
	if spec.Sync.FullEnabled() {
		for _, t := range tables {
			if _, done := task.TablesCopied[t.Key()]; !done {
				remaining = append(remaining, t)
			}
		}
	}

	// 1. The consistent cut (invariant 4): the slot's exported snapshot on
	// the first run; after an interruption the slot's snapshot is gone,
	// and tables still to copy get a fresh one whose LSN their changes are
	// skipped up to.
	var exported *capture.ExportedSnapshot
	defer func() { exported.Close() }()
	fromSlot := false
	if incremental && !task.SlotCreated {
		info, err := capture.LookupSlot(ctx, src, r.name)
		if err != nil {
			return err
		}
		if info.Exists {
			// Created by an attempt that died before recording it; nothing
			// was applied from it, so a new one is as good.
			if err := capture.DropSlot(ctx, src, r.name); err != nil {
				return err
			}
		}
		if err := sink.ResetOffsets(ctx, r.name); err != nil {
			return fmt.Errorf("reset applied positions at the destination: %w", err)
		}
		if exported, err = capture.CreateSlot(ctx, spec.Source.ConnDSN(), r.name); err != nil {
			return err
		}
		if err := r.store.Apply(ctx, coordinator.MarkSlotCreated{Name: r.name, Epoch: r.epoch, ConsistentLSN: exported.LSN}); err != nil {
			return err
		}
		if err := r.store.Apply(ctx, coordinator.ResetTablesCopied{Name: r.name, Epoch: r.epoch}); err != nil {
			return err
		}
		task.ConsistentLSN, task.RowsCopied, fromSlot = exported.LSN, 0, true
		remaining = nil
		if spec.Sync.FullEnabled() {
			remaining = tables
		}
	} else if len(remaining) > 0 || beforeFull(task.Phase) {
		var err error
		if exported, err = capture.CreateTemporarySnapshot(ctx, spec.Source.ConnDSN(), r.name); err != nil {
			return err
		}
	}

	// holder keeps the snapshot open for the schema, the chunk plan and
	// the copy units, wherever they run, until the load ends.
	var holder *capture.SnapshotReader
	defer func() {
		if holder != nil {
			holder.Close()
		}
	}()
	if exported != nil {
		var err error
		if holder, err = capture.OpenSnapshotReader(ctx, spec.Source.ConnDSN(), exported.Name, r.name); err != nil {
			return err
		}
	}
	var schemaQ capture.Querier = src
	if holder != nil {
		schemaQ = holder.Tx()
	}
	schema, err := capture.ReadSchema(ctx, schemaQ, spec.Objects)
	if err != nil {
		return err
	}
	// Only the task's tables (a table created since it started is not).
	synced := make(map[string]bool, len(tables))
	for _, t := range tables {
		synced[t.Key()] = true
	}
	schema.Tables = slices.DeleteFunc(schema.Tables, func(d proto.TableDef) bool { return !synced[d.ID.Key()] })

	// 2. Capture, once the holder has the snapshot.
	if incremental {
		var handover *capture.ExportedSnapshot
		if fromSlot {
			handover, exported = exported, nil
		}
		if err := r.startCapture(ctx, g, src, handover); err != nil {
			return err
		}
	}
	var snapshotLSN proto.LSN
	if exported != nil || fromSlot {
		snapshotLSN = task.ConsistentLSN
		if exported != nil {
			snapshotLSN = exported.LSN
		}
	}
	exported.Close()
	exported = nil

	// 3. Schema before the load.
	if beforeFull(task.Phase) {
		if spec.Sync.SchemaEnabled() && spec.ConflictPolicy() == "ignore" {
			// Which tables exist before the task creates any: the full
			// sync keeps their rows.
			if err := r.markKeptTables(ctx, sink, tables); err != nil {
				return err
			}
		}
		if spec.Sync.SchemaEnabled() {
			r.setStatus(ctx, proto.PhaseSchema, proto.StateRunning, nil, true)
			if err := sink.ApplyPreData(ctx, schema); err != nil {
				return fmt.Errorf("schema sync: %w", err)
			}
		}
		if spec.Sync.FullEnabled() {
			r.setStatus(ctx, proto.PhaseFull, proto.StateRunning, nil, true)
		}
	}

	// 4. The load, by the copy units.
	if len(remaining) > 0 {
		if err := r.load(ctx, holder, sink, schema, remaining, len(tables), task.RowsCopied, snapshotLSN); err != nil {
			return err
		}
	}
	if holder != nil {
		holder.Close()
		holder = nil
	}

	// 5. After the load: secondary indexes, foreign keys, sequences; then
	// the destination names (renames run again harmlessly).
	if !task.PostDataDone {
		if spec.Sync.SchemaEnabled() {
			if err := sink.ApplyPostData(ctx, schema); err != nil {
				return fmt.Errorf("schema sync after the full load: %w", err)
			}
			if err := sink.SyncSequences(ctx, schema); err != nil {
				return fmt.Errorf("sequence sync: %w", err)
			}
		}
		if err := r.store.Apply(ctx, coordinator.MarkPostDataDone{Name: r.name, Epoch: r.epoch}); err != nil {
			return err
		}
	}
	if !spec.Sync.SchemaEnabled() {
		return nil
	}
	return renameTables(ctx, r.name, sink, spec.Names(), schema)
}

// renameTables gives loaded tables their destination names, where the
// destination loads under the source's (tableRenamer).
func renameTables(ctx context.Context, task string, sink apply.TaskSink, names *proto.NameMap, schema *proto.Schema) error {
	rn, ok := sink.(apply.TableRenamer)
	if !ok {
		return nil
	}
	defs := make([]*proto.TableDef, len(schema.Tables))
	for i := range schema.Tables {
		defs[i] = &schema.Tables[i]
	}
	return rn.RenameTables(ctx, task, names, defs)
}

func beforeFull(p proto.Phase) bool { return p == proto.PhasePrecheck || p == proto.PhaseSchema }

// load plans the chunks of tables, shares them among copy units (which
// the leader places on the task's workers, copyunit.go), and finishes each
// table once its chunks are loaded. It keeps the snapshot open meanwhile.
func (r *runner) load(ctx context.Context, holder *capture.SnapshotReader, sink apply.TaskSink, schema *proto.Schema, tables []proto.TableID, tablesTotal int, rowsBefore int64, lsn proto.LSN) error {
	plan, err := r.planLoad(ctx, holder, sink, schema, tables)
	if err != nil {
		return err
	}
	if plan.Snapshot, err = holder.Export(ctx); err != nil {
		return err
	}
	plan.LSN, plan.TablesTotal, plan.RowsEstimated = lsn, tablesTotal, plan.RowsEstimated+rowsBefore
	if err := r.store.Apply(ctx, coordinator.SetFullSyncPlan{Name: r.name, Epoch: r.epoch, Plan: *plan}); err != nil {
		return fmt.Errorf("record the full-sync plan: %w", err)
	}
	task, ok := r.store.Task(r.name)
	if !ok || task.FullSync == nil {
		return fmt.Errorf("task %s: the full-sync plan just recorded is gone", r.name)
	}
	id := task.FullSync.ID
	chunks := 0
	for _, t := range plan.Tables {
		dest, _ := t.Target()
		if err := sink.BeginTable(ctx, r.name, dest, id, t.Keep); err != nil {
			return err
		}
		chunks += len(t.Chunks)
	}
	if err := r.store.Apply(ctx, coordinator.MarkFullSyncReady{Name: r.name, Epoch: r.epoch, Plan: id}); err != nil {
		return err
	}
	r.logger.Info("full sync", "task", r.name, "plan", id, "tables", len(plan.Tables), "chunks", chunks, "copy_units", plan.Units,
		"estimated_rows", plan.RowsEstimated-rowsBefore, "snapshot_lsn", lsn.String())

	finished := make([]bool, len(plan.Tables))
	left := len(plan.Tables)
	tick := time.NewTicker(200 * time.Millisecond)
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
		task, ok := r.store.Task(r.name)
		if !ok {
			return fmt.Errorf("task %s is gone", r.name)
		}
		p := task.FullSync
		if p == nil || p.ID != id {
			return fmt.Errorf("%w: full-sync plan %d of %s was replaced", coordinator.ErrStaleEpoch, id, r.name)
		}
		for i := range p.Tables {
			done, rows := p.TableDone(i)
			if finished[i] || !done {
				continue
			}
			t := p.Tables[i].Table
			dest, _ := p.Tables[i].Target()
			if err := sink.FinishTable(ctx, r.name, dest, id, proto.EndOf(lsn), r.epoch); err != nil {
				return err
			}
			if err := r.store.Apply(ctx, coordinator.MarkTablesCopied{Name: r.name, Epoch: r.epoch, Tables: map[string]proto.LSN{t.Key(): lsn}, Rows: rows}); err != nil {
				return err
			}
			finished[i] = true
			left--
		}
	}
	return nil
}

// planLoad splits tables into chunks and shares them among copy units:
// biggest tables first, each chunk to the unit with the least bytes so
// far, so the units end together.
func (r *runner) planLoad(ctx context.Context, holder *capture.SnapshotReader, sink apply.TaskSink, schema *proto.Schema, tables []proto.TableID) (*coordinator.FullSyncPlan, error) {
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
	var sourceMajor int
	if err := holder.Tx().QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&sourceMajor); err != nil {
		return nil, err
	}
	task, ok := r.store.Task(r.name)
	if !ok {
		return nil, fmt.Errorf("task %s is gone", r.name)
	}
	spec := &task.Spec
	names := spec.Names()
	plan := &coordinator.FullSyncPlan{}
	total := 0
	for _, def := range ordered {
		chunks, err := holder.PlanChunks(ctx, def, r.cfg.PagesPerChunk)
		if err != nil {
			return nil, err
		}
		format, err := sink.CopyFormatFor(ctx, def, sourceMajor)
		if err != nil {
			return nil, err
		}
		pc := coordinator.PlannedCopy{Table: def.ID, Columns: def.CopiedColumns(), Format: format, Filter: spec.RowFilter(def.ID),
			Partitioned: def.Partitioned, Keep: task.KeptTables[def.ID.Key()], Types: def.CopiedTypes(), Key: def.PrimaryKey}
		if _, renames := sink.(apply.TableRenamer); names != nil && (!spec.Sync.SchemaEnabled() || !renames) {
			// No schema sync: the table exists at the destination under
			// its new names already. (With schema sync, a tableRenamer
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
	plan.Units = max(1, min(r.cfg.SnapshotReaders, total))
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
func (r *runner) markKeptTables(ctx context.Context, sink apply.TaskSink, tables []proto.TableID) error {
	existing, err := sink.ExistingTables(ctx, tables)
	if err != nil {
		return fmt.Errorf("look up tables at the destination: %w", err)
	}
	keys := make([]string, len(existing))
	for i, t := range existing {
		keys[i] = t.Key()
	}
	return r.store.Apply(ctx, coordinator.MarkKeptTables{Name: r.name, Epoch: r.epoch, Tables: keys})
}

// addTables gives tables added to the running task (ChangeTables) their
// schema and copy while the capture goes on streaming: the publication
// has them already (the attempt prepared the source with them), so a
// snapshot taken now holds every change not in the stream, and the
// changes at or below its LSN are skipped at the destination
// (FinishTable). Their apply groups wait meanwhile (tableGate).
func (r *runner) addTables(ctx context.Context, task *coordinator.Task, src *pgx.Conn, sink apply.TaskSink, tables []proto.TableID) error {
	spec := task.Spec
	adding := map[string]bool{}
	for _, k := range task.Adding {
		adding[k] = true
	}
	var added []proto.TableID
	for _, t := range tables {
		if adding[t.Key()] {
			added = append(added, t)
		}
	}
	r.logger.Info("adding tables to the running task", "task", r.name, "tables", len(added))
	exported, err := capture.CreateTemporarySnapshot(ctx, spec.Source.ConnDSN(), r.name)
	if err != nil {
		return err
	}
	defer exported.Close()
	holder, err := capture.OpenSnapshotReader(ctx, spec.Source.ConnDSN(), exported.Name, r.name)
	if err != nil {
		return err
	}
	defer holder.Close()
	lsn := exported.LSN
	exported.Close()
	schema, err := capture.ReadSchema(ctx, holder.Tx(), spec.Objects)
	if err != nil {
		return err
	}
	schema.Tables = slices.DeleteFunc(schema.Tables, func(d proto.TableDef) bool { return !adding[d.ID.Key()] })
	if spec.Sync.SchemaEnabled() {
		if spec.ConflictPolicy() == "ignore" {
			if err := r.markKeptTables(ctx, sink, added); err != nil {
				return err
			}
		}
		if err := sink.ApplyPreData(ctx, schema); err != nil {
			return fmt.Errorf("schema of the added tables: %w", err)
		}
	}
	if spec.Sync.FullEnabled() && len(added) > 0 {
		if err := r.load(ctx, holder, sink, schema, added, len(added), 0, lsn); err != nil {
			return err
		}
	} else {
		// Nothing to copy: their changes apply from the publication's
		// start on.
		copied := map[string]proto.LSN{}
		for _, t := range added {
			copied[t.Key()] = lsn
		}
		if err := r.store.Apply(ctx, coordinator.MarkTablesCopied{Name: r.name, Epoch: r.epoch, Tables: copied}); err != nil {
			return err
		}
	}
	holder.Close()
	if spec.Sync.SchemaEnabled() {
		if err := sink.ApplyPostData(ctx, schema); err != nil {
			return fmt.Errorf("indexes and foreign keys of the added tables: %w", err)
		}
		if err := renameTables(ctx, r.name, sink, spec.Names(), schema); err != nil {
			return err
		}
	}
	r.logger.Info("tables added", "task", r.name, "tables", len(added), "snapshot_lsn", lsn.String())
	return r.store.Apply(ctx, coordinator.FinishAdding{Name: r.name, Epoch: r.epoch, Tables: task.Adding})
}
