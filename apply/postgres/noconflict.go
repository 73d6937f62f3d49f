package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/proto"
)

// The apply without INSERT ... ON CONFLICT, for servers that lack it
// (Greenplum 6) or tasks that ask for it (adbpg's upsert: delete_insert):
// what PostgreSQL writes as one upsert is written, in the same
// transaction, as statements every server takes:
//
//   - a row that may exist (an update whose row went missing, the
//     row-by-row retry): DELETE of its key, then INSERT;
//   - a key change that keeps unchanged TOAST values: DELETE at the new
//     key, INSERT ... SELECT from the row at the old key, DELETE of it;
//   - the position rows (sluice.apply_offsets, sluice.copy_tables):
//     UPDATE, then INSERT of the rows still missing;
//   - a full-sync chunk into a table that keeps its rows: INSERT ...
//     WHERE NOT EXISTS a row with the key.
//
// The set-based apply itself (DELETE, COPY, UPDATE ... FROM arrays)
// needs no ON CONFLICT. Nor does an update that changes a distribution
// key column: at AnalyticDB the distribution key lies inside every key,
// so such an update changes the row's key, which the coalescing apply
// writes as a DELETE and an INSERT (apply.Coalesce); and a table without
// a primary key has its updates written as DELETE + INSERT of the row
// (queueUnkeyed), so no distribution column is ever updated in place.
//
// Here too are the AnalyticDB apply's other parts: the generated columns
// it computes after each write (fillGenerated).

// deleteInsert writes rows that may exist: their keys deleted, then the
// rows inserted.
func (w *writer) deleteInsert(ctx context.Context, p *segmentPlan, rows []proto.Tuple) error {
	if err := w.deleteKeys(ctx, p, rows); err != nil {
		return err
	}
	return w.insertRows(ctx, p, rows)
}

// moveDeleteInsert is move without ON CONFLICT: the new key cleared,
// the new row inserted with its unchanged TOAST values read from the row
// at the old key, which is then deleted.
func (w *writer) moveDeleteInsert(ctx context.Context, p *segmentPlan, oldKey, newRow proto.Tuple) error {
	if err := w.deleteKeys(ctx, p, []proto.Tuple{newRow}); err != nil {
		return err
	}
	if err := w.send(ctx); err != nil {
		return err
	}
	sel, params := moveSelect(p, oldKey, newRow)
	sql := fmt.Sprintf("INSERT INTO %s (%s)%s SELECT %s", tableName(p.table), columnList(p, seq(len(p.names))), w.d.overriding(), sel)
	if _, err := w.pg.ExecParams(ctx, sql, params, nil, nil, nil).Close(); err != nil {
		return err
	}
	return w.deleteKeys(ctx, p, []proto.Tuple{oldKey})
}

// queueUnkeyed queues the statements of an update or delete of a table
// without a primary key (matched on every column of the old row, one row
// at most) and returns how many. At AnalyticDB an update is a DELETE of
// the row and an INSERT of its new version, so that no column, which
// may be the table's distribution key, is updated in place; and a row is
// found by its segment and ctid, a ctid being unique only within its
// segment.
func (w *writer) queueUnkeyed(batch *pgconn.Batch, p *segmentPlan, r *proto.Row) int {
	if !w.d.isADBPG() {
		sql, params := unkeyedStatement(p, r)
		batch.ExecParams(sql, params, nil, nil, nil)
		return 1
	}
	var params [][]byte
	match := make([]string, len(p.names))
	for i := range p.names {
		params = append(params, textParam(r.Old, i))
		// Compared as text, as unkeyedStatement does.
		match[i] = fmt.Sprintf("%s::text IS NOT DISTINCT FROM $%d", ident(p.names[i]), len(params))
	}
	batch.ExecParams("DELETE FROM "+tableName(p.table)+" WHERE "+w.d.oneRow(tableName(p.table), strings.Join(match, " AND ")), params, nil, nil, nil)
	if r.Op != proto.OpUpdate {
		return 1
	}
	// REPLICA IDENTITY FULL sends the old row whole: it holds the values
	// an update left unchanged.
	row := r.New
	if hasToastValue(row) {
		row = proto.Tuple{Kinds: make([]byte, len(r.New.Kinds)), Values: make([][]byte, len(r.New.Kinds))}
		for i, k := range r.New.Kinds {
			row.Kinds[i], row.Values[i] = k, r.New.Values[i]
			if k == proto.KindToast && i < r.Old.Len() {
				row.Kinds[i], row.Values[i] = r.Old.Kinds[i], r.Old.Values[i]
			}
		}
	}
	values := make([]string, len(p.names))
	params = params[:0:0]
	for i := range p.names {
		params = append(params, textParam(row, i))
		values[i] = fmt.Sprintf("$%d::%s", i+1, p.types[i])
	}
	batch.ExecParams(fmt.Sprintf("INSERT INTO %s (%s)%s VALUES (%s)", tableName(p.table), columnList(p, seq(len(p.names))), w.d.overriding(), strings.Join(values, ", ")),
		params, nil, nil, nil)
	return 2
}

