package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/throttle"
	"github.com/sluicedb/sluice/pipeline"
	"github.com/sluicedb/sluice/proto"
)

// copyUnit loads one share of a task's full-sync chunks: it imports the
// snapshot the task's capture unit holds open (on whichever node), and
// streams each chunk from the source's COPY TO into the destination's
// COPY FROM. The destination records each chunk in the transaction that
// loads it, so a chunk retried here or by a new owner after a failover
// lands once (apply.Snapshotter).
type copyUnit struct {
	task   string
	share  int
	store  pipeline.Store
	cfg    RunnerConfig
	logger *slog.Logger
	live   *live
	health *unitHealth
}

func (u *copyUnit) run(ctx context.Context) (fenced bool) {
	// A fenced copy means its plan is over (replaced or finished): the
	// unit ends, and runs again only if the leader still wants it.
	attempt := func(ctx context.Context) error {
		err := u.attempt(ctx, u.logger)
		if errors.Is(err, apply.ErrFenced) {
			u.logger.Info("full-sync plan moved on; copy unit ends", "err", err)
			return nil
		}
		return err
	}
	return pipeline.Supervise(ctx, pipeline.Unit{Task: u.task, What: "copy unit", Where: "attempt/copy", Store: u.store, Retry: u.cfg.retry(), Log: u.logger, Health: u.health.set}, attempt)
}

// planNow returns the task's plan if it is still plan id (0: any ready plan).
func (u *copyUnit) planNow(id uint64) (*coordinator.Task, *coordinator.FullSyncPlan) {
	task, ok := u.store.Task(u.task)
	if !ok || task.FullSync == nil || !task.FullSync.Ready || (id != 0 && task.FullSync.ID != id) {
		return nil, nil
	}
	return &task, task.FullSync
}

// attempt copies the share's chunks not yet loaded, then returns nil.
func (u *copyUnit) attempt(ctx context.Context, log *slog.Logger) error {
	task, plan := u.planNow(0)
	if plan == nil {
		return nil // no plan ready: nothing to copy
	}
	type todo struct{ table, chunk int }
	var work []todo
	for i, t := range plan.Tables {
		for j, c := range t.Chunks {
			if c.Unit == u.share && !c.Done {
				work = append(work, todo{i, j})
			}
		}
	}
	// The sink opens even when the share has nothing to copy: opening
	// takes the unit over at a destination that fences by unit (Kafka
	// aborts the transaction a crashed owner left open, which would hold
	// its readers back).
	sink, err := openSink(ctx, &task.Spec, apply.Use{Kind: apply.UseCopy, Unit: u.share}, u.logger)
	if err != nil {
		return err
	}
	defer sink.Close(context.Background())
	if len(work) == 0 {
		return nil
	}
	rd, err := capture.OpenSnapshotReader(ctx, task.Spec.Source.ConnDSN(), plan.Snapshot, u.task)
	if err != nil {
		if _, still := u.planNow(plan.ID); still == nil {
			return nil // the capture planned again meanwhile
		}
		return err
	}
	defer rd.Close()

	log.Info("copying", "plan", plan.ID, "chunks", len(work))
	// The task's full-sync throttle, shared with its copy units here.
	lim, release := u.live.throttle(u.store, u.task, proto.PhaseFull, plan.Units)
	defer release()
	for _, w := range work {
		if err := lim.WaitEvent(ctx); err != nil { // a chunk is a query to the source
			return err
		}
		t := plan.Tables[w.table]
		c := t.Chunks[w.chunk]
		chunk := capture.Chunk{Table: t.Table, Columns: t.Columns, FromPage: c.FromPage, ToPage: c.ToPage, Index: w.chunk, Of: len(t.Chunks), Format: t.Format, Filter: t.Filter, Partitioned: t.Partitioned, Exprs: task.Spec.ColumnExprs(t.Table)}
		dest, destCols := t.Target()
		load := apply.ChunkLoad{Task: u.task, Plan: plan.ID, Table: dest, Chunk: w.chunk, Columns: destCols, Types: t.Types, Key: t.TargetKey(), SnapshotLSN: plan.LSN, Format: t.Format, Keep: t.Keep}
		var sent atomic.Int64
		stopProgress := u.reportProgress(ctx, coordinator.MarkChunkProgress{Name: u.task, Plan: plan.ID, Table: w.table, Chunk: w.chunk}, &sent)
		rows, err := sink.CopyChunk(ctx, load, func(w io.Writer) (int64, error) {
			return rd.Copy(ctx, chunk, &throttledWriter{ctx: ctx, w: w, lim: lim, live: u.live, rows: &sent})
		})
		stopProgress()
		if err != nil {
			return err
		}
		if err := u.mark(ctx, coordinator.MarkChunkCopied{Name: u.task, Plan: plan.ID, Table: w.table, Chunk: w.chunk, Rows: rows}); err != nil {
			return err
		}
	}
	return nil
}

// chunkProgressEvery is how often a chunk being copied records the rows
// it has sent so far.
const chunkProgressEvery = time.Second

// reportProgress records sent, the rows of the chunk cmd names sent so
// far, every chunkProgressEvery until stop is called: a long chunk shows
// in the task's progress while it loads. A failed report is left to the
// next (progress only).
func (u *copyUnit) reportProgress(ctx context.Context, cmd coordinator.MarkChunkProgress, sent *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(chunkProgressEvery)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if n := sent.Load(); n > last {
				cmd.Rows = n
				if err := u.store.Apply(ctx, cmd); err == nil {
					last = n
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// mark records a loaded chunk, through a leader election if one is on.
// A replaced plan means there is nothing left to record.
func (u *copyUnit) mark(ctx context.Context, cmd coordinator.MarkChunkCopied) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := u.store.Apply(ctx, cmd)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, coordinator.ErrStaleEpoch):
			return fmt.Errorf("%w: %v", apply.ErrFenced, err)
		case !errors.Is(err, coordinator.ErrNotLeader) || time.Now().After(deadline):
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// throttledWriter holds COPY data to the full-sync throttle. The source
// sends one COPY message per row, and pgconn writes each with one Write
// call, so a Write counts as a row (the binary format's header and
// trailer add two, which a rate does not notice).
type throttledWriter struct {
	ctx  context.Context
	w    io.Writer
	lim  *throttle.Limiter
	live *live         // counts the rows and bytes, for the copy rate
	rows *atomic.Int64 // the chunk's rows sent so far, for its progress
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	if err := t.lim.Wait(t.ctx, 1, len(p)); err != nil {
		return 0, err
	}
	t.live.copiedRows.Add(1)
	t.rows.Add(1)
	t.live.copiedBytes.Add(int64(len(p)))
	return t.w.Write(p)
}
