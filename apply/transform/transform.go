// Package transform computes a task's column transforms (task spec
// objects[].transform and add_columns, proto/transform.go) over the
// incremental sync's batches, before any destination sees them.
//
// The expressions are PostgreSQL's, so the source's own SQL engine
// evaluates them, as it does in the full sync's COPY query: one query per
// batch over a plain connection to the source, its rows passed as arrays
// of their text forms and cast back to their columns' types, so a
// function behaves exactly as in the copy (md5, upper, now(), casts,
// operators, the user's own functions). The cost is one round trip to the
// source per batch of a transformed table, carrying the batch's values.
package transform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Transformer computes the transforms of one task's batches. It connects
// to the source at its first transformed batch. Batch and CheckDDL are
// called from one goroutine (an apply worker collects batches on one);
// Close may come from another.
type Transformer struct {
	dsn, app string
	spec     *proto.TaskSpec
	conn     *pgx.Conn
	exprs    map[string][]proto.ColumnExpr // by source table key
	types    map[[2]int64]string           // format_type by (oid, typmod)
	results  map[string][]resultType       // by shapeKey
	mu       sync.Mutex
}

// New returns the transformer of a task, or nil when it transforms
// nothing. dsn is the source's (with its password reference resolved by
// pgconfig).
func New(dsn string, spec *proto.TaskSpec) *Transformer {
	if !spec.HasTransforms() {
		return nil
	}
	return &Transformer{dsn: dsn, app: "sluice transform " + spec.Name, spec: spec, exprs: map[string][]proto.ColumnExpr{}, types: map[[2]int64]string{}, results: map[string][]resultType{}}
}

// Close closes the connection to the source.
func (t *Transformer) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close(context.Background())
		t.conn = nil
	}
}

func (t *Transformer) exprsOf(table proto.TableID) []proto.ColumnExpr {
	key := table.Key()
	e, ok := t.exprs[key]
	if !ok {
		e = t.spec.ColumnExprs(table)
		t.exprs[key] = e
	}
	return e
}

