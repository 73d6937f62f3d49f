package capture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Column transforms (proto/transform.go) at the source: the source's SQL
// engine describes each expression against its table, which gives the
// destination column's type, and computes it in the full sync's COPY
// query (Chunk.Exprs). The incremental sync computes the same
// expressions at apply (apply/transform), also with the source's engine.

// TransformError is a transform of the spec that does not compile against
// its table, or cannot be applied to it; Field names it.
type TransformError struct {
	Field string
	Err   error
}

func (e *TransformError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *TransformError) Unwrap() error { return e.Err }

// ExprType is an expression's result type: its OID and modifier, and
// format_type's text of them, schema-qualified outside pg_catalog.
type ExprType struct {
	OID    uint32
	TypMod int32
	Name   string
}

// DescribeExpr has the source parse and analyse the expression against
// the table's columns the change stream carries (cols: its synced
// columns, generated ones left out), without reading a row, and returns
// its result type: an expression that reads another column would work in
// the full sync's copy but not on the changes. It runs in a transaction
// or savepoint of its own, rolled back: a failure leaves q's transaction
// usable.
func DescribeExpr(ctx context.Context, q Querier, t proto.TableID, cols []string, e proto.ColumnExpr) (ExprType, error) {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	from := "(SELECT " + strings.Join(quoted, ", ") + " FROM " + pgx.Identifier{t.Schema, t.Name}.Sanitize() + ") AS " + pgx.Identifier{t.Name}.Sanitize()
	var out ExprType
	err := rolledBack(ctx, q, func(q Querier) error {
		rows, err := q.Query(ctx, "SELECT "+e.SQL()+" FROM "+from+" LIMIT 0")
		if err != nil {
			return err
		}
		fds := rows.FieldDescriptions()
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(fds) != 1 {
			return fmt.Errorf("%d values: one expression expected", len(fds))
		}
		out.OID, out.TypMod = fds[0].DataTypeOID, fds[0].TypeModifier
		if out.OID == 0 {
			return errors.New("its type cannot be determined: cast it, e.g. (expr)::text")
		}
		// Qualified like the schema read's names (search_path pg_catalog).
		if _, err := q.Exec(ctx, "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)"); err != nil {
			return err
		}
		return q.QueryRow(ctx, "SELECT format_type($1::oid, $2::int4)", out.OID, out.TypMod).Scan(&out.Name)
	})
	return out, err
}

// rolledBack runs fn in a transaction (an idle connection) or a savepoint
// (inside the caller's transaction), undone afterwards.
func rolledBack(ctx context.Context, q Querier, fn func(Querier) error) error {
	if conn, ok := q.(*pgx.Conn); ok && conn.PgConn().TxStatus() == 'I' {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to keep
		return fn(tx)
	}
	const sp = "sluice_describe_expr"
	if _, err := q.Exec(ctx, "SAVEPOINT "+sp); err != nil {
		return err
	}
	err := fn(q)
	if _, rbErr := q.Exec(context.WithoutCancel(ctx), "ROLLBACK TO SAVEPOINT "+sp+"; RELEASE SAVEPOINT "+sp); err == nil {
		err = rbErr
	}
	return err
}

// ReadTransformedSchema is ReadSchema with the spec's transforms applied
// (TransformSchema): the tables as the destination holds them.
func ReadTransformedSchema(ctx context.Context, q Querier, spec *proto.TaskSpec) (*proto.Schema, error) {
	s, err := ReadSchema(ctx, q, spec.Objects)
	if err != nil {
		return nil, err
	}
	if err := TransformSchema(ctx, q, s, spec); err != nil {
		return nil, err
	}
	return s, nil
}

// TransformSchema rewrites the definitions of the tables the spec
// transforms into what the destination holds: a replaced column takes
// its expression's type (and loses its default, identity, collation,
// NOT NULL and the constraints and indexes that use it, which were the
// source value's), added columns follow the table's own. The full sync
// copies, and schema sync creates, these definitions.
func TransformSchema(ctx context.Context, q Querier, s *proto.Schema, spec *proto.TaskSpec) error {
	for i := range s.Tables {
		if err := TransformTable(ctx, q, &s.Tables[i], spec.ColumnExprs(s.Tables[i].ID)); err != nil {
			return err
		}
	}
	return nil
}

