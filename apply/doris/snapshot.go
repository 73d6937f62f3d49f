package doris

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// planRow is a table's row in sluice_plans: the full-sync plan that holds
// it, and whether that plan finished.
type planRow struct {
	plan     uint64
	finished bool
	// nonce tells this binding of the table from an earlier one with the
	// same plan (a task reset): it goes into the chunks' labels.
	nonce uint64
	found bool
}

func (s *Sink) readPlan(ctx context.Context, task, key string) (planRow, error) {
	res, err := s.c.query(ctx, "SELECT `plan`, `finished`, `nonce` FROM `sluice_plans` WHERE `task` = "+sqlString(task)+" AND `tbl` = "+sqlString(key))
	if err != nil {
		return planRow{}, fmt.Errorf("read the table's load plan: %w", err)
	}
	if len(res.rows) == 0 {
		return planRow{}, nil
	}
	return planRow{plan: uint64(atoi64(res.col(0, "plan"))), finished: atoi64(res.col(0, "finished")) == 1, nonce: uint64(atoi64(res.col(0, "nonce"))), found: true}, nil
}

func (s *Sink) writePlan(ctx context.Context, task, key string, p planRow) error {
	fin := 0
	if p.finished {
		fin = 1
	}
	return s.loadMeta(ctx, "sluice_plans", "p", []map[string]any{{"task": task, "tbl": key, "plan": p.plan, "finished": fin, "nonce": p.nonce}})
}

// BeginTable empties the table (unless keep) and binds it to plan.
func (s *Sink) BeginTable(ctx context.Context, task string, t proto.TableID, plan uint64, keep bool) error {
	key := tblKey(t)
	cur, err := s.readPlan(ctx, task, key)
	if err != nil {
		return err
	}
	switch {
	case cur.found && cur.plan > plan:
		return fmt.Errorf("%w (table %s belongs to load plan %d, not %d)", apply.ErrFenced, t, cur.plan, plan)
	case cur.found && cur.plan == plan:
		return nil // bound already: its loaded chunks stand
	}
	name := dorisName(t)
	if !keep {
		if err := s.c.exec(ctx, "TRUNCATE TABLE "+quote(name)); err != nil {
			return fmt.Errorf("empty %s for its full sync: %w", name, err)
		}
	}
	if err := s.c.exec(ctx, "DELETE FROM `sluice_chunks` WHERE `task` = "+sqlString(task)+" AND `tbl` = "+sqlString(key)); err != nil {
		return err
	}
	return s.writePlan(ctx, task, key, planRow{plan: plan, nonce: uint64(time.Now().UnixNano()) & (1<<62 - 1)})
}

// CopyFormatFor: chunks come as COPY text, turned into JSON lines.
func (s *Sink) CopyFormatFor(context.Context, *proto.TableDef, int) (proto.CopyFormat, error) {
	return proto.CopyText, nil
}

// chunkRow is a chunk's row in sluice_chunks.
type chunkRow struct {
	rows  int64
	label string
	txn   int64
	found bool
}

func (s *Sink) readChunk(ctx context.Context, c apply.ChunkLoad, key string) (chunkRow, error) {
	res, err := s.c.query(ctx, fmt.Sprintf("SELECT `rows_loaded`, `label`, `txn` FROM `sluice_chunks` WHERE `task` = %s AND `tbl` = %s AND `plan` = %d AND `chunk` = %d",
		sqlString(c.Task), sqlString(key), c.Plan, c.Chunk))
	if err != nil {
		return chunkRow{}, err
	}
	if len(res.rows) == 0 {
		return chunkRow{}, nil
	}
	return chunkRow{rows: atoi64(res.col(0, "rows_loaded")), label: res.col(0, "label"), txn: atoi64(res.col(0, "txn")), found: true}, nil
}

