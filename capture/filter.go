package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Row filters (objects[].filter) keep at the destination exactly the rows
// whose current version satisfies the filter. PostgreSQL 15's publication
// row filter does that when the filter's columns are all in the replica
// identity (PrepareSource puts it there then, see publicationFilter). For
// any other filter the publication carries the table whole and the
// capture evaluates the filter on each new row image, in the pipeline:
//
//   - an INSERT whose image fails is dropped; a DELETE goes on (deleting
//     a key the destination does not have is a no-op);
//   - an UPDATE whose new image fails becomes a DELETE by key (the old key
//     when the key changed): the row may have been in the filter before;
//   - an UPDATE whose new image passes stays an UPDATE of the whole row:
//     the row may not be at the destination yet (without REPLICA IDENTITY
//     FULL the old image is unknown), and every sink writes a whole-row
//     UPDATE of a missing key as an insert (an upsert).
//
// The filter runs in the source's own SQL engine, over a batch of row
// images in one query, so every expression means what it means in the
// full copy's WHERE. Unchanged TOAST values (pgoutput's 'u') are not in
// the image; the same query takes them from the live row by key (a LEFT
// JOIN of the table). The live row may be newer than the change: that
// converges, since any later change of the row is its own event, judged
// and written again after this one, and a row since deleted (no live
// row) is deleted by key here, its own DELETE following. A publication
// filter has the same gap once: an UPDATE that moves a row in by
// changing its key arrives as an INSERT carrying 'u' values, filled the
// same way.

// relFilter is what the capture does with a filtered relation's rows.
type relFilter struct {
	// cond is the filter, parenthesised (proto.FilterCondition).
	cond string
	// pipeline: the publication carries no filter; every INSERT and UPDATE
	// is evaluated here. Otherwise only INSERTs with unchanged TOAST values
	// are (filled from the live row).
	pipeline bool
	// types are the columns' SQL types (format_type), for the casts.
	types []string
	// keyIdx are the key columns (the live row's lookup).
	keyIdx []int
}

// filterSQL reads whether the publication filters the relation and the
// SQL types of its columns, in one round trip.
const filterSQL = `SELECT coalesce((SELECT pr.prqual IS NOT NULL FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		WHERE p.pubname = $1 AND pr.prrelid = $2), false),
	array(SELECT format_type(o, m) FROM unnest($3::oid[], $4::int4[]) WITH ORDINALITY AS x(o, m, n) ORDER BY n)`

