package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Two-way apply. The one-way apply trusts that the destination mirrors
// the source, so it coalesces a batch without looking at the destination.
// In two-way sync both sides take writes, so a change can meet a row that
// differs from the one it changed at its source: a conflict. The apply of
// a two-way direction therefore reads the destination's rows of every key
// a batch touches (one statement per table, the rows locked), replays the
// changes over them in source order, deciding each conflict by the
// task's policy, and writes the net result set-based: one DELETE and one
// upsert per table. Only when a unique constraint besides the key refuses
// the set does that table go row by row, each change in a savepoint, to
// find the changes that conflict on a unique value.
//
// The whole batch is one transaction, with its conflicts' rows in
// sluice.conflicts and the positions of every shard, under one of the
// direction's replication origins (origin.go). It is not sharded: a
// unique value ties rows of different keys together, and a conflict that
// stops the task must leave all of the batch unwritten.

// applyTwoWay writes a batch of a two-way direction.
func (s *Sink) applyTwoWay(ctx context.Context, ch *apply.Changes) error {
	if err := s.checkCommitTimes(ctx); err != nil {
		return err
	}
	segs, err := s.plan(ctx, ch)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if len(seg.plan.keyIdx) == 0 && len(seg.Rows) > 0 {
			return fmt.Errorf("%s has no primary key at the destination: two-way sync tells a conflict by the key, so it needs one on every table (add a primary key)", seg.Table)
		}
	}
	positions := s.allShards(ch.Tables, ch.Positions)
	lsn, commitUS := batchMark(ch)
	var logged []conflict
	err = s.originTx(ctx, lsn, commitUS, func(ctx context.Context, tx pgx.Tx, pg *pgconn.PgConn) error {
		if err := s.lockOffsets(ctx, tx, ch.Task, ch.Epoch, positions); err != nil {
			return err
		}
		r := &resolver{tw: s.tw, tx: tx, pg: pg, w: &writer{pg: pg, tx: tx}}
		for _, seg := range segs {
			if err := r.segment(ctx, seg); err != nil {
				if isCode(err, "42703", "42P01", "42804") { // undefined column/table, datatype mismatch
					s.forgetTable(seg.Table)
				}
				return wrapTable(seg.Table, "apply changes to", err)
			}
		}
		if err := writeConflicts(ctx, tx, s.tw, r.log); err != nil {
			return err
		}
		logged = r.log
		return s.writeOffsets(ctx, tx, ch.Task, ch.Epoch, positions)
	})
	var stop *stopError
	if errors.As(err, &stop) {
		return s.stopOn(ctx, stop)
	}
	if err != nil {
		return err
	}
	s.remember(positions)
	s.tw.count(logged)
	return nil
}

// batchMark is what the batch's transaction replays: the source's changes
// up to its last position, committed (at the latest) at the newest
// commit time among its rows.
func batchMark(ch *apply.Changes) (proto.LSN, int64) {
	var lsn proto.LSN
	for _, p := range ch.Positions {
		lsn = max(lsn, p.LSN)
	}
	var us int64
	for _, seg := range ch.Segments {
		for i := range seg.Rows {
			us = max(us, seg.Rows[i].CommitTimeUS)
		}
	}
	return lsn, us
}

// checkCommitTimes makes sure last_writer_wins has commit times to
// compare, and says how to get them.
func (s *Sink) checkCommitTimes(ctx context.Context) error {
	if s.tw.policy != policyLastWriterWins || s.tw.commitTimesOn.Load() {
		return nil
	}
	var on bool
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('track_commit_timestamp')::boolean").Scan(&on); err != nil {
		return fmt.Errorf("read track_commit_timestamp at the destination: %w", err)
	}
	if !on {
		return errors.New("two_way.conflicts: last_writer_wins compares the commit times of rows, and the destination does not record them: " +
			"set track_commit_timestamp = on there (ALTER SYSTEM SET track_commit_timestamp = on; then restart PostgreSQL)")
	}
	s.tw.commitTimesOn.Store(true)
	return nil
}

// resolver applies one batch of a two-way direction in its transaction.
type resolver struct {
	tw  *twoWay
	tx  pgx.Tx
	pg  *pgconn.PgConn
	w   *writer
	log []conflict
}