// chunkLanded settles a recorded chunk: loaded (committing it if a crash
// left it precommitted), or not (aborted: load it again).
func (s *Sink) chunkLanded(ctx context.Context, table string, info *tableInfo, ck chunkRow) (bool, error) {
	state, err := s.c.loadState(ctx, ck.label)
	if err != nil {
		return false, err
	}
	switch state {
	case stateVisible, stateCommitted:
		return true, nil
	case statePrecommitted, statePrepare:
		if err := s.c.txnOp(ctx, table, ck.txn, ck.label, "commit"); err != nil && !isDone(err) {
			return false, err
		}
		return true, nil
	case stateAborted:
		return false, nil
	}
	if info.model == EngineUnique {
		return false, nil // loading it again changes nothing
	}
	return false, fmt.Errorf("doris: chunk of %s (label %s): Doris has forgotten the label, so whether the chunk landed cannot be told; start the table's full sync over", table, ck.label)
}

// CopyChunk loads one chunk exactly once: precommitted under a label
// named by the task, plan and chunk, recorded in sluice_chunks, committed.
func (s *Sink) CopyChunk(ctx context.Context, c apply.ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error) {
	key := tblKey(c.Table)
	name := dorisName(c.Table)
	bound := func() (planRow, error) {
		p, err := s.readPlan(ctx, c.Task, key)
		if err != nil {
			return p, err
		}
		if !p.found || p.plan != c.Plan || p.finished {
			return p, fmt.Errorf("%w (table %s is not open to chunks of load plan %d)", apply.ErrFenced, c.Table, c.Plan)
		}
		return p, nil
	}
	plan, err := bound()
	if err != nil {
		return 0, err
	}
	info, err := s.table(ctx, name)
	if err != nil {
		return 0, err
	}
	if ck, err := s.readChunk(ctx, c, key); err != nil {
		return 0, err
	} else if ck.found {
		landed, err := s.chunkLanded(ctx, name, info, ck)
		if err != nil || landed {
			return ck.rows, err
		}
	}
	enc, err := newChunkEncoder(info, c.Columns)
	if err != nil {
		return 0, err
	}
	label := fmt.Sprintf("sluice_%s_%s_p%d_%x_c%d", labelTask(c.Task), labelTag(c.Table), c.Plan, plan.nonce, c.Chunk)
	header := jsonHeader(enc.row.loadCols)
	header["two_phase_commit"] = "true"
	if info.model == EngineUnique && info.hasSeq {
		header["function_column.sequence_col"] = loadSeq
	}
	var rows int64
	var ans *loadAnswer
	for attempt := 0; ; attempt++ {
		rows = 0
		ans, err = s.load(ctx, loadRequest{table: name, label: label, header: header, open: func() (io.ReadCloser, error) {
			return enc.stream(read, &rows), nil
		}})
		var le *labelError
		if errors.As(err, &le) && attempt < 2 {
			if le.job == "FINISHED" {
				// Loaded while this load ran (it was not when this call
				// began): by another owner of the unit.
				return 0, fmt.Errorf("%w (chunk %d of %s was loaded by another owner)", apply.ErrFenced, c.Chunk, c.Table)
			}
			if err := s.c.txnOp(ctx, name, 0, label, "abort"); err != nil && !isDone(err) {
				return 0, err
			}
			continue
		}
		if err != nil {
			// Another owner may have taken the chunk over meanwhile (its
			// load aborted ours): then this one is fenced.
			if ck, cerr := s.readChunk(ctx, c, key); cerr == nil && ck.found {
				if landed, _ := s.chunkLanded(ctx, name, info, ck); landed {
					return 0, fmt.Errorf("%w (chunk %d of %s was loaded by another owner: %v)", apply.ErrFenced, c.Chunk, c.Table, err)
				}
			}
			return 0, err
		}
		break
	}
	abort := func(cause error) (int64, error) {
		if err := s.c.txnOp(context.WithoutCancel(ctx), name, ans.TxnID, label, "abort"); err != nil && !isDone(err) {
			s.log.Warn("doris: abort of a chunk failed; Doris aborts it at its precommit timeout", "label", label, "err", err)
		}
		return 0, cause
	}
	// Still this plan's, and nobody else's chunk: record, then commit.
	if _, err := bound(); err != nil {
		return abort(err)
	}
	if ck, err := s.readChunk(ctx, c, key); err != nil {
		return abort(err)
	} else if ck.found && ck.txn != ans.TxnID {
		if landed, err := s.chunkLanded(ctx, name, info, ck); err != nil || landed {
			return abort(fmt.Errorf("%w (chunk %d of %s was loaded by another owner)", apply.ErrFenced, c.Chunk, c.Table))
		}
	}
	if err := s.loadMeta(ctx, "sluice_chunks", "c", []map[string]any{{
		"task": c.Task, "tbl": key, "plan": c.Plan, "chunk": c.Chunk, "rows_loaded": rows, "label": label, "txn": ans.TxnID,
	}}); err != nil {
		return abort(err)
	}
	if err := s.c.txnOp(ctx, name, ans.TxnID, label, "commit"); err != nil && !isDone(err) {
		return 0, fmt.Errorf("commit chunk %d of %s: %w", c.Chunk, c.Table, err)
	}
	return rows, nil
}