// Error is a failure to transform a table's batch; it names the
// transforms (a lost connection to the source stays one, for the retry
// windows: it unwraps to the driver's error).
type Error struct {
	Table  proto.TableID
	Fields []string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("transform of %s (%s): %v", e.Table, strings.Join(e.Fields, ", "), e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

func fieldsOf(exprs []proto.ColumnExpr) []string {
	out := make([]string, len(exprs))
	for i, e := range exprs {
		out[i] = e.Field
	}
	return out
}

// CheckDDL refuses a schema change of a transformed table that renames,
// drops or retypes a transformed column, or adds a column named like an
// added one: the transform would no longer say what the user meant. The
// error names the transform; the user changes the task's spec to follow.
func (t *Transformer) CheckDDL(ev *proto.DDLEvent) error {
	if t == nil || ev.Old == nil {
		return nil
	}
	for _, e := range t.exprsOf(ev.Old.ID) {
		if e.Added {
			if ev.New != nil && slices.ContainsFunc(ev.New.Columns, func(c proto.ColumnDef) bool { return c.Name == e.Column }) {
				return fmt.Errorf("%s: the source table %s now has a column %q of its own (%s); rename the added column in the task's spec", e.Field, ev.Old.ID, e.Column, ev.Tag)
			}
			continue
		}
		i := slices.IndexFunc(ev.Old.Columns, func(c proto.ColumnDef) bool { return c.Name == e.Column })
		if i < 0 {
			continue
		}
		old := ev.Old.Columns[i]
		var now *proto.ColumnDef
		if ev.New != nil {
			if j := slices.IndexFunc(ev.New.Columns, func(c proto.ColumnDef) bool { return c.Num == old.Num }); j >= 0 {
				now = &ev.New.Columns[j]
			}
		}
		switch {
		case ev.New == nil:
			// The table is dropped: nothing more to transform.
		case now == nil:
			return fmt.Errorf("%s: the source dropped column %q of %s (%s); remove the transform from the task's spec", e.Field, e.Column, ev.Old.ID, ev.Tag)
		case now.Name != old.Name:
			return fmt.Errorf("%s: the source renamed column %q of %s to %q (%s); change the transform in the task's spec", e.Field, e.Column, ev.Old.ID, now.Name, ev.Tag)
		case now.Type != old.Type:
			return fmt.Errorf("%s: the source changed the type of column %q of %s to %s (%s); the destination column holds the expression's type, so change the task's spec", e.Field, e.Column, ev.Old.ID, now.Type, ev.Tag)
		}
	}
	return nil
}

// Batch replaces the transformed columns' values of b's rows by their
// expressions' and appends the added columns, in one query to the
// source. Rows of a table without transforms are left as they are.
func (t *Transformer) Batch(ctx context.Context, b *proto.Batch) error {
	if t == nil || len(b.Rows) == 0 {
		return nil
	}
	exprs := t.exprsOf(b.Table)
	if len(exprs) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.batch(ctx, b, exprs); err != nil {
		if t.conn != nil && t.conn.IsClosed() {
			t.conn = nil
		}
		return &Error{Table: b.Table, Fields: fieldsOf(exprs), Err: err}
	}
	return nil
}

// input is a tuple the query evaluates: a row's new image, or its old one
// under REPLICA IDENTITY FULL (a destination matches keyless rows by the
// whole old row, which holds the computed values).
type input struct {
	row int
	old bool
}

// resultType is a computed column's type, from the query's description.
type resultType struct {
	oid uint32
	mod int32
}

func (t *Transformer) batch(ctx context.Context, b *proto.Batch, exprs []proto.ColumnExpr) error {
	cols := slices.Clone(b.Columns)
	target := make([]int, len(exprs)) // the column each expression fills
	for i, e := range exprs {
		j := slices.IndexFunc(cols, func(c proto.Column) bool { return c.Name == e.Column })
		switch {
		case e.Added && j >= 0:
			return fmt.Errorf("%s: the source rows have a column %q already", e.Field, e.Column)
		case e.Added:
			cols = append(cols, proto.Column{Name: e.Column})
			j = len(cols) - 1
		case j < 0:
			return fmt.Errorf("%s: the source rows have no column %q (dropped, or not in the publication's column list)", e.Field, e.Column)
		case cols[j].Key:
			return fmt.Errorf("%s: %q is a key column: it cannot be transformed", e.Field, e.Column)
		}
		target[i] = j
	}
	var inputs []input
	for i, r := range b.Rows {
		if r.New.Len() > 0 {
			inputs = append(inputs, input{row: i})
		}
		if r.Old.Len() > 0 && b.ReplicaIdentity == proto.IdentityFull {
			inputs = append(inputs, input{row: i, old: true})
		}
	}
	out := make([]proto.Tuple, len(inputs))
	types, err := t.evaluate(ctx, b, exprs, inputs, target, len(cols), out)
	if err != nil {
		return err
	}
	for e, ty := range types {
		cols[target[e]].TypeOID, cols[target[e]].TypeMod = ty.oid, ty.mod
	}
	for i, in := range inputs {
		if in.old {
			b.Rows[in.row].Old = out[i]
		} else {
			b.Rows[in.row].New = out[i]
		}
	}
	// Old key images (the default identity) get the added columns, as
	// NULL: every tuple has one value per column.
	for i := range b.Rows {
		if o := &b.Rows[i].Old; o.Len() > 0 && o.Len() < len(cols) {
			n := len(cols) - o.Len()
			o.Kinds = append(slices.Clone(o.Kinds), slices.Repeat([]byte{proto.KindNull}, n)...)
			o.Values = append(slices.Clone(o.Values), make([][]byte, n)...)
		}
	}
	b.Columns = cols
	return nil
}

// evaluate runs the batch's query, fills out (one tuple per input,
// ncols values each) and returns the expressions' result types. A batch
// with no tuple to compute (deletes) takes the types its table's columns
// had last, without a query.
func (t *Transformer) evaluate(ctx context.Context, b *proto.Batch, exprs []proto.ColumnExpr, inputs []input, target []int, ncols int, out []proto.Tuple) ([]resultType, error) {
	shape := shapeKey(b)
	if len(inputs) == 0 {
		if types, ok := t.results[shape]; ok {
			return types, nil
		}
	}
	if t.conn == nil {
		conn, err := pgconfig.Connect(ctx, t.dsn, t.app)
		if err != nil {
			return nil, fmt.Errorf("connect to the source: %w", err)
		}
		t.conn = conn
	}
	src := b.Columns
	// The values, column by column, as text arrays. An unchanged TOAST
	// value is the old image's when it has one (REPLICA IDENTITY FULL),
	// else it is read from the table (query).
	values := make([][]*string, len(src))
	unchanged := make([][]bool, len(src))
	toast := make([]bool, len(src))
	for j := range src {
		values[j] = make([]*string, len(inputs))
		unchanged[j] = make([]bool, len(inputs))
	}
	for i, in := range inputs {
		r := &b.Rows[in.row]
		tup := r.New
		if in.old {
			tup = r.Old
		}
		for j := range src {
			kind, val := tupleValue(tup, j)
			if kind == proto.KindToast {
				if k, v := tupleValue(r.Old, j); k == proto.KindText {
					kind, val = k, v
				}
			}
			switch kind {
			case proto.KindText:
				s := string(val)
				values[j][i] = &s
			case proto.KindToast:
				unchanged[j][i], toast[j] = true, true
			}
		}
	}
	sql, args, err := t.query(ctx, b, exprs, values, unchanged, toast)
	if err != nil {
		return nil, err
	}
	rows, err := t.conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		raw := rows.RawValues()
		ord, err := strconv.Atoi(string(raw[0]))
		if err != nil || ord < 1 || ord > len(inputs) {
			return nil, fmt.Errorf("row number %q out of range", raw[0])
		}
		i := ord - 1
		r := &b.Rows[inputs[i].row]
		tup := r.New
		if inputs[i].old {
			tup = r.Old
		}
		res := proto.Tuple{Kinds: make([]byte, ncols), Values: make([][]byte, ncols)}
		copy(res.Kinds, tup.Kinds)
		copy(res.Values, tup.Values)
		for k := tup.Len(); k < ncols; k++ {
			res.Kinds[k] = proto.KindNull
		}
		for e := range exprs {
			j := target[e]
			if v := raw[1+e]; v == nil {
				res.Kinds[j], res.Values[j] = proto.KindNull, nil
			} else {
				res.Kinds[j], res.Values[j] = proto.KindText, slices.Clone(v)
			}
		}
		out[i] = res
		seen++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if seen != len(inputs) {
		return nil, fmt.Errorf("%d rows computed of %d", seen, len(inputs))
	}
	fds := rows.FieldDescriptions()
	types := make([]resultType, len(exprs))
	for e := range exprs {
		types[e] = resultType{oid: fds[1+e].DataTypeOID, mod: fds[1+e].TypeModifier}
	}
	t.results[shape] = types
	return types, nil
}

// shapeKey names a batch's table and column types: the expressions'
// result types depend on nothing else.
func shapeKey(b *proto.Batch) string {
	var sb strings.Builder
	sb.WriteString(b.Table.Key())
	for _, c := range b.Columns {
		fmt.Fprintf(&sb, "|%s:%d:%d", c.Name, c.TypeOID, c.TypeMod)
	}
	return sb.String()
}

// query is the batch's statement: the input tuples rebuilt as rows of the
// table's columns (unnest of one text array per column, cast back to the
// column's type), under the table's name so that an expression may
// qualify its columns, and the expressions over them, numbered by input.
//
// An unchanged TOAST value (the row image does not carry it) is read from
// the table's live row by key. That converges: the live row holds the
// value as of now, which is the value at the change or a later one; a
// later change of that column arrives as its own event and computes the
// expression again, and a later delete removes the row. Until then the
// destination may show the expression over the newer value, a moment
// early.
func (t *Transformer) query(ctx context.Context, b *proto.Batch, exprs []proto.ColumnExpr, values [][]*string, unchanged [][]bool, toast []bool) (string, []any, error) {
	types, err := t.typeNames(ctx, b.Columns)
	if err != nil {
		return "", nil, err
	}
	var args []any
	param := func(v any, typ string) string {
		args = append(args, v)
		return fmt.Sprintf("$%d::%s", len(args), typ)
	}
	var arrays, aliases, selects, join []string
	for j, c := range b.Columns {
		arrays = append(arrays, param(values[j], "text[]"))
		aliases = append(aliases, fmt.Sprintf("c%d", j))
		name := pgx.Identifier{c.Name}.Sanitize()
		value := fmt.Sprintf("u.c%d::%s", j, types[j])
		if c.Key {
			join = append(join, fmt.Sprintf("s.%s = %s", name, value))
		}
		if toast[j] {
			arrays = append(arrays, param(unchanged[j], "bool[]"))
			aliases = append(aliases, fmt.Sprintf("t%d", j))
			value = fmt.Sprintf("CASE WHEN u.t%d THEN s.%s ELSE %s END", j, name, value)
		}
		selects = append(selects, value+" AS "+name)
	}
	from := "unnest(" + strings.Join(arrays, ", ") + ") WITH ORDINALITY AS u(" + strings.Join(aliases, ", ") + ", sluice_ord)"
	if slices.Contains(toast, true) {
		if len(join) == 0 {
			return "", nil, errNoKey
		}
		from += " LEFT JOIN " + pgx.Identifier{b.Table.Schema, b.Table.Name}.Sanitize() + " s ON " + strings.Join(join, " AND ")
	}
	computed := make([]string, len(exprs))
	for i, e := range exprs {
		if err := proto.CheckFilter(e.Expr); err != nil {
			return "", nil, fmt.Errorf("%s: %w", e.Field, err)
		}
		computed[i] = e.SQL()
	}
	sql := "SELECT sluice_ord, " + strings.Join(computed, ", ") + " FROM (SELECT u.sluice_ord, " + strings.Join(selects, ", ") +
		" FROM " + from + ") AS " + pgx.Identifier{b.Table.Name}.Sanitize()
	return sql, args, nil
}

// typeNames are the columns' types as SQL names (format_type), read from
// the source once per type.
func (t *Transformer) typeNames(ctx context.Context, cols []proto.Column) ([]string, error) {
	var oids []uint32
	var mods []int32
	for _, c := range cols {
		if _, ok := t.types[[2]int64{int64(c.TypeOID), int64(c.TypeMod)}]; !ok {
			oids, mods = append(oids, c.TypeOID), append(mods, c.TypeMod)
		}
	}
	if len(oids) > 0 {
		rows, err := t.conn.Query(ctx, `SELECT o, m, format_type(o, m) FROM unnest($1::oid[], $2::int4[]) AS x(o, m)`, oids, mods)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var o uint32
			var m int32
			var name string
			if err := rows.Scan(&o, &m, &name); err != nil {
				rows.Close()
				return nil, err
			}
			t.types[[2]int64{int64(o), int64(m)}] = name
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = t.types[[2]int64{int64(c.TypeOID), int64(c.TypeMod)}]
		if out[i] == "" {
			return nil, fmt.Errorf("column %q: the source does not know type %d", c.Name, c.TypeOID)
		}
	}
	return out, nil
}

func tupleValue(tup proto.Tuple, j int) (byte, []byte) {
	if j >= tup.Len() {
		return proto.KindNull, nil
	}
	return tup.Kinds[j], tup.Values[j]
}

var errNoKey = errors.New("an unchanged TOAST value is referenced, and the table has no key to read it by")