// TransformTable rewrites one table's definition (TransformSchema); the
// first error names the transform at fault.
func TransformTable(ctx context.Context, q Querier, def *proto.TableDef, exprs []proto.ColumnExpr) error {
	if len(exprs) == 0 {
		return nil
	}
	key := keyColumns(def)
	if len(key) == 0 {
		return &TransformError{Field: exprs[0].Field, Err: fmt.Errorf("table %s has no primary key (nor replica identity index): transformed rows are matched by key at the destination", def.ID)}
	}
	replaced := map[int]bool{}
	added := 0
	streamed := def.CopiedColumns() // what an expression may read
	for _, e := range exprs {
		fail := func(format string, args ...any) error {
			return &TransformError{Field: e.Field, Err: fmt.Errorf(format, args...)}
		}
		i := slices.IndexFunc(def.Columns, func(c proto.ColumnDef) bool { return c.Name == e.Column })
		switch {
		case e.Added && i >= 0:
			return fail("table %s has a column %q already: use transform to replace its value", def.ID, e.Column)
		case !e.Added && i < 0:
			return fail("table %s has no (synced) column %q: use add_columns to add one", def.ID, e.Column)
		case !e.Added && slices.Contains(key, e.Column):
			return fail("%q is a key column of %s: deletes carry only the key, so it cannot be transformed", e.Column, def.ID)
		case !e.Added && def.Columns[i].Generated != "":
			return fail("%q is a generated column of %s: the destination computes it", e.Column, def.ID)
		}
		typ, err := DescribeExpr(ctx, q, def.ID, streamed, e)
		if err != nil {
			return fail("does not compile against %s (its synced columns): %v", def.ID, err)
		}
		col := proto.ColumnDef{Name: e.Column, Type: typ.Name, TypeOID: typ.OID}
		if e.Added {
			added++
			col.Num = -added // no attnum: nothing of the source refers to it
			def.Columns = append(def.Columns, col)
			continue
		}
		col.Num = def.Columns[i].Num
		def.Columns[i] = col
		replaced[col.Num] = true
	}
	uses := func(nums []int) bool { return slices.ContainsFunc(nums, func(n int) bool { return replaced[n] }) }
	def.Constraints = slices.DeleteFunc(def.Constraints, func(c proto.ConstraintDef) bool { return uses(c.Columns) })
	def.Indexes = slices.DeleteFunc(def.Indexes, func(ix proto.IndexDef) bool { return uses(ix.Columns) })
	return nil
}

// keyColumns are the columns a delete carries: the primary key's, or the
// replica identity index's.
func keyColumns(def *proto.TableDef) []string {
	if len(def.PrimaryKey) > 0 {
		return def.PrimaryKey
	}
	if def.ReplicaIdentity != proto.IdentityIndex || def.IdentityIndex == "" {
		return nil
	}
	var nums []int
	for _, c := range def.Constraints {
		if c.Name == def.IdentityIndex {
			nums = c.Columns
		}
	}
	for _, ix := range def.Indexes {
		if ix.Name == def.IdentityIndex {
			nums = ix.Columns
		}
	}
	var out []string
	for _, c := range def.Columns {
		if slices.Contains(nums, c.Num) {
			out = append(out, c.Name)
		}
	}
	return out
}

// precheckTransforms tries every transform of the spec against its
// table, as the schema read will (TransformTable), and reports each
// that fails under its field.
func (p *prechecker) precheckTransforms(ctx context.Context, conn *pgx.Conn, s *proto.Schema) {
	if !p.spec.HasTransforms() {
		return
	}
	ok := 0
	for i := range s.Tables {
		def := &s.Tables[i]
		for _, e := range p.spec.ColumnExprs(def.ID) {
			// One at a time, so each bad one is named.
			probe := *def
			probe.Columns = slices.Clone(def.Columns)
			if err := TransformTable(ctx, conn, &probe, []proto.ColumnExpr{e}); err != nil {
				p.Fail("source.transforms", err.Error(), "write one SQL expression over the table's own columns (it is evaluated by the source, as in SELECT expr FROM table)")
				continue
			}
			ok++
		}
		// The destination's checks see the transformed definition; a
		// failure here was reported above.
		_ = TransformTable(ctx, conn, def, p.spec.ColumnExprs(def.ID))
	}
	have := map[string]bool{}
	for _, t := range s.Tables {
		have[t.ID.Key()] = true
	}
	for i, o := range p.spec.Objects {
		for key, m := range map[string]map[string]map[string]string{"transform": o.Transform, "add_columns": o.AddColumns} {
			for _, name := range slices.Sorted(maps.Keys(m)) {
				if !have[proto.TableID{Schema: o.Schema, Name: name}.Key()] {
					p.Fail("source.transforms", fmt.Sprintf("objects[%d].%s.%s: names a table that is not selected (or does not exist)", i, key, name), "fix the table name")
				}
			}
		}
	}
	if ok > 0 {
		p.Pass("source.transforms", fmt.Sprintf("%d column transforms compile", ok))
	}
}