// FinishTable closes the table to chunks of plan and stores the copy's
// position.
func (s *Sink) FinishTable(ctx context.Context, task string, t proto.TableID, plan uint64, at proto.Position, epoch uint64) error {
	key := tblKey(t)
	p, err := s.readPlan(ctx, task, key)
	if err != nil {
		return err
	}
	if !p.found || p.plan != plan {
		return fmt.Errorf("%w (table %s belongs to load plan %d, not %d)", apply.ErrFenced, t, p.plan, plan)
	}
	// A higher epoch's row stands (the epoch is the sequence column) and
	// writeOffsets' read-back fences this writer.
	row := offsetRow{pos: at, epoch: epoch, gen: p.nonce}
	if err := s.writeOffsets(ctx, task, epoch, map[string]offsetRow{key: row}); err != nil {
		return err
	}
	s.remember(task, key, row)
	p.finished = true
	return s.writePlan(ctx, task, key, p)
}

// chunkEncoder turns a chunk's COPY text rows into JSON lines.
type chunkEncoder struct {
	row   *rowEncoder
	ncols int // fields per COPY row
}

func newChunkEncoder(info *tableInfo, columns []string) (*chunkEncoder, error) {
	cols := make([]proto.Column, len(columns))
	for i, c := range columns {
		cols[i] = proto.Column{Name: c}
	}
	re, err := newRowEncoder(info, cols)
	if err != nil {
		return nil, err
	}
	return &chunkEncoder{row: re, ncols: len(columns)}, nil
}

// stream runs the chunk's read and returns its rows as JSON lines;
// *rows counts them.
func (e *chunkEncoder) stream(read func(w io.Writer) (int64, error), rows *int64) io.ReadCloser {
	src, done := apply.PipeChunk(read)
	pr, pw := io.Pipe()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		w := bufio.NewWriterSize(pw, 256<<10)
		rd := pgvalue.NewCopyTextReader(src, e.ncols)
		var line []byte
		var err error
		full := &proto.Row{Op: proto.OpInsert}
		for {
			var tp proto.Tuple
			tp, err = rd.Next()
			if err != nil {
				break
			}
			full.New = tp
			if line, err = e.row.appendImageFull(line[:0], full); err != nil {
				break
			}
			if _, err = w.Write(line); err != nil {
				break
			}
			*rows++
		}
		if err == io.EOF {
			err = nil
		}
		if err == nil {
			err = w.Flush()
		}
		if derr := done(); err == nil && derr != nil {
			err = derr
		}
		pw.CloseWithError(err)
	}()
	return &waitCloser{PipeReader: pr, finished: finished}
}

// waitCloser closes the JSON side of a chunk and waits until the chunk's
// read has ended: the source's connection is the copy unit's again (it
// must not be used by two goroutines at once).
type waitCloser struct {
	*io.PipeReader
	finished chan struct{}
}

func (w *waitCloser) Close() error {
	w.PipeReader.CloseWithError(errors.New("the load ended"))
	<-w.finished
	return nil
}

// appendImageFull writes a full-sync row: sequence 0 on a Unique table,
// and _is_deleted, _version and _record_id 0 on a Duplicate one.
func (e *rowEncoder) appendImageFull(dst []byte, r *proto.Row) ([]byte, error) {
	recordID := int64(-1) // appendImage counts one up: _record_id 0
	return e.appendImage(dst, r, r.New, false, &recordID)
}
