package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The sink contract's conformance suite, read back with SQL: values in
// PostgreSQL's text output, which is the suite's canonical form once
// the session prints timestamptz in UTC.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `SET TimeZone = 'UTC'`)
	sinktest.Run(t, sinktest.Destination{
		Capabilities: postgres.Destination.Capabilities(),
		Open: func(t *testing.T, _ string) sinktest.Sink {
			s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(ctx) })
			return s
		},
		Create: func(t *testing.T, def *proto.TableDef) { testenv.MustExec(t, conn, createTable(def)) },
		Read: func(t *testing.T, _ string, tb proto.TableID, cols []proto.Column) []sinktest.Row {
			return readTable(t, conn, tb, cols)
		},
		Exists: func(t *testing.T, _ string, tb proto.TableID) bool { return exists(t, conn, tb) },
		Columns: func(t *testing.T, _ string, tb proto.TableID) []string {
			if !exists(t, conn, tb) {
				return nil
			}
			return columns(t, conn, tb)
		},
		SchemaColumns: true,
	})
}

// createTable is the table as a user would have made it: its columns
// with their types, NOT NULL and defaults, its constraints, its replica
// identity.
func createTable(def *proto.TableDef) string {
	name := pgx.Identifier{def.ID.Schema, def.ID.Name}.Sanitize()
	var parts []string
	for _, c := range def.Columns {
		col := pgx.Identifier{c.Name}.Sanitize() + " " + c.Type
		if c.NotNull {
			col += " NOT NULL"
		}
		if c.Default != "" {
			col += " DEFAULT " + c.Default
		}
		parts = append(parts, col)
	}
	for _, c := range def.Constraints {
		parts = append(parts, "CONSTRAINT "+pgx.Identifier{c.Name}.Sanitize()+" "+c.Def)
	}
	sql := "CREATE TABLE " + name + " (" + strings.Join(parts, ", ") + ")"
	if def.ReplicaIdentity == proto.IdentityFull {
		sql += "; ALTER TABLE " + name + " REPLICA IDENTITY FULL"
	}
	return sql
}

func exists(t *testing.T, conn *pgx.Conn, tb proto.TableID) bool {
	t.Helper()
	var ok bool
	err := conn.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{tb.Schema, tb.Name}.Sanitize()).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// readTable reads cols of every row in the text format: PostgreSQL's own
// output of each value.
func readTable(t *testing.T, conn *pgx.Conn, tb proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	sql := "SELECT " + strings.Join(names, ", ") + " FROM " + pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
	rows, err := conn.Query(context.Background(), sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined table: it holds nothing
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []sinktest.Row
	for rows.Next() {
		r := sinktest.Row{}
		for i, v := range rows.RawValues() {
			r[cols[i].Name] = sinktest.Null
			if v != nil {
				r[cols[i].Name] = string(v)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// columns reads a table's columns from the catalog, as Destination.Columns
// says.
func columns(t *testing.T, conn *pgx.Conn, tb proto.TableID) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		pgx.Identifier{tb.Schema, tb.Name}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