// segment applies one segment: the runs between its TRUNCATEs, which
// empty the table as in one-way apply.
func (r *resolver) segment(ctx context.Context, seg plannedSegment) error {
	rows := seg.Rows
	for len(rows) > 0 {
		n := 0
		for n < len(rows) && rows[n].Op != proto.OpTruncate {
			n++
		}
		if err := r.run(ctx, seg.plan, seg.Identity == proto.IdentityFull, rows[:n]); err != nil {
			return err
		}
		if n == len(rows) {
			return nil
		}
		if err := r.w.truncate(ctx, seg.plan.table); err != nil {
			return err
		}
		rows = rows[n+1:]
	}
	return nil
}

// run applies changes of one table that no TRUNCATE splits.
func (r *resolver) run(ctx context.Context, p *segmentPlan, oldFull bool, rows []proto.Row) error {
	if len(rows) == 0 {
		return nil
	}
	m := &replay{tw: r.tw, p: p, oldFull: oldFull, states: map[string]*keyState{}}
	for i := range rows {
		if err := m.collect(&rows[i]); err != nil {
			return err
		}
	}
	if err := r.readLocal(ctx, p, m.order); err != nil {
		return err
	}
	m.fetch = func(l *localRow) error { return r.fetchRow(ctx, p, l) }
	for i := range rows {
		if err := m.change(&rows[i]); err != nil {
			return err
		}
	}
	if m.fetchErr != nil {
		return m.fetchErr
	}
	r.log = append(r.log, m.conflicts...)
	return r.write(ctx, p, m)
}

// localRow is a destination row as a conflict needs it.
type localRow struct {
	// json is the row, column -> PostgreSQL's text of the value: the
	// shape of sluice.conflicts' incoming_row, so the two compare column
	// by column, and the values unchanged TOAST columns keep. "": not
	// read (readLocal reads it only for the keys that may need it; fetch
	// reads the others' when they do after all).
	json string
	// us is its commit time (µs since the Unix epoch) when known
	// (last_writer_wins reads it; frozen rows have none).
	us    int64
	hasUS bool
	// own: this direction wrote it last (one of its origins).
	own  bool
	vals map[string]*string
	// key is the row's key, which fetch reads json by.
	key proto.Tuple
}

// values decodes json (read first if readLocal left it out).
func (l *localRow) values(fetch func(*localRow) error) (map[string]*string, error) {
	if l.json == "" {
		if err := fetch(l); err != nil {
			return nil, err
		}
	}
	if l.vals == nil {
		if err := json.Unmarshal([]byte(l.json), &l.vals); err != nil {
			return nil, fmt.Errorf("decode the destination's row: %w", err)
		}
	}
	return l.vals, nil
}

// readLocal reads and locks the destination's rows of keys, in one
// statement: the keys' arrays joined to the table, as the one-way apply
// joins them.
func (r *resolver) readLocal(ctx context.Context, p *segmentPlan, keys []*keyState) error {
	ps := &params{}
	tuples := make([]proto.Tuple, len(keys))
	for i, st := range keys {
		tuples[i] = st.key
	}
	args, names := make([]string, len(p.keyIdx)), make([]string, len(p.keyIdx))
	for j, c := range p.keyIdx {
		args[j], names[j] = ps.column(tuples, c)+"::text[]", fmt.Sprintf("c%d", j)
	}
	need, first := make([]string, len(keys)), make([]string, len(keys))
	for i, st := range keys {
		need[i], first[i] = strconv.FormatBool(st.needRow), strconv.FormatInt(st.firstUS, 10)
	}
	args = append(args, ps.strings(need)+"::text[]::bool[]", ps.strings(first)+"::text[]::bigint[]")
	names = append(names, "need", "first_us")
	sel, joins := r.localSelect(p, ps, "u.need", "u.first_us")
	sql := fmt.Sprintf("SELECT u.n, %s FROM unnest(%s) WITH ORDINALITY AS u(%s, n) JOIN %s AS t ON %s%s FOR UPDATE OF t",
		sel, strings.Join(args, ", "), strings.Join(names, ", "), tableName(p.table), keyMatch(p, p.keyIdx, 0, arrayRows), joins)
	return ps.query(ctx, r.pg, sql, func(vals [][]byte) error {
		n, err := strconv.Atoi(string(vals[0]))
		if err != nil || n < 1 || n > len(keys) {
			return fmt.Errorf("read the destination's rows: unexpected ordinal %q", vals[0])
		}
		st := keys[n-1]
		st.local = scanLocal(vals[1:])
		st.local.key = st.key
		st.present, st.mine, st.us, st.hasUS = true, st.local.own, st.local.us, st.local.hasUS
		return nil
	})
}

