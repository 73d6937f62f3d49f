package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// fullPhases runs everything before incremental sync: the slot and its snapshot,
// the schema before the load, the parallel copy, and what is cheaper after
// the load. The capture starts as soon as the snapshot is imported, so the
// source keeps no more WAL than it must while tables copy.
func (r *runner) fullPhases(ctx context.Context, g *errgroup.Group, task *coordinator.Task, src *pgx.Conn, sink *postgres.Sink, tables []proto.TableID) error {
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
		if exported, err = capture.CreateSlot(ctx, spec.Source.DSN, r.name); err != nil {
			return err
		}
		if err := r.store.Apply(ctx, coordinator.MarkSlotCreated{Name: r.name, ConsistentLSN: exported.LSN}); err != nil {
			return err
		}
		if err := r.store.Apply(ctx, coordinator.ResetTablesCopied{Name: r.name}); err != nil {
			return err
		}
		task.ConsistentLSN, task.RowsCopied, fromSlot = exported.LSN, 0, true
		remaining = nil
		if spec.Sync.FullEnabled() {
			remaining = tables
		}
	} else if len(remaining) > 0 || beforeFull(task.Phase) {
		var err error
		if exported, err = capture.CreateTemporarySnapshot(ctx, spec.Source.DSN, r.name); err != nil {
			return err
		}
	}

	var readers []*capture.SnapshotReader
	defer func() {
		for _, rd := range readers {
			rd.Close()
		}
	}()
	if exported != nil {
		n := r.cfg.SnapshotReaders
		if len(remaining) == 0 {
			n = 1
		}
		for i := 0; i < n; i++ {
			rd, err := capture.OpenSnapshotReader(ctx, spec.Source.DSN, exported.Name, r.name)
			if err != nil {
				return err
			}
			readers = append(readers, rd)
		}
	}
	var schemaQ capture.Querier = src
	if len(readers) > 0 {
		schemaQ = readers[0].Tx()
	}
	schema, err := capture.ReadSchema(ctx, schemaQ, spec.Objects)
	if err != nil {
		return err
	}

	// 2. Capture, once every reader holds the snapshot.
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

	// 4. The load.
	r.live.tablesTotal.Store(int64(len(tables)))
	r.live.rowsEstimated.Store(task.RowsCopied)
	if len(remaining) > 0 {
		if err := r.copyTables(ctx, readers, sink, schema, remaining, snapshotLSN, r.epoch); err != nil {
			return err
		}
	}
	for _, rd := range readers {
		rd.Close()
	}
	readers = nil

	// 5. After the load: secondary indexes, foreign keys, sequences.
	if task.PostDataDone {
		return nil
	}
	if spec.Sync.SchemaEnabled() {
		if err := sink.ApplyPostData(ctx, schema); err != nil {
			return fmt.Errorf("schema sync after the full load: %w", err)
		}
		if err := sink.SyncSequences(ctx, schema); err != nil {
			return fmt.Errorf("sequence sync: %w", err)
		}
	}
	return r.store.Apply(ctx, coordinator.MarkPostDataDone{Name: r.name})
}

func beforeFull(p proto.Phase) bool { return p == proto.PhasePrecheck || p == proto.PhaseSchema }

type tableCopy struct {
	def       *proto.TableDef
	begin     sync.Once
	beginErr  error
	chunksDue atomic.Int64
	rows      atomic.Int64
}

// copyTables loads tables chunk by chunk, each reader with its own
// destination session, through a pipe: rows stream from the source's
// COPY TO into the destination's COPY FROM, never held whole.
func (r *runner) copyTables(ctx context.Context, readers []*capture.SnapshotReader, sink *postgres.Sink, schema *proto.Schema, tables []proto.TableID, lsn proto.LSN, epoch uint64) error {
	defs := map[string]*proto.TableDef{}
	for i := range schema.Tables {
		defs[schema.Tables[i].ID.Key()] = &schema.Tables[i]
	}
	var copies []*tableCopy
	var estimate int64
	for _, t := range tables {
		def := defs[t.Key()]
		if def == nil {
			return fmt.Errorf("table %s is not in the schema read from the source", t)
		}
		copies = append(copies, &tableCopy{def: def})
		estimate += def.EstimatedRows
	}
	// Biggest first, so the long tables start early and the readers end
	// together.
	sort.SliceStable(copies, func(i, j int) bool { return copies[i].def.EstimatedBytes > copies[j].def.EstimatedBytes })
	type job struct {
		tc    *tableCopy
		chunk capture.Chunk
	}
	var jobs []job
	var sourceMajor int
	if err := readers[0].Tx().QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&sourceMajor); err != nil {
		return err
	}
	for _, tc := range copies {
		chunks, err := readers[0].PlanChunks(ctx, tc.def, r.cfg.PagesPerChunk)
		if err != nil {
			return err
		}
		format, err := sink.CopyFormatFor(ctx, tc.def, sourceMajor)
		if err != nil {
			return err
		}
		for i := range chunks {
			chunks[i].Format = format
		}
		tc.chunksDue.Store(int64(len(chunks)))
		for _, c := range chunks {
			jobs = append(jobs, job{tc: tc, chunk: c})
		}
	}
	r.live.rowsEstimated.Add(estimate)
	r.logger.Info("full sync", "task", r.name, "tables", len(copies), "chunks", len(jobs), "estimated_rows", estimate, "snapshot_lsn", lsn.String())

	queue := make(chan job)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(queue)
		for _, j := range jobs {
			select {
			case queue <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for _, rd := range readers {
		g.Go(func() error {
			for j := range queue {
				if err := r.copyChunk(gctx, rd, sink, j.tc, j.chunk, lsn, epoch); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func (r *runner) copyChunk(ctx context.Context, rd *capture.SnapshotReader, sink *postgres.Sink, tc *tableCopy, c capture.Chunk, lsn proto.LSN, epoch uint64) error {
	t := tc.def.ID
	tc.begin.Do(func() { tc.beginErr = sink.BeginTable(ctx, t) })
	if tc.beginErr != nil {
		return tc.beginErr
	}
	pr, pw := io.Pipe()
	readErr := make(chan error, 1)
	go func() {
		_, err := rd.Copy(ctx, c, pw)
		pw.CloseWithError(err)
		readErr <- err
	}()
	n, err := sink.CopyChunk(ctx, t, c.Columns, c.Format, pr)
	pr.CloseWithError(errors.New("destination stopped reading"))
	if rerr := <-readErr; rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	r.live.rowsDone.Add(n)
	tc.rows.Add(n)
	if tc.chunksDue.Add(-1) > 0 {
		return nil
	}
	if err := sink.FinishTable(ctx, r.name, t, proto.EndOf(lsn), epoch); err != nil {
		return err
	}
	rows := tc.rows.Load()
	if err := r.store.Apply(ctx, coordinator.MarkTablesCopied{Name: r.name, Tables: map[string]proto.LSN{t.Key(): lsn}, Rows: rows}); err != nil {
		return err
	}
	r.live.rowsDone.Add(-rows) // now counted in the replicated state
	return nil
}
