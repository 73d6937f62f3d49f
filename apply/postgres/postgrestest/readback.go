// Package postgrestest reads back what Sluice wrote to a PostgreSQL
// database, in the canonical form the sink conformance suite
// (apply/sinktest) and the pipeline suite (pipeline/pipelinetest) compare:
// PostgreSQL's own text output of each value, read by a session whose
// TimeZone is UTC.
package postgrestest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// CreateTableSQL is the table as a user would have made it: its columns
// with their types, NOT NULL and defaults, its constraints, its replica
// identity.
func CreateTableSQL(def *proto.TableDef) string {
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

// Exists reports whether the table is there.
func Exists(t *testing.T, conn *pgx.Conn, tb proto.TableID) bool {
	t.Helper()
	var ok bool
	err := conn.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{tb.Schema, tb.Name}.Sanitize()).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// ReadTable reads cols of every row in the text format: PostgreSQL's own
// output of each value. A column the table does not have (yet: DDL sync
// adds it) reads as NULL, a table it does not have as no rows.
func ReadTable(t *testing.T, conn *pgx.Conn, tb proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	name := pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
	rows, err := conn.Query(context.Background(), `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, name)
	if err != nil {
		t.Fatal(err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(have) == 0 {
		return nil // no such table: it holds nothing
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = "NULL"
		if slices.Contains(have, c.Name) {
			exprs[i] = pgx.Identifier{c.Name}.Sanitize()
		}
	}
	rows, err = conn.Query(context.Background(), "SELECT "+strings.Join(exprs, ", ")+" FROM "+name, pgx.QueryResultFormats{pgx.TextFormatCode})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // dropped meanwhile
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return textRows(t, rows, names)
}

// ReadQuery reads the rows of a query in the text format, each value
// under the name of its place in names.
func ReadQuery(t *testing.T, conn *pgx.Conn, query string, names []string) []sinktest.Row {
	t.Helper()
	rows, err := conn.Query(context.Background(), query, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatal(err)
	}
	return textRows(t, rows, names)
}

// textRows collects rows read in the text format, each value under the
// name of its place in names.
func textRows(t *testing.T, rows pgx.Rows, names []string) []sinktest.Row {
	t.Helper()
	var out []sinktest.Row
	for rows.Next() {
		r := sinktest.Row{}
		for i, v := range rows.RawValues() {
			r[names[i]] = sinktest.Null
			if v != nil {
				r[names[i]] = string(v)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Columns reads a table's columns from the catalog, as Destination.Columns
// says.
func Columns(t *testing.T, conn *pgx.Conn, tb proto.TableID) []string {
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

// Target is a PostgreSQL database a task writes to, for the pipeline
// suite (pipeline/pipelinetest): a cluster of its own, stopped and
// started by the test.
type Target struct {
	PG *testenv.Postgres
	// Type is the destination type written to it ("postgres", or a
	// dialect of the PostgreSQL sink whose SQL PostgreSQL runs: adbpg,
	// polardb-o), and Keys the block's keys besides type and dsn.
	Type, Keys string
	conn       *pgx.Conn
}

// NewTarget starts a PostgreSQL cluster to write to.
func NewTarget(t *testing.T) *Target {
	return NewTargetOf(t, "postgres", "")
}

// NewTargetOf starts a PostgreSQL cluster that a destination of type typ
// writes to, with the block's keys keys ("upsert: delete_insert").
func NewTargetOf(t *testing.T, typ, keys string) *Target {
	pg := testenv.NewPostgres(t)
	return &Target{PG: pg, Type: typ, Keys: keys}
}

// Block is the task's destination block.
func (g *Target) Block() string {
	keys := ""
	if g.Keys != "" {
		keys = ", " + g.Keys
	}
	return fmt.Sprintf("{type: %s, dsn: %q%s}", g.Type, g.PG.DSN(testenv.DefaultDB), keys)
}

// Read reads a table back (ReadTable), on a session of its own.
func (g *Target) Read(t *testing.T, _ string, table proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	if g.conn == nil || g.conn.IsClosed() {
		g.conn = Conn(t, g.PG.DSN(testenv.DefaultDB))
	}
	return ReadTable(t, g.conn, table, cols)
}

// Unavailable: PostgreSQL keeps a value an update leaves unchanged.
func (g *Target) Unavailable() string { return "" }

// Stop stops the server.
func (g *Target) Stop(t *testing.T) {
	t.Helper()
	if g.conn != nil {
		g.conn.Close(context.Background())
		g.conn = nil
	}
	if err := g.PG.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Start starts it again, with what it held.
func (g *Target) Start(t *testing.T) bool {
	t.Helper()
	if err := g.PG.Start(); err != nil {
		t.Fatal(err)
	}
	return true
}

// Conn opens a session whose TimeZone is UTC, the canonical form's,
// closed at the test's end.
func Conn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn := testenv.Conn(t, dsn)
	testenv.MustExec(t, conn, `SET TimeZone = 'UTC'`)
	return conn
}