// fetchRow reads a destination row's values that readLocal left out
// (it is locked already): a change needs them after all.
func (r *resolver) fetchRow(ctx context.Context, p *segmentPlan, l *localRow) error {
	ps := &params{}
	cols := make([]string, len(p.names))
	for i, n := range p.names {
		cols[i] = "t." + ident(n) + "::text"
	}
	conds := make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		conds[j] = fmt.Sprintf("t.%s = %s::%s", ident(p.names[i]), ps.text(string(l.key.Values[i])), p.types[i])
	}
	sql := fmt.Sprintf("SELECT pg_catalog.jsonb_object(%s::text[], ARRAY[%s]::text[])::text FROM %s AS t WHERE %s",
		ps.strings(p.names), strings.Join(cols, ", "), tableName(p.table), strings.Join(conds, " AND "))
	found := false
	err := ps.query(ctx, r.pg, sql, func(vals [][]byte) error {
		l.json, found = string(vals[0]), true
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("read the destination's row of %s: it is gone", p.table)
	}
	return err
}

// localSelect is the select list reading a destination row (alias t) for
// scanLocal, and the joins it needs: under last_writer_wins, the commit
// time and origin PostgreSQL recorded for the row's last writer.
//
// need and firstUS are SQL expressions: whether the row's values are
// needed whatever else, and the commit time of the key's first change;
// the values are read when needed, or when last_writer_wins may keep the
// row (written elsewhere no earlier than that change), else left NULL.
func (r *resolver) localSelect(p *segmentPlan, ps *params, need, firstUS string) (sel, joins string) {
	cols := make([]string, len(p.names))
	for i, n := range p.names {
		cols[i] = "t." + ident(n) + "::text"
	}
	row := fmt.Sprintf("pg_catalog.jsonb_object(%s::text[], ARRAY[%s]::text[])::text", ps.strings(p.names), strings.Join(cols, ", "))
	if r.tw.policy != policyLastWriterWins {
		return fmt.Sprintf("CASE WHEN %s THEN %s END, NULL::bigint, false", need, row), ""
	}
	base := ps.text(r.tw.Origin) + "::text"
	us := "(extract(epoch FROM c.timestamp) * 1000000)::bigint"
	own := fmt.Sprintf("COALESCE(o.roname = %[1]s OR starts_with(o.roname, %[1]s || ':'), false)", base)
	sel = fmt.Sprintf("CASE WHEN %[4]s OR (NOT %[2]s AND %[3]s >= %[5]s) THEN %[1]s END, %[3]s, %[2]s", row, own, us, need, firstUS)
	joins = " LEFT JOIN LATERAL pg_catalog.pg_xact_commit_timestamp_origin(t.xmin) AS c ON true" +
		" LEFT JOIN pg_catalog.pg_replication_origin AS o ON o.roident = c.roident"
	return sel, joins
}

// scanLocal reads localSelect's columns (text format).
func scanLocal(vals [][]byte) *localRow {
	l := &localRow{json: string(vals[0]), own: string(vals[2]) == "t"}
	if vals[1] != nil {
		if us, err := strconv.ParseInt(string(vals[1]), 10, 64); err == nil {
			l.us, l.hasUS = us, true
		}
	}
	return l
}

// write writes a run's net result: the rows that went away, then the rows
// the run leaves, set-based. A unique constraint besides the key can
// refuse the set (a row of this side holds a value a change brings, or
// the changes swap values); the run is then written again change by
// change, to find and resolve the changes that conflict.
func (r *resolver) write(ctx context.Context, p *segmentPlan, m *replay) error {
	dels, updates, puts := m.net()
	if len(dels)+len(updates)+len(puts) == 0 {
		return nil
	}
	write := func() error {
		if err := r.writeSet(ctx, p, dels, puts); err != nil {
			return err
		}
		// Rows that were there and stay: an UPDATE, cheaper than an
		// upsert (no speculative insertion into every index).
		if len(updates) > 0 {
			return r.w.updateRows(ctx, p, updates)
		}
		return nil
	}
	if !p.entangled {
		return write()
	}
	err := r.savepoint(ctx, write)
	if !isCode(err, codeUniqueViolation) {
		return err
	}
	return r.changeByChange(ctx, p, m.actions)
}

func (r *resolver) writeSet(ctx context.Context, p *segmentPlan, dels, puts []proto.Tuple) error {
	if len(dels) > 0 {
		if err := r.w.deleteKeys(ctx, p, dels); err != nil {
			return err
		}
	}
	if len(puts) > 0 {
		return r.w.upsert(ctx, p, puts)
	}
	return nil
}

