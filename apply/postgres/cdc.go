package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// Apply writes a batch of changes with their new positions. Keyed tables
// are written set-based: the rows of a table are coalesced by primary key
// into one DELETE, one COPY of the new rows, one UPDATE of the changed rows
// and a few UPDATEs of rows with unchanged TOAST values. A batch whose rows
// split cleanly by key is written by several sessions at once, one
// transaction per shard (shard.go); any other batch in one transaction.
// Should a write trip a unique constraint (two rows swapping a unique value
// inside one batch, or a destination that holds rows the source never
// had), it is written again row by row, in source order, with upserts.
func (s *Sink) Apply(ctx context.Context, ch *apply.Changes) error {
	// Another owner of the group (one being fenced) may have written part
	// of the batch: plan again against its positions. It cannot keep
	// doing so, since it is fenced at our first commit.
	for attempt := 0; ; attempt++ {
		err := s.applyOnce(ctx, ch)
		if !errors.Is(err, errFloorMoved) || attempt == 3 {
			return err
		}
		s.logger.Warn("another owner applied part of this batch; planning it again", "task", ch.Task, "epoch", ch.Epoch)
	}
}

func (s *Sink) applyOnce(ctx context.Context, ch *apply.Changes) error {
	if s.tw != nil {
		return s.applyTwoWay(ctx, ch)
	}
	segs, err := s.plan(ctx, ch)
	if err != nil {
		return err
	}
	if shards := s.partition(segs); shards != nil {
		return s.applySharded(ctx, ch, shards)
	}
	return s.applyWithRetry(ctx, ch.Task, ch.Epoch, segs, s.allShards(ch.Tables, ch.Positions))
}

// NeedsTxBoundaries: without replica mode, foreign keys check what the
// apply commits, so a batch must end where a source transaction does
// (apply.TxBoundaryApplier).
func (s *Sink) NeedsTxBoundaries() bool { return !s.replicaMode.Load() }

// plannedSegment is a segment with its destination plan, its rows
// filtered against the positions of their shards.
type plannedSegment struct {
	*apply.Segment
	plan *segmentPlan
}

// applyWithRetry writes segments and positions in one transaction,
// retrying row by row on a unique violation.
func (s *Sink) applyWithRetry(ctx context.Context, task string, epoch uint64, segs []plannedSegment, positions []shardPosition) error {
	err := s.applyTx(ctx, task, epoch, segs, positions, writePipelined)
	if errors.Is(err, errUpdateMissedRows) {
		s.logger.Debug("an update missed rows at the destination; applying the batch again without the pipeline")
		err = s.applyTx(ctx, task, epoch, segs, positions, writeDirect)
	}
	if isCode(err, "23505") {
		s.logger.Debug("set-based apply hit a unique constraint; applying the batch row by row", "err", err)
		err = s.applyTx(ctx, task, epoch, segs, positions, writeOrdered)
	}
	if err == nil {
		s.remember(positions)
	}
	return err
}

// writeMode is how an apply transaction sends its statements.
type writeMode int

const (
	// writePipelined queues what it can (pipeline.go): the usual way.
	writePipelined writeMode = iota
	// writeDirect sends each statement on its own and inserts the rows
	// an update missed right after it.
	writeDirect
	// writeOrdered writes row by row, in source order, with upserts: the
	// retry of a batch that hit a unique constraint.
	writeOrdered
)