// oneRow is the condition that picks one row of table among those cond
// matches: by ctid, and at Greenplum by its segment too.
func (d *Dialect) oneRow(table, cond string) string {
	if d != nil && d.srv.greenplum {
		return fmt.Sprintf("(gp_segment_id, ctid) IN (SELECT gp_segment_id, ctid FROM %s WHERE %s LIMIT 1)", table, cond)
	}
	return oneRowPostgres(table, cond)
}

// oneRowPostgres picks one row by its ctid and the partition it is in:
// a partitioned table's partitions number their ctids each from the
// start, so a ctid alone would take the row at the same place in every
// partition. PostgreSQL still reads the row by its ctid (a TID scan).
func oneRowPostgres(table, cond string) string {
	return fmt.Sprintf("(tableoid, ctid) = (SELECT tableoid, ctid FROM %s WHERE %s LIMIT 1)", table, cond)
}

// Positions without ON CONFLICT (offset.go has the upserts).
const (
	// offsetCreateMissing adds missing offset rows at position zero.
	offsetCreateMissing = `INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1::text, u.s, u.t, u.h, '0/0', 0, 0 FROM unnest($2::text[], $3::text[], $4::int[]) AS u(s, t, h)
WHERE NOT EXISTS (SELECT 1 FROM sluice.apply_offsets o WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h)`
	// offsetUpdate moves positions unless a newer epoch wrote them (as
	// offsetUpsert does for rows that exist).
	offsetUpdate = `UPDATE sluice.apply_offsets AS o
SET lsn = CASE WHEN (u.l::pg_lsn, u.i) > (o.lsn, o.idx) THEN u.l::pg_lsn ELSE o.lsn END,
	idx = CASE WHEN (u.l::pg_lsn, u.i) > (o.lsn, o.idx) THEN u.i ELSE o.idx END,
	epoch = $2::bigint, updated_at = now()
FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h AND o.epoch <= $2::bigint`
	// offsetInsertMissing stores positions no row holds yet.
	offsetInsertMissing = `INSERT INTO sluice.apply_offsets (task, schema_name, table_name, shard, lsn, idx, epoch)
SELECT $1::text, u.s, u.t, u.h, u.l::pg_lsn, u.i, $2::bigint FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[]) AS u(s, t, h, l, i)
WHERE NOT EXISTS (SELECT 1 FROM sluice.apply_offsets o WHERE o.task = $1::text AND o.schema_name = u.s AND o.table_name = u.t AND o.shard = u.h)`
)

// createOffsets adds a transaction's missing offset rows at position
// zero. Without ON CONFLICT, the task's creators take turns (an advisory
// lock to the transaction's end), so that two owners in a failover do
// not both insert a row.
func (s *Sink) createOffsets(ctx context.Context, tx pgx.Tx, task string, schemas, names []string, shards []int32) error {
	if s.dialect.upserts() {
		_, err := tx.Exec(ctx, offsetCreate, task, schemas, names, shards)
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7420002, hashtext($1::text))", task); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, offsetCreateMissing, task, schemas, names, shards)
	return err
}