// describeFilter sets rel.filter for a table with a row filter.
func (s *sessionState) describeFilter(ctx context.Context, rel *relation, f string) error {
	cond, err := proto.FilterCondition(f)
	if err != nil {
		return fmt.Errorf("row filter of %s: %w", rel.table, err)
	}
	oids := make([]uint32, len(rel.columns))
	mods := make([]int32, len(rel.columns))
	rf := &relFilter{cond: cond}
	for i, c := range rel.columns {
		oids[i], mods[i] = c.TypeOID, c.TypeMod
		if c.Key {
			rf.keyIdx = append(rf.keyIdx, i)
		}
	}
	conn, err := s.sourceConn(ctx)
	if err != nil {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var byPublication bool
	if err := conn.QueryRow(qctx, filterSQL, proto.SlotName(s.c.cfg.Task), rel.id, oids, mods).Scan(&byPublication, &rf.types); err != nil {
		s.dropSourceConn()
		return fmt.Errorf("read the row filter's place of %s: %w", rel.table, err)
	}
	rf.pipeline = !byPublication
	rel.filter = rf
	return nil
}

// sourceConn is the capture's ordinary (non-replication) connection to
// the source, opened when first needed.
func (s *sessionState) sourceConn(ctx context.Context) (*pgx.Conn, error) {
	if s.catalog != nil && !s.catalog.IsClosed() {
		return s.catalog, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconfig.Connect(cctx, s.c.cfg.SourceDSN, "sluice capture "+s.c.cfg.Task)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	s.catalog = conn
	return conn, nil
}

// dropSourceConn closes the connection after a failed query: the next
// session opens a new one.
func (s *sessionState) dropSourceConn() {
	if s.catalog != nil {
		s.catalog.Close(context.Background())
		s.catalog = nil
	}
}

// heldRow is a change waiting for its filter: a copy, since the decoded
// row aliases the WAL message.
type heldRow struct {
	row proto.Row
	// eval: the row goes into the evaluation query.
	eval bool
}

// holds reports whether a row of rel must wait for evaluation: every row
// of a pipeline-filtered table, an INSERT with unchanged TOAST values of
// a publication-filtered one, and any row behind a held one (order).
func (s *sessionState) holds(rel *relation, row *proto.Row) bool {
	if rel.filter == nil {
		return false
	}
	if b := s.open[rel.id]; b != nil && len(b.held) > 0 {
		return true
	}
	return rel.filter.pipeline || needsEval(rel.filter, row)
}

// needsEval says whether the row goes into the evaluation query.
func needsEval(f *relFilter, row *proto.Row) bool {
	switch row.Op {
	case proto.OpInsert:
		return f.pipeline || hasToastValue(row.New)
	case proto.OpUpdate:
		return f.pipeline
	}
	return false
}

func hasToastValue(t proto.Tuple) bool {
	for _, k := range t.Kinds {
		if k == proto.KindToast {
			return true
		}
	}
	return false
}

// hold keeps a copy of row in rel's open batch until the batch is
// settled (when it holds a batch's worth, or before it is published).
func (s *sessionState) hold(ctx context.Context, rel *relation, row *proto.Row) error {
	b := s.openBatchOf(rel)
	h := heldRow{row: *row, eval: needsEval(rel.filter, row)}
	h.row.New, h.row.Old = copyTuple(row.New), copyTuple(row.Old)
	size := h.row.New.Size() + h.row.Old.Size() + 32
	b.held = append(b.held, h)
	b.heldBytes += size
	s.openBytes += size
	if len(b.held) >= s.c.cfg.MaxBatchRows || b.heldBytes >= s.c.cfg.MaxBatchBytes {
		if err := s.settle(ctx, b); err != nil {
			return err
		}
	}
	if s.openBytes >= s.c.cfg.MaxOpenBytes {
		return s.publishOpen(ctx)
	}
	return nil
}

// copyTuple copies a tuple's values into one allocation.
func copyTuple(t proto.Tuple) proto.Tuple {
	if t.Len() == 0 {
		return proto.Tuple{}
	}
	out := proto.Tuple{Kinds: append([]byte(nil), t.Kinds...), Values: make([][]byte, len(t.Values))}
	n := 0
	for _, v := range t.Values {
		n += len(v)
	}
	slab := make([]byte, 0, n)
	for i, v := range t.Values {
		if v != nil {
			slab = append(slab, v...)
			out.Values[i] = slab[len(slab)-len(v) : len(slab) : len(slab)]
		}
	}
	return out
}

// settle evaluates b's held rows in one query and appends what they
// become to the batch, in order.
func (s *sessionState) settle(ctx context.Context, b *openBatch) error {
	held := b.held
	b.held = nil
	s.openBytes -= b.heldBytes
	b.heldBytes = 0
	rel := b.rel
	verdicts, err := s.evaluate(ctx, rel, held)
	if err != nil {
		return err
	}
	for i := range held {
		row := held[i].row
		if v := verdicts[i]; v != nil {
			if row = v.apply(rel, row); row.Op == 0 {
				continue
			}
		}
		if !rel.ops.Has(row.Op) {
			continue // as with the publication's filter: the resulting operation decides
		}
		if err := s.appendRow(ctx, rel, row); err != nil {
			return err
		}
	}
	return nil
}

// verdict is the evaluation of one row: whether its filled image passes,
// whether its live row was found (when it needed one), and the filled
// image.
type verdict struct {
	pass, live bool
	image      proto.Tuple
}

// apply turns a row into what its verdict makes it; Op 0 drops it.
func (v *verdict) apply(rel *relation, row proto.Row) proto.Row {
	if !v.live || !v.pass {
		if row.Op == proto.OpInsert && v.live {
			return proto.Row{} // never in the filter: nothing to undo
		}
		return deleteByKey(rel, row)
	}
	row.New = v.image
	return row
}

// deleteByKey turns an INSERT or UPDATE into a DELETE of the row's key
// (the old key when the update changed it).
func deleteByKey(rel *relation, row proto.Row) proto.Row {
	old := row.Old
	if old.Len() == 0 {
		old = proto.Tuple{Kinds: make([]byte, len(rel.columns)), Values: make([][]byte, len(rel.columns))}
		for i := range old.Kinds {
			old.Kinds[i] = proto.KindNull
		}
		for _, i := range rel.filter.keyIdx {
			old.Kinds[i], old.Values[i] = row.New.Kinds[i], row.New.Values[i]
		}
	}
	return proto.Row{Op: proto.OpDelete, Pos: row.Pos, Xid: row.Xid, CommitTimeUS: row.CommitTimeUS, Old: old}
}

// evaluate runs the filter over the held rows that need it, in one
// query; the others get a nil verdict (passed on as they are).
func (s *sessionState) evaluate(ctx context.Context, rel *relation, held []heldRow) ([]*verdict, error) {
	verdicts := make([]*verdict, len(held))
	var idx []int
	toast := make([]bool, len(rel.columns))
	anyToast := false
	for i := range held {
		if !held[i].eval {
			continue
		}
		idx = append(idx, i)
		for c, k := range held[i].row.New.Kinds {
			if k == proto.KindToast {
				toast[c], anyToast = true, true
			}
		}
	}
	if len(idx) == 0 {
		return verdicts, nil
	}
	f := rel.filter
	if anyToast && len(f.keyIdx) == 0 {
		return nil, fmt.Errorf("row filter of %s: a row with unchanged TOAST values and no key to read them by", rel.table)
	}
	cond := f.cond
	if !f.pipeline {
		cond = "true" // the publication has judged the row; only fill it
	}
	sql := evalSQL(rel, cond, toast, anyToast)
	args := evalArgs(rel, held, idx)
	conn, err := s.sourceConn(ctx)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rows, err := conn.Query(qctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		s.dropSourceConn()
		return nil, fmt.Errorf("evaluate the row filter of %s: %w", rel.table, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		raw := rows.RawValues()
		if n >= len(idx) || len(raw) < 3 {
			return nil, fmt.Errorf("evaluate the row filter of %s: unexpected result", rel.table)
		}
		row := held[idx[n]].row
		// The live row matters only to a row with unchanged values.
		v := &verdict{pass: string(raw[1]) == "t", live: !hasToastValue(row.New) || string(raw[2]) == "t", image: row.New}
		if hasToastValue(row.New) && v.live && v.pass {
			v.image = fillToast(row.New, toast, raw[3:])
		}
		verdicts[idx[n]] = v
		n++
	}
	if err := rows.Err(); err != nil {
		s.dropSourceConn()
		return nil, fmt.Errorf("evaluate the row filter of %s: %w", rel.table, err)
	}
	if n != len(idx) {
		return nil, fmt.Errorf("evaluate the row filter of %s: %d results for %d rows", rel.table, n, len(idx))
	}
	return verdicts, nil
}

// fillToast returns the image with its unchanged TOAST values taken from
// the live row: live holds, in column order, the values of the columns
// flagged in toast (text form, nil for NULL).
func fillToast(image proto.Tuple, toast []bool, live [][]byte) proto.Tuple {
	out := proto.Tuple{Kinds: append([]byte(nil), image.Kinds...), Values: append([][]byte(nil), image.Values...)}
	j := 0
	for c, flagged := range toast {
		if !flagged {
			continue
		}
		if out.Kinds[c] == proto.KindToast {
			if live[j] == nil {
				out.Kinds[c], out.Values[c] = proto.KindNull, nil
			} else {
				out.Kinds[c], out.Values[c] = proto.KindText, append([]byte(nil), live[j]...)
			}
		}
		j++
	}
	return out
}

// Names of the evaluation query's own columns; a table column of the
// same name would clash (the filter could not tell them apart).
const (
	evalOrd   = "sluice_filter_ord"
	evalKinds = "sluice_filter_kinds"
	evalLive  = "sluice_filter_live"
)

// evalSQL builds the evaluation query: the images come in as text arrays
// (one per column, and one of kind strings), are cast to the columns'
// types under the columns' own names, unchanged TOAST values taken from
// the live row when joined, and the filter is evaluated over them as in
// SELECT ... FROM table WHERE filter. Each row gives its ordinal, the
// verdict, whether the live row was found, and the filled values.
func evalSQL(rel *relation, cond string, toast []bool, join bool) string {
	cols := len(rel.columns)
	alias := pgx.Identifier{rel.table.Name}.Sanitize()
	var sel, out []string
	for i, c := range rel.columns {
		name := pgx.Identifier{c.Name}.Sanitize()
		cast := fmt.Sprintf("t.c%d::%s", i, rel.filter.types[i])
		if join && toast[i] {
			cast = fmt.Sprintf("CASE WHEN substr(t.%s, %d, 1) = 'u' THEN l.%s ELSE %s END", evalKinds, i+1, name, cast)
			out = append(out, alias+"."+name)
		}
		sel = append(sel, cast+" AS "+name)
	}
	live := "true"
	from := ""
	if join {
		live = "l.ctid IS NOT NULL"
		conds := make([]string, len(rel.filter.keyIdx))
		for j, k := range rel.filter.keyIdx {
			conds[j] = fmt.Sprintf("l.%s = t.c%d::%s", pgx.Identifier{rel.columns[k].Name}.Sanitize(), k, rel.filter.types[k])
		}
		from = fmt.Sprintf(" LEFT JOIN %s AS l ON %s", pgx.Identifier{rel.table.Schema, rel.table.Name}.Sanitize(), strings.Join(conds, " AND "))
	}
	sel = append(sel, live+" AS "+evalLive, "t."+evalOrd)
	params := make([]string, cols+1)
	aliases := make([]string, cols+2)
	params[0], aliases[0] = "$1::text[]", evalKinds
	for i := 0; i < cols; i++ {
		params[i+1], aliases[i+1] = fmt.Sprintf("$%d::text[]", i+2), fmt.Sprintf("c%d", i)
	}
	aliases[cols+1] = evalOrd
	// The subquery takes the table's name, so a filter that names its
	// columns qualified by the table still reads them.
	q := fmt.Sprintf("SELECT %[1]s.%[2]s, coalesce(%[3]s, false), %[1]s.%[4]s", alias, evalOrd, cond, evalLive)
	for _, o := range out {
		q += ", " + o
	}
	return q + fmt.Sprintf(" FROM (SELECT %s FROM unnest(%s) WITH ORDINALITY AS t(%s)%s) AS %s ORDER BY 1",
		strings.Join(sel, ", "), strings.Join(params, ", "), strings.Join(aliases, ", "), from, alias)
}

// evalArgs are the query's arrays: the rows' kind strings, then each
// column's values (NULL for a null or unchanged value).
func evalArgs(rel *relation, held []heldRow, idx []int) []any {
	cols := len(rel.columns)
	kinds := make([]string, len(idx))
	values := make([][]*string, cols)
	for c := range values {
		values[c] = make([]*string, len(idx))
	}
	for j, i := range idx {
		img := held[i].row.New
		kinds[j] = string(img.Kinds)
		for c := 0; c < cols; c++ {
			if img.Kinds[c] == proto.KindText {
				v := string(img.Values[c])
				values[c][j] = &v
			}
		}
		// A key column left out as unchanged (never in practice, keys are
		// small) is in the old tuple.
		for _, c := range rel.filter.keyIdx {
			if img.Kinds[c] == proto.KindToast && held[i].row.Old.Len() > c && held[i].row.Old.Kinds[c] == proto.KindText {
				v := string(held[i].row.Old.Values[c])
				values[c][j] = &v
			}
		}
	}
	args := make([]any, 0, cols+1)
	args = append(args, kinds)
	for _, v := range values {
		args = append(args, v)
	}
	return args
}

// PublicationFilters reports whether PostgreSQL's publication row filter
// can carry cond for table t: PostgreSQL takes it in a publication (built-in
// immutable functions only) and every column it names is in the replica
// identity, so that the table's UPDATE and DELETE stay allowed. It tries,
// in a transaction rolled back. cond has been checked to be a valid
// condition of the table (the full copy's WHERE).
func PublicationFilters(ctx context.Context, conn *pgx.Conn, t proto.TableID, cond string) (bool, error) {
	name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE PUBLICATION sluice_filter_probe FOR TABLE "+name+" WHERE "+cond); err != nil {
			return errNotInPublication{err}
		}
		return explainWrites(ctx, tx, name, proto.AllOps)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, errRollback):
		return true, nil
	case errors.As(err, new(errNotInPublication)):
		// A filter PostgreSQL's publications do not take (a user
		// function, a mutable one, a subquery...): the capture runs it.
		return false, nil
	case errors.As(err, &pgErr) && (pgErr.Code == "42P10" || pgErr.Code == "55000"):
		// The filter's columns are not in the replica identity (or the
		// table has none): the capture evaluates it.
		return false, nil
	}
	return false, err
}

// errNotInPublication: PostgreSQL refused the filter in a publication.
type errNotInPublication struct{ err error }

func (e errNotInPublication) Error() string { return e.err.Error() }

// explainWrites explains an UPDATE and a DELETE of the table (those of
// ops): PostgreSQL checks then that the publications allow them.
func explainWrites(ctx context.Context, tx pgx.Tx, name string, ops proto.OpSet) error {
	var col string
	if err := tx.QueryRow(ctx, `SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1`, name).Scan(&col); err != nil {
		return err
	}
	if ops.Has(proto.OpUpdate) {
		if _, err := tx.Exec(ctx, fmt.Sprintf("EXPLAIN UPDATE %s SET %s = %s WHERE false", name, col, col)); err != nil {
			return err
		}
	}
	if ops.Has(proto.OpDelete) {
		if _, err := tx.Exec(ctx, fmt.Sprintf("EXPLAIN DELETE FROM %s WHERE false", name)); err != nil {
			return err
		}
	}
	return errRollback
}