func (s *Sink) applyTx(ctx context.Context, task string, epoch uint64, segs []plannedSegment, positions []shardPosition, mode writeMode) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if !s.replicaMode.Load() {
		// Foreign keys stay active without replica mode. Those Sluice
		// made are deferrable (deferrableKey), and a batch ends at a
		// source transaction's end (WorkerConfig.TxBoundaries): checked
		// at commit, they see the source's state, whatever order the
		// batch's tables and rows were written in.
		if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED"); err != nil {
			return err
		}
	}
	if err := s.lockOffsets(ctx, tx, task, epoch, positions); err != nil {
		return err
	}
	ordered := mode == writeOrdered
	w := &writer{pg: conn.Conn().PgConn(), tx: tx, lenient: ordered, d: s.dialect, pipelined: mode == writePipelined, buf: getWriteBuffer()}
	defer func() { putWriteBuffer(w.buf) }()
	failed := func(t proto.TableID, err error) error {
		var qe *queuedError
		if errors.As(err, &qe) {
			t = qe.table // a statement queued for an earlier segment
		}
		if isCode(err, "42703", "42P01", "42804") { // undefined column/table, datatype mismatch
			s.forgetTable(t)
		}
		return wrapTable(t, "apply changes to", err)
	}
	for _, seg := range segs {
		w.table = seg.Table
		err := w.segment(ctx, seg, ordered)
		if err == nil {
			err = w.fillGenerated(ctx, seg) // AnalyticDB: computed here (noconflict.go)
		}
		if err != nil {
			if errors.Is(err, errUpdateMissedRows) {
				return err
			}
			return failed(seg.Table, err)
		}
	}
	if err := w.send(ctx); err != nil {
		if errors.Is(err, errUpdateMissedRows) {
			return err
		}
		return failed(w.table, err)
	}
	if err := s.writeOffsets(ctx, tx, task, epoch, positions); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// segment writes one segment's rows.
func (w *writer) segment(ctx context.Context, seg plannedSegment, ordered bool) error {
	plan := seg.plan
	oldFull := seg.Identity == proto.IdentityFull
	step := func(st *apply.Step) error { return w.step(ctx, plan, st) }
	switch {
	case len(seg.Rows) == 0:
		return nil
	case len(plan.keyIdx) == 0:
		return w.applyUnkeyed(ctx, plan, seg.Segment)
	case ordered:
		for i := range seg.Rows {
			if err := apply.Coalesce(seg.Rows[i:i+1], plan.keyIdx, oldFull, step); err != nil {
				return err
			}
		}
		return nil
	default:
		return apply.Coalesce(seg.Rows, plan.keyIdx, oldFull, step)
	}
}

// writeBuffers recycles the writers' buffers (COPY data, array
// parameters) from one apply transaction to the next: grown anew each
// time, they were a large part of the apply's allocations.
var writeBuffers sync.Pool

