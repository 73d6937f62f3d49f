package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Schema sync at a PostgreSQL destination. Every step is safe to run again
// after a crash half-way: objects are created only when absent, each in
// its own statement, rather than all in one transaction, because one
// transaction creating thousands of tables runs out of lock slots.

// ApplyPreData creates extensions, schemas, types, sequences, routines
// and tables (with PK/unique/check constraints, NOT NULL, defaults,
// collations, identity, generated columns, partitions): preDataSteps.
// Idempotent: running it twice, or after a crash half-way, succeeds and
// changes nothing already there.
//
// o is the task's choices (nil: the defaults).
func ApplyPreData(ctx context.Context, conn *pgx.Conn, s *proto.Schema, o *SchemaOptions) error {
	return runSteps(ctx, conn, preDataSteps(s, o), s, o)
}

// ApplyPostData creates secondary indexes, exclusion constraints, checks
// the source never validated, and foreign keys to the schema's tables
// (after the full load), then the rest of a working copy: views and
// materialized views (whose rows the load has just written), triggers
// and rules (which the load did not fire), comments: postDataSteps.
// Tables are still under the source's names then, as the definitions
// are. Idempotent.
func ApplyPostData(ctx context.Context, conn *pgx.Conn, s *proto.Schema, o *SchemaOptions) error {
	return runSteps(ctx, conn, postDataSteps(s, o), s, o)
}

// hasConstraint reports whether table has a constraint named name, on a
// session or in a transaction.
func hasConstraint(ctx context.Context, q rowQuerier, table proto.TableID, name string) (bool, error) {
	return constraintNamed(ctx, q, ddlTableIdent(table), name)
}

// rowQuerier is a session or a transaction.
type rowQuerier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// constraintNamed reports whether table (its name as SQL text) has a
// constraint called name.
func constraintNamed(ctx context.Context, q rowQuerier, table, name string) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2)`,
		table, name).Scan(&exists)
	return exists, err
}

// SyncSequences sets every sequence (identity sequences included) to the
// source's value (setval(seq, last_value, is_called)), and the OWNED BY
// links.
//
// Identity sequences are found by name: CREATE TABLE gave them the
// source's name (SEQUENCE NAME in ColumnDef.IdentityOptions).
func SyncSequences(ctx context.Context, conn *pgx.Conn, s *proto.Schema) error {
	for _, seq := range s.Sequences {
		name := ddlObjectName(seq.Schema, seq.Name)
		_, err := conn.Exec(ctx, "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
			pgx.Identifier{seq.Schema, seq.Name}.Sanitize(), seq.LastValue, seq.IsCalled)
		if err != nil {
			return fmt.Errorf("set value of sequence %s: %w", name, err)
		}
	}
	return linkSequences(ctx, conn, s)
}

// linkSequences sets OWNED BY of the sequences that are not identity
// sequences (those are linked by their table and refuse OWNED BY).
func linkSequences(ctx context.Context, conn *pgx.Conn, s *proto.Schema) error {
	for _, st := range ownedBySteps(s) {
		if err := execDDL(ctx, conn, st.What, st.SQL); err != nil {
			return err
		}
	}
	return nil
}

// ExistingTables returns which of the tables already exist at the
// destination (for the conflicting-tables precheck), in the given order.
// Any relation of that name counts: a view would block CREATE TABLE too.
func ExistingTables(ctx context.Context, conn *pgx.Conn, tables []proto.TableID) ([]proto.TableID, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN unnest($1::text[], $2::text[]) AS l(schema, name) ON l.schema = n.nspname AND l.name = c.relname
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("look up existing tables: %w", err)
	}
	found := map[proto.TableID]bool{}
	for rows.Next() {
		var t proto.TableID
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up existing tables: %w", err)
		}
		found[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up existing tables: %w", err)
	}
	var out []proto.TableID
	for _, t := range tables {
		if found[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// exec runs a DDL statement; errors name the object it was for.
func execDDL(ctx context.Context, conn *pgx.Conn, what, sql string) error {
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func quoteDDLIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func ddlTableIdent(t proto.TableID) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// objectName is schema.name for messages, quoted only when needed.
func ddlObjectName(schema, name string) string {
	return proto.TableID{Schema: schema, Name: name}.String()
}