// savepoint runs fn so that its failure leaves the transaction as it was
// before.
func (r *resolver) savepoint(ctx context.Context, fn func() error) error {
	if _, err := r.tx.Exec(ctx, "SAVEPOINT sluice_write"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		if _, rerr := r.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_write; RELEASE SAVEPOINT sluice_write"); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := r.tx.Exec(ctx, "RELEASE SAVEPOINT sluice_write")
	return err
}

// changeByChange writes a run's decided changes one at a time, in source
// order (which also gets values swapped through a third one right), and
// resolves each that a unique constraint refuses.
func (r *resolver) changeByChange(ctx context.Context, p *segmentPlan, actions []action) error {
	for i := range actions {
		a := &actions[i]
		err := r.savepoint(ctx, func() error { return r.writeAction(ctx, p, a) })
		if isCode(err, codeUniqueViolation) && a.put.Len() > 0 {
			err = r.uniqueConflict(ctx, p, a, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *resolver) writeAction(ctx context.Context, p *segmentPlan, a *action) error {
	var dels, puts []proto.Tuple
	if a.del.Len() > 0 {
		dels = []proto.Tuple{a.del}
	}
	if a.put.Len() > 0 {
		puts = []proto.Tuple{a.put}
	}
	return r.writeSet(ctx, p, dels, puts)
}

// uniqueConflict resolves a change whose row a unique constraint refused:
// the rows holding its unique values under other keys are found, and the
// policy decides between them and the change.
func (r *resolver) uniqueConflict(ctx context.Context, p *segmentPlan, a *action, cause error) error {
	holders, err := r.uniqueHolders(ctx, p, a.put)
	if err != nil {
		return err
	}
	if len(holders) == 0 {
		return fmt.Errorf("a unique constraint refuses the row with key %s, and no row of another key holds its values in a unique index on plain columns: %w",
			tupleJSON(p, a.put, p.keyIdx), cause)
	}
	res := r.uniqueResolution(a.src, holders)
	cs := make([]conflict, len(holders))
	for i, h := range holders {
		cs[i] = conflict{table: p.table, key: tupleJSON(p, a.put, p.keyIdx), kind: kindUniqueConflict, res: res,
			local: h.json, localUS: h.us, hasLocal: h.hasUS,
			incoming: incomingJSON(p, a.src), incomingUS: a.src.CommitTimeUS, incomingLSN: a.src.Pos.LSN}
	}
	if res == resFailed {
		return &stopError{tw: r.tw, conflicts: cs}
	}
	r.log = append(r.log, cs...)
	if res == resKeptLocal {
		// The change's row stays out; a key change still leaves its old key.
		if a.del.Len() == 0 {
			return nil
		}
		return r.w.deleteKeys(ctx, p, []proto.Tuple{a.del})
	}
	ctids := make([]string, len(holders))
	for i, h := range holders {
		ctids[i] = h.ctid
	}
	if _, err := r.tx.Exec(ctx, "DELETE FROM "+tableName(p.table)+" WHERE ctid = ANY($1::text[]::tid[])", ctids); err != nil {
		return err
	}
	return r.writeAction(ctx, p, a)
}

// uniqueResolution decides a unique conflict by the policy; under
// last_writer_wins the change must be newer than every row it displaces.
func (r *resolver) uniqueResolution(src *proto.Row, holders []holder) resolution {
	switch r.tw.policy {
	case policyTaskFailed:
		return resFailed
	case policyIgnore:
		return resKeptLocal
	case policyOverwrite:
		return resOverwritten
	}
	for _, h := range holders {
		if !r.tw.wins(h.own, h.hasUS, h.us, src.CommitTimeUS) {
			return resKeptLocal
		}
	}
	return resOverwritten
}

// holder is a destination row holding a unique value a change brings.
type holder struct {
	ctid string
	*localRow
}

// uniqueHolders reads and locks the rows of keys other than row's that
// hold any of row's values of a unique index (on plain columns, without
// a predicate). NULLs hold nothing, unless the index says NULLS NOT
// DISTINCT.
func (r *resolver) uniqueHolders(ctx context.Context, p *segmentPlan, row proto.Tuple) ([]holder, error) {
	indexes, err := r.uniqueIndexes(ctx, p)
	if err != nil {
		return nil, err
	}
	ps := &params{}
	var anyOf []string
	for _, ix := range indexes {
		var all []string
		for _, i := range ix.cols {
			if row.Kinds[i] != proto.KindText {
				if !ix.nullsNotDistinct {
					all = nil
					break
				}
				all = append(all, "t."+ident(p.names[i])+" IS NULL")
				continue
			}
			all = append(all, fmt.Sprintf("t.%s = %s::%s", ident(p.names[i]), ps.add(textParam(row, i), textOID, 0), p.types[i]))
		}
		if len(all) > 0 {
			anyOf = append(anyOf, "("+strings.Join(all, " AND ")+")")
		}
	}
	if len(anyOf) == 0 {
		return nil, nil
	}
	self := make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		self[j] = fmt.Sprintf("t.%s = %s::%s", ident(p.names[i]), ps.add(textParam(row, i), textOID, 0), p.types[i])
	}
	sel, joins := r.localSelect(p, ps, "true", "0")
	sql := fmt.Sprintf("SELECT t.ctid::text, %s FROM %s AS t%s WHERE (%s) AND NOT (%s) FOR UPDATE OF t",
		sel, tableName(p.table), joins, strings.Join(anyOf, " OR "), strings.Join(self, " AND "))
	var out []holder
	err = ps.query(ctx, r.pg, sql, func(vals [][]byte) error {
		out = append(out, holder{ctid: string(vals[0]), localRow: scanLocal(vals[1:])})
		return nil
	})
	return out, err
}

// uniqueIndex is a unique index besides the key, on plain columns.
type uniqueIndex struct {
	cols             []int // positions in the segment
	nullsNotDistinct bool
}

// uniqueIndexes reads the table's unique indexes besides the key whose
// columns the changes carry. Read when a unique constraint refused a
// set, which is rare: not cached.
func (r *resolver) uniqueIndexes(ctx context.Context, p *segmentPlan) ([]uniqueIndex, error) {
	// indnullsnotdistinct is new in PostgreSQL 15: read through to_jsonb,
	// so older servers read false.
	rows, err := r.tx.Query(ctx, `SELECT array_agg(a.attname::text ORDER BY k.ord), COALESCE((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false)
	FROM pg_catalog.pg_index i
	CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
	JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	WHERE i.indrelid = $1::regclass AND i.indisunique AND NOT i.indisprimary
		AND i.indexprs IS NULL AND i.indpred IS NULL AND k.ord <= i.indnkeyatts
	GROUP BY i.indexrelid`, tableName(p.table))
	if err != nil {
		return nil, fmt.Errorf("read unique indexes: %w", err)
	}
	defer rows.Close()
	pos := make(map[string]int, len(p.names))
	for i, n := range p.names {
		pos[n] = i
	}
	var out []uniqueIndex
next:
	for rows.Next() {
		var names []string
		var ix uniqueIndex
		if err := rows.Scan(&names, &ix.nullsNotDistinct); err != nil {
			return nil, err
		}
		for _, n := range names {
			i, ok := pos[n]
			if !ok {
				continue next
			}
			ix.cols = append(ix.cols, i)
		}
		out = append(out, ix)
	}
	return out, rows.Err()
}

// wins reports whether an incoming change committed at us beats the row
// it meets under last_writer_wins: a row of this direction's own (an
// earlier change of the same stream) always loses; a row with no commit
// time (frozen, or older than track_commit_timestamp) is the oldest; on
// equal times the forward direction's version wins, so both sides keep
// the same one.
func (tw *twoWay) wins(own, hasUS bool, localUS, us int64) bool {
	switch {
	case own || !hasUS:
		return true
	case us != localUS:
		return us > localUS
	}
	return tw.forward
}

// keyState is what a run knows of one key: the destination's row, then
// what the run's changes make of it.
type keyState struct {
	// key is a tuple with the key's values (in p.keyIdx).
	key proto.Tuple
	// local is the destination's row before the run (nil: none).
	local   *localRow
	present bool
	// written: the run's changes decide the row, tuple when present.
	written bool
	tuple   proto.Tuple
	// mine, us, hasUS: the last writer of the row as the run goes, for
	// last_writer_wins.
	mine  bool
	us    int64
	hasUS bool
	// needRow: the run may need the destination's whole row (a change
	// that may meet it as a conflict, or that keeps its unchanged TOAST
	// values); firstUS is the commit time of the first change of the key.
	// readLocal reads the row only then, or when last_writer_wins may keep
	// it: most keys need only to be known present.
	needRow bool
	firstUS int64
	touched bool
}

// action is one decided change, for the change-by-change write: delete
// del's key, then upsert put.
type action struct {
	del, put proto.Tuple
	src      *proto.Row
}

// replay replays a run's changes over its keys' states, deciding each.
type replay struct {
	tw      *twoWay
	p       *segmentPlan
	oldFull bool
	states  map[string]*keyState
	order   []*keyState
	keyBuf  []byte
	// actions are the decided changes in source order; conflicts what
	// they met.
	actions   []action
	conflicts []conflict
	// fetch reads a destination row readLocal left out; fetchErr is its
	// first failure, which fails the run.
	fetch    func(*localRow) error
	fetchErr error
}

// keysOf returns the tuples a change reads its key from (old) and writes
// its key from (new); either is empty when the change has none.
func (m *replay) keysOf(r *proto.Row) (old, cur proto.Tuple) {
	switch r.Op {
	case proto.OpInsert:
		return proto.Tuple{}, r.New
	case proto.OpDelete:
		return r.Old, proto.Tuple{}
	}
	cur = r.New
	// A key column is never left out as unchanged TOAST in practice (keys
	// are small), but if it were, the old tuple has it.
	for _, i := range m.p.keyIdx {
		if i < cur.Len() && cur.Kinds[i] == proto.KindToast && r.Old.Len() > 0 {
			cur = fillToast(cur, fromTuple(r.Old))
			break
		}
	}
	if r.Old.Len() > 0 {
		return r.Old, cur
	}
	return cur, cur
}

// collect registers the keys a change touches.
func (m *replay) collect(r *proto.Row) error {
	if r.Op != proto.OpInsert && r.Op != proto.OpUpdate && r.Op != proto.OpDelete {
		return fmt.Errorf("unknown change op %d", r.Op)
	}
	old, cur := m.keysOf(r)
	var ost *keyState
	for _, t := range []proto.Tuple{old, cur} {
		if t.Len() == 0 {
			continue
		}
		st, err := m.state(t)
		if err != nil {
			return err
		}
		if !st.touched {
			st.touched, st.firstUS = true, r.CommitTimeUS
		}
		// An insert, or a key change's new key, may meet a row
		// (insert_exists); unchanged TOAST values are filled from it.
		if r.Op == proto.OpInsert || (ost != nil && ost != st) || hasToastValue(r.New) {
			st.needRow = true
		}
		ost = st
	}
	return nil
}

// state returns the state of t's key, creating it on first sight.
func (m *replay) state(t proto.Tuple) (*keyState, error) {
	b := m.keyBuf[:0]
	for _, i := range m.p.keyIdx {
		if i >= t.Len() || t.Kinds[i] != proto.KindText {
			return nil, fmt.Errorf("a change has no value for key column %q (NULL or missing): the destination's key must be part of the source's replica identity", m.p.names[i])
		}
		b = binary.AppendUvarint(b, uint64(len(t.Values[i])))
		b = append(b, t.Values[i]...)
	}
	m.keyBuf = b
	if st := m.states[string(b)]; st != nil {
		return st, nil
	}
	st := &keyState{key: t}
	m.states[string(b)] = st
	m.order = append(m.order, st)
	return st, nil
}

// change decides one change.
func (m *replay) change(r *proto.Row) error {
	old, cur := m.keysOf(r)
	switch r.Op {
	case proto.OpInsert:
		st, err := m.state(cur)
		if err != nil {
			return err
		}
		if !st.present {
			m.put(st, r.New, r, proto.Tuple{})
			return nil
		}
		return m.existing(st, r, r.New, proto.Tuple{})
	case proto.OpDelete:
		st, err := m.state(old)
		if err != nil {
			return err
		}
		return m.delete(st, r)
	}
	ost, err := m.state(old)
	if err != nil {
		return err
	}
	nst, err := m.state(cur)
	if err != nil {
		return err
	}
	return m.update(ost, nst, r, cur)
}

// update decides an update from ost's key to nst's (the same state when
// the key stays) writing cur.
func (m *replay) update(ost, nst *keyState, r *proto.Row, cur proto.Tuple) error {
	if !ost.present {
		if m.tw.policy == policyLastWriterWins {
			// The row was deleted here meanwhile. Without tombstones the
			// two sides agree only if a delete beats a concurrent update
			// (see delete): skip it.
			m.log(ost, r, kindUpdateMissing, resSkipped)
			return nil
		}
		row, err := m.fill(cur, nil, r)
		if err != nil {
			return err
		}
		if nst != ost && nst.present {
			return m.existing(nst, r, row, proto.Tuple{})
		}
		m.log(ost, r, kindUpdateMissing, resInserted)
		m.put(nst, row, r, proto.Tuple{})
		return nil
	}
	if m.tw.policy == policyLastWriterWins && !m.tw.wins(ost.mine, ost.hasUS, ost.us, r.CommitTimeUS) {
		m.log(ost, r, kindUpdateStale, resKeptLocal)
		return nil
	}
	row, err := m.fill(cur, ost, r)
	if err != nil {
		return err
	}
	if nst == ost {
		m.put(ost, row, r, proto.Tuple{})
		return nil
	}
	m.remove(ost, r)
	if nst.present {
		return m.existing(nst, r, row, ost.key)
	}
	m.put(nst, row, r, ost.key)
	return nil
}

// delete decides a delete. Under last_writer_wins a delete applies even
// when the row changed here later (and is logged as delete_stale):
// deletes win over concurrent updates, which together with skipping an
// update of a missing row makes both sides agree.
func (m *replay) delete(st *keyState, r *proto.Row) error {
	if !st.present {
		m.log(st, r, kindDeleteMissing, resSkipped)
		return nil
	}
	if m.tw.policy == policyLastWriterWins && !m.tw.wins(st.mine, st.hasUS, st.us, r.CommitTimeUS) {
		m.log(st, r, kindDeleteStale, resDeleted)
	}
	m.remove(st, r)
	m.actions = append(m.actions, action{del: st.key, src: r})
	return nil
}

// existing decides a change that writes row at st's key, where a row is
// already (insert_exists); del is the old key a key change leaves.
func (m *replay) existing(st *keyState, r *proto.Row, row, del proto.Tuple) error {
	var res resolution
	switch m.tw.policy {
	case policyTaskFailed:
		res = resFailed
	case policyIgnore:
		res = resKeptLocal
	case policyOverwrite:
		res = resOverwritten
	case policyLastWriterWins:
		res = resKeptLocal
		if m.tw.wins(st.mine, st.hasUS, st.us, r.CommitTimeUS) {
			res = resOverwritten
		}
	}
	c := m.log(st, r, kindInsertExists, res)
	switch res {
	case resFailed:
		return &stopError{tw: m.tw, conflicts: []conflict{c}}
	case resOverwritten:
		m.put(st, row, r, del)
	default:
		if del.Len() > 0 {
			m.actions = append(m.actions, action{del: del, src: r})
		}
	}
	return nil
}

// put makes row the key's row (after deleting del, a key change's old key).
func (m *replay) put(st *keyState, row proto.Tuple, r *proto.Row, del proto.Tuple) {
	st.present, st.written, st.tuple = true, true, row
	st.mine, st.us, st.hasUS = true, r.CommitTimeUS, true
	m.actions = append(m.actions, action{del: del, put: row, src: r})
}

// remove makes the key's row go away.
func (m *replay) remove(st *keyState, r *proto.Row) {
	st.present, st.written, st.tuple = false, true, proto.Tuple{}
	st.mine, st.us, st.hasUS = true, r.CommitTimeUS, true
}

// log records a conflict of change r at st's key.
func (m *replay) log(st *keyState, r *proto.Row, kind conflictKind, res resolution) conflict {
	c := conflict{table: m.p.table, key: tupleJSON(m.p, st.key, m.p.keyIdx), kind: kind, res: res,
		incoming: incomingJSON(m.p, r), incomingUS: r.CommitTimeUS, incomingLSN: r.Pos.LSN}
	if st.present {
		c.localUS, c.hasLocal = st.us, st.hasUS
		if st.written {
			c.local = tupleJSON(m.p, st.tuple, seq(len(m.p.names)))
		} else {
			if st.local.json == "" && m.fetchErr == nil {
				m.fetchErr = m.fetch(st.local)
			}
			c.local = st.local.json
		}
	}
	m.conflicts = append(m.conflicts, c)
	return c
}

// fill gives row's unchanged TOAST columns their values: from the row it
// changes (st, as the run left it or the destination holds it), else from
// the change's old row (REPLICA IDENTITY FULL). A value found nowhere
// (an update of a missing row) is written as NULL.
func (m *replay) fill(row proto.Tuple, st *keyState, r *proto.Row) (proto.Tuple, error) {
	if !hasToastValue(row) {
		return row, nil
	}
	var from func(i int) (byte, []byte, bool)
	switch {
	case st != nil && st.present && st.written:
		from = fromTuple(st.tuple)
	case st != nil && st.present:
		vals, err := st.local.values(m.fetch)
		if err != nil {
			return proto.Tuple{}, err
		}
		from = func(i int) (byte, []byte, bool) {
			v := vals[m.p.names[i]]
			if v == nil {
				return proto.KindNull, nil, true
			}
			return proto.KindText, []byte(*v), true
		}
	case m.oldFull:
		from = fromTuple(r.Old)
	default:
		from = func(int) (byte, []byte, bool) { return proto.KindNull, nil, true }
	}
	out := fillToast(row, from)
	if hasToastValue(out) {
		out = fillToast(out, func(int) (byte, []byte, bool) { return proto.KindNull, nil, true })
	}
	return out, nil
}

// net is the run's result: the keys whose row went away, the rows the
// run changes in place (the destination had them), and the rows it adds.
func (m *replay) net() (dels, updates, puts []proto.Tuple) {
	for _, st := range m.order {
		switch {
		case !st.written:
		case st.present && st.local != nil:
			updates = append(updates, st.tuple)
		case st.present:
			puts = append(puts, st.tuple)
		case st.local != nil:
			dels = append(dels, st.key)
		}
	}
	return dels, updates, puts
}

func hasToastValue(t proto.Tuple) bool {
	for _, k := range t.Kinds {
		if k == proto.KindToast {
			return true
		}
	}
	return false
}

// fillToast returns a copy of t with each unchanged-TOAST column that
// from has a value for (ok) taken from it.
func fillToast(t proto.Tuple, from func(i int) (kind byte, val []byte, ok bool)) proto.Tuple {
	out := proto.Tuple{Kinds: append([]byte(nil), t.Kinds...), Values: append([][]byte(nil), t.Values...)}
	for i, k := range t.Kinds {
		if k != proto.KindToast {
			continue
		}
		if kind, v, ok := from(i); ok {
			out.Kinds[i], out.Values[i] = kind, v
		}
	}
	return out
}

// fromTuple takes unchanged TOAST values from t where it has them.
func fromTuple(t proto.Tuple) func(int) (byte, []byte, bool) {
	return func(i int) (byte, []byte, bool) {
		if i >= t.Len() || t.Kinds[i] == proto.KindToast {
			return 0, nil, false
		}
		return t.Kinds[i], t.Values[i], true
	}
}

// tupleJSON is columns cols of t as a JSON object, column -> text value
// (null for NULL; unchanged TOAST values left out).
func tupleJSON(p *segmentPlan, t proto.Tuple, cols []int) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, i := range cols {
		if i >= t.Len() || t.Kinds[i] == proto.KindToast {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(p.names[i])
		b.Write(name)
		b.WriteByte(':')
		if t.Kinds[i] != proto.KindText {
			b.WriteString("null")
			continue
		}
		v, _ := json.Marshal(string(t.Values[i]))
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

// incomingJSON is a change's new row as sluice.conflicts shows it ("" for
// a delete).
func incomingJSON(p *segmentPlan, r *proto.Row) string {
	if r.Op == proto.OpDelete {
		return ""
	}
	return tupleJSON(p, r.New, seq(len(p.names)))
}

// params are a statement's parameters, built as its text is.
type params struct {
	vals    [][]byte
	oids    []uint32
	formats []int16
}

// add appends a parameter and returns its placeholder.
func (ps *params) add(v []byte, oid uint32, format int16) string {
	ps.vals, ps.oids, ps.formats = append(ps.vals, v), append(ps.oids, oid), append(ps.formats, format)
	return "$" + strconv.Itoa(len(ps.vals))
}

func (ps *params) text(s string) string { return ps.add([]byte(s), textOID, 0) }

// column is column c of rows as a text[] (binary).
func (ps *params) column(rows []proto.Tuple, c int) string {
	return ps.add(appendTextArray(nil, rows, c), textArrayOID, 1)
}

// strings is ss as a text[].
func (ps *params) strings(ss []string) string {
	rows := make([]proto.Tuple, len(ss))
	for i, s := range ss {
		rows[i] = proto.Tuple{Kinds: []byte{proto.KindText}, Values: [][]byte{[]byte(s)}}
	}
	return ps.column(rows, 0)
}

// query runs sql and calls each with every row's values (text format,
// valid until the next row).
func (ps *params) query(ctx context.Context, pg *pgconn.PgConn, sql string, each func([][]byte) error) error {
	rr := pg.ExecParams(ctx, sql, ps.vals, ps.oids, ps.formats, nil)
	for rr.NextRow() {
		if err := each(rr.Values()); err != nil {
			rr.Close()
			return err
		}
	}
	_, err := rr.Close()
	return err
}