// storeOffsets writes the offset rows (writeOffsets' statement), and
// returns how many it wrote: rows a newer epoch holds are not.
func (s *Sink) storeOffsets(ctx context.Context, tx pgx.Tx, args ...any) (int64, error) {
	if s.dialect.upserts() {
		tag, err := tx.Exec(ctx, offsetUpsert, args...)
		return tag.RowsAffected(), err
	}
	tag, err := tx.Exec(ctx, offsetUpdate, args...)
	if err != nil {
		return 0, err
	}
	ins, err := tx.Exec(ctx, offsetInsertMissing, args...)
	return tag.RowsAffected() + ins.RowsAffected(), err
}

// bindPlan binds a table to a full-sync plan unless a newer plan holds
// it, and returns how many rows it wrote (0: a newer plan holds it).
func (s *Sink) bindPlan(ctx context.Context, tx pgx.Tx, task string, t proto.TableID, plan uint64) (int64, error) {
	if s.dialect.upserts() {
		tag, err := tx.Exec(ctx, `INSERT INTO sluice.copy_tables AS c (task, schema_name, table_name, plan) VALUES ($1, $2, $3, $4)
			ON CONFLICT (task, schema_name, table_name) DO UPDATE SET plan = EXCLUDED.plan, finished = false
			WHERE c.plan <= EXCLUDED.plan`, task, t.Schema, t.Name, int64(plan))
		return tag.RowsAffected(), err
	}
	tag, err := tx.Exec(ctx, `UPDATE sluice.copy_tables SET plan = $4::bigint, finished = false
		WHERE task = $1::text AND schema_name = $2::text AND table_name = $3::text AND plan <= $4::bigint`, task, t.Schema, t.Name, int64(plan))
	if err != nil || tag.RowsAffected() > 0 {
		return tag.RowsAffected(), err
	}
	tag, err = tx.Exec(ctx, `INSERT INTO sluice.copy_tables (task, schema_name, table_name, plan) SELECT $1::text, $2::text, $3::text, $4::bigint
		WHERE NOT EXISTS (SELECT 1 FROM sluice.copy_tables WHERE task = $1::text AND schema_name = $2::text AND table_name = $3::text)`, task, t.Schema, t.Name, int64(plan))
	return tag.RowsAffected(), err
}

