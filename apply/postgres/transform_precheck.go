package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// transformsFit checks the transformed and added columns of tables that
// exist at the destination already (conflicting_tables: ignore): the
// destination column must be there, and take the expression's type as
// PostgreSQL assigns values (the same type, or an implicit or assignment
// cast from it, as INSERT accepts). src.Defs hold the transformed
// definitions (capture.TransformTable).
func (p *prechecker) transformsFit(ctx context.Context, conn *pgx.Conn, existing []proto.TableID) {
	if !p.spec.HasTransforms() || len(existing) == 0 {
		return
	}
	const id = "destination.transforms"
	names := p.spec.Names()
	checked := 0
	for i := range p.src.Defs {
		def := &p.src.Defs[i]
		target := names.Table(def.ID)
		if !slices.Contains(existing, target) {
			continue
		}
		for _, e := range p.spec.ColumnExprs(def.ID) {
			j := slices.IndexFunc(def.Columns, func(c proto.ColumnDef) bool { return c.Name == e.Column })
			if j < 0 {
				continue // the source's check reported it
			}
			typ := def.Columns[j].Type
			column := names.Column(def.ID, e.Column)
			var destType string
			var fits bool
			err := conn.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod),
				a.atttypid = t.oid OR EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = t.oid AND c.casttarget = a.atttypid AND c.castcontext IN ('i', 'a'))
					OR a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
				FROM pg_attribute a, (SELECT to_regtype($3) AS oid) t
				WHERE a.attrelid = $1::regclass AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
				pgx.Identifier{target.Schema, target.Name}.Sanitize(), column, typ).Scan(&destType, &fits)
			switch {
			case err == pgx.ErrNoRows:
				p.Fail(id, fmt.Sprintf("%s: table %s exists at the destination without a column %q", e.Field, target, column),
					fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s; or drop the table so that schema sync creates it", pgx.Identifier{target.Schema, target.Name}.Sanitize(), pgx.Identifier{column}.Sanitize(), typ))
			case err != nil:
				p.Fail(id, fmt.Sprintf("%s: cannot inspect %s at the destination: %v", e.Field, target, err), "")
			case !fits:
				p.Fail(id, fmt.Sprintf("%s: the expression's type %s does not fit column %q of %s at the destination (%s)", e.Field, typ, column, target, destType),
					"cast the expression to the column's type, e.g. ("+e.Expr+")::"+destType+", or change the destination column")
			default:
				checked++
			}
		}
	}
	if checked > 0 {
		p.Pass(id, fmt.Sprintf("%d transformed columns fit the existing destination tables", checked))
	}
}