func getWriteBuffer() []byte {
	if b, ok := writeBuffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

func putWriteBuffer(b []byte) {
	if cap(b) > 0 && cap(b) <= 64<<20 {
		writeBuffers.Put(&b)
	}
}

// writer sends statements of one apply transaction.
type writer struct {
	pg  *pgconn.PgConn
	tx  pgx.Tx
	buf []byte
	// lenient writes new rows with upserts instead of COPY, for the
	// row-by-row retry of a batch that hit a unique constraint.
	lenient bool
	// d is the server's dialect (nil: PostgreSQL).
	d *Dialect
	// pipelined: statements whose answer can wait are queued and sent
	// together (pipeline.go); batch and queued hold them, and table is
	// the table of the segment being written.
	pipelined bool
	batch     *pgconn.Batch
	queued    []queuedStatement
	table     proto.TableID
}

func (w *writer) step(ctx context.Context, p *segmentPlan, st *apply.Step) error {
	switch st.Kind {
	case apply.StepTruncate:
		return w.truncate(ctx, p.table)
	case apply.StepMove:
		return w.move(ctx, p, st.MoveOld, st.MoveNew)
	}
	if len(st.Deletes) > 0 {
		if err := w.deleteKeys(ctx, p, st.Deletes); err != nil {
			return err
		}
	}
	if len(st.Inserts) > 0 {
		insert := w.copyRows
		if w.lenient {
			insert = w.upsert
		}
		if err := insert(ctx, p, st.Inserts); err != nil {
			return err
		}
	}
	if len(st.Updates) > 0 {
		if err := w.updateRows(ctx, p, st.Updates); err != nil {
			return err
		}
	}
	if len(st.Partials) > 0 {
		return w.partialUpdates(ctx, p, st.Partials)
	}
	return nil
}

// truncate empties a table inside the transaction. TRUNCATE refuses a
// table that a foreign key points at; DELETE (with replica mode keeping
// the foreign-key triggers quiet) does the same job there.
func (w *writer) truncate(ctx context.Context, t proto.TableID) error {
	if err := w.send(ctx); err != nil {
		return err
	}
	var referenced, partitioned bool
	if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = $1::regclass),
		(SELECT relkind = 'p' FROM pg_class WHERE oid = $1::regclass)`, tableName(t)).Scan(&referenced, &partitioned); err != nil {
		return err
	}
	// ONLY keeps out inheritance children the task does not sync; a
	// partitioned table (kept partitioned) is emptied with its partitions,
	// as at the source.
	only := "ONLY "
	if partitioned {
		only = ""
	}
	sql := "TRUNCATE " + only + tableName(t)
	if referenced {
		sql = "DELETE FROM " + only + tableName(t)
	}
	_, err := w.tx.Exec(ctx, sql)
	return err
}

// deleteKeys removes rows by key. A one-column key is matched with
// = ANY(array), an index scan over the array; a composite key joins the
// keys' arrays (a nested loop over the key index, see Open).
func (w *writer) deleteKeys(ctx context.Context, p *segmentPlan, keys []proto.Tuple) error {
	if len(keys) == 1 {
		sql := fmt.Sprintf("DELETE FROM %s AS t WHERE %s", tableName(p.table), keyMatch(p, p.keyIdx, 0, oneRow))
		_, err := w.execRows(ctx, sql, keys, p.keyIdx, -1)
		return err
	}
	if len(p.keyIdx) == 1 {
		k := p.keyIdx[0]
		sql := fmt.Sprintf("DELETE FROM %s WHERE %s = ANY($1::text[]::%s[])", tableName(p.table), ident(p.names[k]), p.types[k])
		return w.execArrays(ctx, sql, keys, p.keyIdx)
	}
	sql := fmt.Sprintf("DELETE FROM %s AS t USING %s WHERE %s",
		tableName(p.table), unnestFrom(len(p.keyIdx)), keyMatch(p, p.keyIdx, 0, arrayRows))
	return w.execArrays(ctx, sql, keys, p.keyIdx)
}

// copyRows loads new rows with COPY, PostgreSQL's fastest way in: their
// keys are not at the destination (the source had just inserted them), and
// should that not hold, the unique violation sends the batch to the
// row-by-row retry.
func (w *writer) copyRows(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	if w.pipelined && len(rows) < smallInsert {
		return w.insertRows(ctx, p, rows)
	}
	if err := w.send(ctx); err != nil {
		return err
	}
	buf := w.buf[:0]
	for _, r := range rows {
		var err error
		if buf, err = pgvalue.AppendCopyTextRow(buf, r); err != nil {
			return fmt.Errorf("COPY into %s: %w", p.table, err)
		}
	}
	w.buf = buf
	_, err := w.pg.CopyFrom(ctx, bytes.NewReader(buf), fmt.Sprintf("COPY %s (%s) FROM STDIN", tableName(p.table), columnList(p, seq(len(p.names)))))
	return err
}

// insertRows inserts new rows with INSERT ... SELECT FROM the arrays:
// for a few rows in a pipeline, cheaper than a COPY's two round trips.
func (w *writer) insertRows(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	all := seq(len(p.names))
	src := sourceOf(rows)
	sql := fmt.Sprintf("INSERT INTO %s (%s)%s %s%s",
		tableName(p.table), columnList(p, all), w.d.overriding(), selectCasts(p, all, 0, src), src.from(len(all)))
	_, err := w.execRows(ctx, sql, rows, all, -1)
	return err
}

// updateRows writes changed rows whole with UPDATE ... FROM the arrays.
// Rows the destination does not have (it drifted from the source) are
// inserted after.
func (w *writer) updateRows(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	all := seq(len(p.names))
	src := sourceOf(rows)
	var assigns []string
	for _, i := range all {
		if p.settable[i] {
			assigns = append(assigns, fmt.Sprintf("%s = %s::%s", ident(p.names[i]), src.ref(i), p.types[i]))
		}
	}
	if len(assigns) == 0 {
		return w.upsert(ctx, p, rows)
	}
	// The key columns' positions in "all" are their own indexes.
	conds := make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		conds[j] = fmt.Sprintf("t.%s = %s::%s", ident(p.names[i]), src.ref(i), p.types[i])
	}
	sql := fmt.Sprintf("UPDATE %s AS t SET %s%s WHERE %s",
		tableName(p.table), strings.Join(assigns, ", "), src.from(len(all)), strings.Join(conds, " AND "))
	// Pipelined, the count is checked when the queue is sent; a miss
	// writes the transaction again without the pipeline
	// (errUpdateMissedRows).
	n, err := w.execRows(ctx, sql, rows, all, int64(len(rows)))
	if err != nil || w.pipelined || n == int64(len(rows)) {
		return err
	}
	return w.upsert(ctx, p, rows)
}

func (w *writer) upsert(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	if !w.d.upserts() {
		return w.deleteInsert(ctx, p, rows) // noconflict.go
	}
	all := seq(len(p.names))
	return w.execArrays(ctx, upsertSQL(p, all, selectCasts(p, all, 0, arrayRows)+arrayRows.from(len(all))), rows, all)
}

// partialUpdates writes rows whose unchanged-TOAST columns must keep the
// destination's values, grouped by which columns they change.
func (w *writer) partialUpdates(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	groups := map[string][]proto.Tuple{}
	var order []string
	for _, r := range rows {
		mask := string(r.Kinds)
		if _, ok := groups[mask]; !ok {
			order = append(order, mask)
		}
		groups[mask] = append(groups[mask], r)
	}
	for _, mask := range order {
		var set []int
		for i := range p.names {
			if mask[i] != proto.KindToast && p.settable[i] {
				set = append(set, i)
			}
		}
		if len(set) == 0 {
			continue // only unchanged values: nothing to write
		}
		cols := append(append([]int{}, p.keyIdx...), set...)
		assigns := make([]string, len(set))
		for j, i := range set {
			assigns[j] = fmt.Sprintf("%s = u.c%d::%s", ident(p.names[i]), len(p.keyIdx)+j, p.types[i])
		}
		sql := fmt.Sprintf("UPDATE %s AS t SET %s FROM %s WHERE %s",
			tableName(p.table), strings.Join(assigns, ", "), unnestFrom(len(cols)), keyMatch(p, p.keyIdx, 0, arrayRows))
		if err := w.execArrays(ctx, sql, groups[mask], cols); err != nil {
			return err
		}
	}
	return nil
}

// move changes a row's key when the new row has unchanged TOAST values:
// those are read from the row at the old key in the same statement.
func (w *writer) move(ctx context.Context, p *segmentPlan, oldKey, newRow proto.Tuple) error {
	if !w.d.upserts() {
		return w.moveDeleteInsert(ctx, p, oldKey, newRow) // noconflict.go
	}
	if err := w.send(ctx); err != nil {
		return err
	}
	sel, params := moveSelect(p, oldKey, newRow)
	sql := upsertSQL(p, seq(len(p.names)), sel)
	if _, err := w.pg.ExecParams(ctx, sql, params, nil, nil, nil).Close(); err != nil {
		return err
	}
	return w.deleteKeys(ctx, p, []proto.Tuple{oldKey})
}

// moveSelect is the select list and FROM of a move's new row: its values,
// and its unchanged TOAST values read from the row at the old key.
func moveSelect(p *segmentPlan, oldKey, newRow proto.Tuple) (string, [][]byte) {
	var params [][]byte
	exprs := make([]string, len(p.names))
	for i := range exprs {
		if newRow.Kinds[i] == proto.KindToast {
			exprs[i] = "t." + ident(p.names[i])
			continue
		}
		params = append(params, textParam(newRow, i))
		exprs[i] = fmt.Sprintf("$%d::%s", len(params), p.types[i])
	}
	where := make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		params = append(params, textParam(oldKey, i))
		where[j] = fmt.Sprintf("t.%s = $%d::%s", ident(p.names[i]), len(params), p.types[i])
	}
	return strings.Join(exprs, ", ") + " FROM " + tableName(p.table) + " AS t WHERE " + strings.Join(where, " AND "), params
}

// applyUnkeyed writes a table without a primary key at the destination,
// in source order: inserts in sets, updates and deletes one row each,
// matched on every column of the old row (REPLICA IDENTITY FULL) and
// limited to one row, so duplicates stay duplicates. Exactly once still
// holds: the position is stored in the same transaction.
func (w *writer) applyUnkeyed(ctx context.Context, p *segmentPlan, seg *apply.Segment) error {
	var inserts []proto.Tuple
	batch := &pgconn.Batch{}
	queued := 0
	flush := func() error {
		if len(inserts) > 0 {
			if err := w.insertRows(ctx, p, inserts); err != nil {
				return err
			}
			inserts = inserts[:0]
		}
		if queued > 0 {
			if err := w.send(ctx); err != nil {
				return err
			}
			_, err := w.pg.ExecBatch(ctx, batch).ReadAll()
			batch, queued = &pgconn.Batch{}, 0
			return err
		}
		return nil
	}
	for i := range seg.Rows {
		r := &seg.Rows[i]
		switch r.Op {
		case proto.OpInsert:
			if queued > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			inserts = append(inserts, r.New)
		case proto.OpTruncate:
			if err := flush(); err != nil {
				return err
			}
			if err := w.truncate(ctx, p.table); err != nil {
				return err
			}
		case proto.OpUpdate, proto.OpDelete:
			if len(inserts) > 0 {
				if err := flush(); err != nil {
					return err
				}
			}
			if seg.Identity != proto.IdentityFull || r.Old.Len() == 0 {
				return fmt.Errorf("%s has no primary key at the destination and REPLICA IDENTITY is not FULL at the source, so its updates and deletes cannot be matched (run ALTER TABLE %s REPLICA IDENTITY FULL at the source, or add a primary key)", p.table, tableName(p.table))
			}
			queued += w.queueUnkeyed(batch, p, r) // noconflict.go
		}
	}
	return flush()
}

func unkeyedStatement(p *segmentPlan, r *proto.Row) (string, [][]byte) {
	var params [][]byte
	var assigns []string
	if r.Op == proto.OpUpdate {
		for i := range p.names {
			if r.New.Kinds[i] == proto.KindToast || !p.settable[i] {
				continue
			}
			params = append(params, textParam(r.New, i))
			assigns = append(assigns, fmt.Sprintf("%s = $%d::%s", ident(p.names[i]), len(params), p.types[i]))
		}
	}
	match := make([]string, len(p.names))
	for i := range p.names {
		params = append(params, textParam(r.Old, i))
		// Compared as text: every type has a text form, not every type an
		// equality operator (json, point, xml).
		match[i] = fmt.Sprintf("%s::text IS NOT DISTINCT FROM $%d", ident(p.names[i]), len(params))
	}
	target := oneRowPostgres(tableName(p.table), strings.Join(match, " AND "))
	if r.Op == proto.OpDelete || len(assigns) == 0 {
		if r.Op == proto.OpUpdate {
			return "SELECT 1", nil // only unchanged values
		}
		return fmt.Sprintf("DELETE FROM %s WHERE %s", tableName(p.table), target), params
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableName(p.table), strings.Join(assigns, ", "), target), params
}

// execArrays runs sql with one text[] parameter per column of cols,
// holding that column's values of every row, in binary array format:
// one parameter per column whatever the number of rows. In a pipelined
// writer the statement is queued.
func (w *writer) execArrays(ctx context.Context, sql string, rows []proto.Tuple, cols []int) error {
	params, oids, formats := w.arrayParams(rows, cols)
	_, err := w.exec(ctx, sql, params, oids, formats, -1)
	return err
}

// execRows runs sql, written for rows with sourceOf(rows), with the
// columns cols of rows as its parameters, and returns the rows it touched
// when sent at once (see exec).
func (w *writer) execRows(ctx context.Context, sql string, rows []proto.Tuple, cols []int, expect int64) (int64, error) {
	if sourceOf(rows) == arrayRows {
		params, oids, formats := w.arrayParams(rows, cols)
		return w.exec(ctx, sql, params, oids, formats, expect)
	}
	// Text, cast to the column's type as the arrays' elements are (a
	// parameter the statement leaves unused, such as an identity column
	// an UPDATE may not set, needs a declared type).
	params, oids := make([][]byte, len(cols)), make([]uint32, len(cols))
	for j, c := range cols {
		params[j], oids[j] = textParam(rows[0], c), textOID
	}
	return w.exec(ctx, sql, params, oids, nil, expect)
}

// exec queues a statement in a pipelined writer (expect: the rows it
// must touch, checked when the queue is sent, or -1), or else sends it at
// once and returns the rows it touched.
func (w *writer) exec(ctx context.Context, sql string, params [][]byte, oids []uint32, formats []int16, expect int64) (int64, error) {
	if w.pipelined {
		return 0, w.queue(ctx, w.table, sql, params, oids, formats, expect)
	}
	return w.execNow(ctx, sql, params, oids, formats)
}

// execNow sends a statement at once, prepared on its second use, and
// returns the rows it touched. Anything queued must have been sent.
func (w *writer) execNow(ctx context.Context, sql string, params [][]byte, oids []uint32, formats []int16) (int64, error) {
	if err := w.send(ctx); err != nil {
		return 0, err
	}
	name, err := w.prepared(ctx, sql, oids)
	if err != nil {
		return 0, err
	}
	var tag pgconn.CommandTag
	if name != "" {
		tag, err = w.pg.ExecPrepared(ctx, name, params, formats, nil).Close()
	} else {
		tag, err = w.pg.ExecParams(ctx, sql, params, oids, formats, nil).Close()
	}
	return tag.RowsAffected(), err
}

// arrayParams encodes the columns cols of rows as text[] parameters in
// w.buf, after the parameters of statements still queued.
func (w *writer) arrayParams(rows []proto.Tuple, cols []int) ([][]byte, []uint32, []int16) {
	params := make([][]byte, len(cols))
	oids := make([]uint32, len(cols))
	formats := make([]int16, len(cols))
	size := 0
	for _, r := range rows {
		size += r.Size() + 4*len(cols)
	}
	buf := w.buf
	if len(w.queued) == 0 {
		buf = buf[:0]
	}
	if cap(buf)-len(buf) < size+24*len(cols) {
		// A new array: the queued statements keep pointing into the old one.
		buf = make([]byte, 0, max(size+24*len(cols), 2*cap(buf)))
	}
	for j, c := range cols {
		start := len(buf)
		buf = appendTextArray(buf, rows, c)
		params[j], oids[j], formats[j] = buf[start:], textArrayOID, 1
	}
	w.buf = buf
	return params, oids, formats
}

const (
	textOID      = 25
	textArrayOID = 1009
)

// appendTextArray encodes column c of rows as a one-dimensional text[] in
// PostgreSQL's binary array format.
func appendTextArray(buf []byte, rows []proto.Tuple, c int) []byte {
	hasNull := int32(0)
	for _, r := range rows {
		if r.Kinds[c] != proto.KindText {
			hasNull = 1
			break
		}
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, uint32(hasNull))
	buf = binary.BigEndian.AppendUint32(buf, textOID)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(rows)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for _, r := range rows {
		if r.Kinds[c] != proto.KindText {
			buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF) // NULL
			continue
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.Values[c])))
		buf = append(buf, r.Values[c]...)
	}
	return buf
}

// textParam is column i of t as a text-format parameter (nil for NULL).
func textParam(t proto.Tuple, i int) []byte {
	if t.Kinds[i] != proto.KindText {
		return nil
	}
	if t.Values[i] == nil {
		return []byte{}
	}
	return t.Values[i]
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func columnList(p *segmentPlan, cols []int) string {
	names := make([]string, len(cols))
	for j, i := range cols {
		names[j] = ident(p.names[i])
	}
	return strings.Join(names, ", ")
}

// unnestFrom is "unnest($1::text[], ...) AS u(c0, ...)" for n arrays.
func unnestFrom(n int) string {
	args, names := make([]string, n), make([]string, n)
	for j := range args {
		args[j] = fmt.Sprintf("$%d::text[]", j+1)
		names[j] = fmt.Sprintf("c%d", j)
	}
	return fmt.Sprintf("unnest(%s) AS u(%s)", strings.Join(args, ", "), strings.Join(names, ", "))
}

// selectCasts is "SELECT u.c<first>::type, ..." for the columns cols.
func selectCasts(p *segmentPlan, cols []int, first int, src rowSource) string {
	exprs := make([]string, len(cols))
	for j, i := range cols {
		exprs[j] = src.ref(first+j) + "::" + p.types[i]
	}
	return "SELECT " + strings.Join(exprs, ", ")
}

// keyMatch is "t.k = u.c<first>::type AND ..." for the key columns.
func keyMatch(p *segmentPlan, keyIdx []int, first int, src rowSource) string {
	conds := make([]string, len(keyIdx))
	for j, i := range keyIdx {
		conds[j] = fmt.Sprintf("t.%s = %s::%s", ident(p.names[i]), src.ref(first+j), p.types[i])
	}
	return strings.Join(conds, " AND ")
}

// Single rows. A step of a segment often holds one row: a transaction
// over many tables writes a row or two to each, a paced stream one at a
// time. Its statement takes the row's values as scalar parameters
// ($1::type), which the destination plans in about half the time of the
// join over arrays (55 against 100 µs a statement, measured over 5,000
// tables), and, once prepared, not at all: the plan cache settles on the
// generic plan of an index scan on the key, where the join over arrays
// is planned again at every execution.

// rowSource is where a statement reads the values it writes: the columns
// of the unnest of one text[] parameter per column, or one parameter per
// column of a single row.
type rowSource bool

const (
	arrayRows rowSource = false
	oneRow    rowSource = true
)

// sourceOf is the source of a statement written for rows.
func sourceOf(rows []proto.Tuple) rowSource { return rowSource(len(rows) == 1) }

// ref names value j of the rows: u.c<j>, or $<j+1>.
func (src rowSource) ref(j int) string {
	if src == oneRow {
		return "$" + strconv.Itoa(j+1)
	}
	return "u.c" + strconv.Itoa(j)
}

// from is the FROM clause of n values: " FROM unnest(...) AS u(...)", or
// nothing for a single row.
func (src rowSource) from(n int) string {
	if src == oneRow {
		return ""
	}
	return " FROM " + unnestFrom(n)
}

// upsertSQL inserts the columns cols from source (a SELECT list and FROM)
// and overwrites the row when the key exists.
func upsertSQL(p *segmentPlan, cols []int, source string) string {
	keys := make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		keys[j] = ident(p.names[i])
	}
	var sets []string
	for _, i := range cols {
		if p.settable[i] {
			sets = append(sets, fmt.Sprintf("%s = EXCLUDED.%s", ident(p.names[i]), ident(p.names[i])))
		}
	}
	action := "NOTHING"
	if len(sets) > 0 {
		action = "UPDATE SET " + strings.Join(sets, ", ")
	}
	if !strings.HasPrefix(source, "SELECT ") {
		source = "SELECT " + source
	}
	return fmt.Sprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE %s ON CONFLICT (%s) DO %s",
		tableName(p.table), columnList(p, cols), source, strings.Join(keys, ", "), action)
}