// keepInsertSQL moves a staged chunk (pg_temp.sluice_keep, columns list)
// into table, leaving a row whose key the table has as it is: ON
// CONFLICT DO NOTHING, or without it WHERE NOT EXISTS a row with the
// staged row's primary key (else its first unique key).
func (s *Sink) keepInsertSQL(ctx context.Context, tx pgx.Tx, table proto.TableID, list string) (string, error) {
	if s.dialect.upserts() {
		return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.sluice_keep ON CONFLICT DO NOTHING", tableName(table), list, list), nil
	}
	rows, err := tx.Query(ctx, `SELECT i.indexrelid::bigint, a.attname::text
		FROM pg_catalog.pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1::text::regclass AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL AND i.indexprs IS NULL
		ORDER BY i.indisprimary DESC, i.indexrelid, k.ord`, tableName(table))
	if err != nil {
		return "", wrapTable(table, "read the keys of", err)
	}
	var key []string
	var first int64
	for rows.Next() {
		var ix int64
		var col string
		if err := rows.Scan(&ix, &col); err != nil {
			rows.Close()
			return "", err
		}
		if first == 0 {
			first = ix
		}
		if ix == first {
			key = append(key, col)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", wrapTable(table, "read the keys of", err)
	}
	if len(key) == 0 {
		return "", fmt.Errorf("%s has no primary or unique key to tell its rows from the source's (conflicting_tables: ignore needs one)", table)
	}
	return keepNotExistsSQL(table, list, key), nil
}

// keepNotExistsSQL moves the staged rows whose key (the columns key) the
// table does not have into it.
func keepNotExistsSQL(table proto.TableID, list string, key []string) string {
	match := make([]string, len(key))
	for i, c := range key {
		match[i] = fmt.Sprintf("d.%s = k.%s", ident(c), ident(c))
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.sluice_keep AS k WHERE NOT EXISTS (SELECT 1 FROM %s AS d WHERE %s)",
		tableName(table), list, list, tableName(table), strings.Join(match, " AND "))
}

// Generated columns at AnalyticDB: plain columns marked with the source's
// expression (adbpg_schema.go), computed by the apply after it writes
// their rows, in the same transaction, and after a table's full sync.

// readGenerated reads the marked columns of a destination table (none
// but at AnalyticDB).
func (d *Dialect) readGenerated(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, t proto.TableID) ([]generatedColumn, error) {
	if !d.isADBPG() {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT a.attname::text, d.description
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_description d
		  ON d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid = a.attrelid AND d.objsubid = a.attnum
		WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped AND d.description LIKE 'sluice: generated as %'
		ORDER BY a.attnum`, tableName(t))
	if err != nil {
		return nil, wrapTable(t, "read the generated columns of", err)
	}
	var out []generatedColumn
	for rows.Next() {
		var g generatedColumn
		if err := rows.Scan(&g.name, &g.expr); err != nil {
			rows.Close()
			return nil, err
		}
		g.expr = strings.TrimPrefix(g.expr, generatedMark)
		out = append(out, g)
	}
	rows.Close()
	return out, rows.Err()
}

// generatedSet is the SET list that computes gen.
func generatedSet(gen []generatedColumn) string {
	sets := make([]string, len(gen))
	for i, g := range gen {
		sets[i] = fmt.Sprintf("%s = (%s)", ident(g.name), g.expr)
	}
	return strings.Join(sets, ", ")
}

// fillGenerated computes the generated columns of the rows a segment
// inserted or updated: by key, or for a table without one, every row
// whose value is not what its expression says.
func (w *writer) fillGenerated(ctx context.Context, seg plannedSegment) error {
	p := seg.plan
	if len(p.generated) == 0 || len(seg.Rows) == 0 {
		return nil
	}
	table := tableName(p.table)
	if len(p.keyIdx) == 0 {
		stale := make([]string, len(p.generated))
		for i, g := range p.generated {
			stale[i] = fmt.Sprintf("%s IS DISTINCT FROM (%s)", ident(g.name), g.expr)
		}
		if err := w.send(ctx); err != nil {
			return err
		}
		_, err := w.tx.Exec(ctx, fmt.Sprintf("UPDATE ONLY %s SET %s WHERE %s", table, generatedSet(p.generated), strings.Join(stale, " OR ")))
		return err
	}
	// One row per key: Greenplum refuses an UPDATE that meets a row twice.
	seen := map[string]bool{}
	var keys []proto.Tuple
	for i := range seg.Rows {
		r := &seg.Rows[i]
		if r.Op != proto.OpInsert && r.Op != proto.OpUpdate {
			continue
		}
		k := r.New
		var b strings.Builder
		for _, j := range p.keyIdx {
			if k.Kinds[j] != proto.KindText && j < r.Old.Len() {
				k = r.Old
			}
			fmt.Fprintf(&b, "%d:%s", len(k.Values[j]), k.Values[j])
		}
		if !seen[b.String()] {
			seen[b.String()] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	args, names, match := make([]string, len(p.keyIdx)), make([]string, len(p.keyIdx)), make([]string, len(p.keyIdx))
	for j, i := range p.keyIdx {
		args[j], names[j] = fmt.Sprintf("$%d::text[]", j+1), fmt.Sprintf("k%d", j)
		match[j] = fmt.Sprintf("%s.%s = sluice_keys.k%d::%s", table, ident(p.names[i]), j, p.types[i])
	}
	sql := fmt.Sprintf("UPDATE %s SET %s FROM unnest(%s) AS sluice_keys(%s) WHERE %s",
		table, generatedSet(p.generated), strings.Join(args, ", "), strings.Join(names, ", "), strings.Join(match, " AND "))
	return w.execArrays(ctx, sql, keys, p.keyIdx)
}

// fillGeneratedTable computes a table's generated columns after its full
// sync (its rows were copied without them).
func (s *Sink) fillGeneratedTable(ctx context.Context, tx pgx.Tx, t proto.TableID) error {
	gen, err := s.dialect.readGenerated(ctx, tx, t)
	if err != nil || len(gen) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, fmt.Sprintf("UPDATE ONLY %s SET %s", tableName(t), generatedSet(gen)))
	return wrapTable(t, "compute the generated columns of", err)
}
