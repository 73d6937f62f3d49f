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

// ApplyPreData creates extensions, schemas, types, sequences and tables
// (with PK/unique/check constraints, NOT NULL, defaults, collations,
// identity, generated columns). Idempotent: running it twice, or after a
// crash half-way, succeeds and changes nothing already there.
//
// o is the task's choices (nil: the defaults).
func ApplyPreData(ctx context.Context, conn *pgx.Conn, s *proto.Schema, o *SchemaOptions) error {
	for _, name := range s.Schemas {
		if err := execDDL(ctx, conn, "create schema "+quoteDDLIdent(name), "CREATE SCHEMA IF NOT EXISTS "+quoteDDLIdent(name)); err != nil {
			return err
		}
	}
	for _, name := range s.Extensions {
		// CASCADE installs the extensions it requires (earthdistance
		// needs cube) without us ordering them.
		stmt := "CREATE EXTENSION IF NOT EXISTS " + quoteDDLIdent(name)
		if schema := s.ExtensionSchemas[name]; schema != "" {
			stmt += " WITH SCHEMA " + quoteDDLIdent(schema)
		}
		if err := execDDL(ctx, conn, "create extension "+quoteDDLIdent(name), stmt+" CASCADE"); err != nil {
			return err
		}
	}
	// Sequences before types: a domain's default may call nextval.
	for _, seq := range s.Sequences {
		if seq.DDL == "" {
			continue // an identity sequence: its table makes it
		}
		if err := execDDL(ctx, conn, "create sequence "+ddlObjectName(seq.Schema, seq.Name), seq.DDL); err != nil {
			return err
		}
	}
	for _, t := range s.Types {
		if err := createType(ctx, conn, t); err != nil {
			return err
		}
	}
	// Routines before the tables whose defaults, checks and indexes may
	// call them (those that need a table wait for the phase after).
	if err := createObjects(ctx, conn, s.Objects, true, o); err != nil {
		return err
	}
	for i := range s.Tables {
		if err := createTable(ctx, conn, &s.Tables[i], o); err != nil {
			return err
		}
	}
	// Linking sequences to their columns now, not only when values are
	// synced, makes a dropped destination table take its sequence along.
	return linkSequences(ctx, conn, s)
}

func createType(ctx context.Context, conn *pgx.Conn, t proto.TypeDef) error {
	name := "create type " + ddlObjectName(t.Schema, t.Name)
	var exists bool
	err := conn.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
		               WHERE n.nspname = $1 AND t.typname = $2)`, t.Schema, t.Name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if exists {
		return nil
	}
	return execDDL(ctx, conn, name, t.DDL)
}

func createTable(ctx context.Context, conn *pgx.Conn, t *proto.TableDef, o *SchemaOptions) error {
	name := "create table " + t.ID.String()
	keep := t.PartitionBy != "" && !o.flatten(t.ID)
	sql := createTableSQL(t.ID, t)
	if keep {
		sql += " PARTITION BY " + t.PartitionBy
	}
	if err := execDDL(ctx, conn, name, sql); err != nil {
		return err
	}
	if keep {
		if err := createPartitions(ctx, conn, t); err != nil {
			return err
		}
	}
	// Repeating REPLICA IDENTITY is harmless; USING INDEX waits for the
	// index, in the post-data statements.
	if t.ReplicaIdentity != proto.IdentityFull && t.ReplicaIdentity != proto.IdentityNothing {
		return nil
	}
	return execDDL(ctx, conn, "set replica identity of "+t.ID.String(),
		"ALTER TABLE "+ddlTableIdent(t.ID)+" REPLICA IDENTITY "+replicaIdentitySQL(t))
}

// ApplyPostData creates secondary indexes, exclusion constraints, checks
// the source never validated, and foreign keys to the schema's tables
// (after the full load). Tables are still under the source's names then,
// as the definitions are. Idempotent.
//
// Then the rest of a working copy: views and materialized views (whose
// rows the load has just written), triggers and rules (which the load
// did not fire), comments.
func ApplyPostData(ctx context.Context, conn *pgx.Conn, s *proto.Schema, o *SchemaOptions) error {
	if err := applyTablePostData(ctx, conn, s, o); err != nil {
		return err
	}
	return createObjects(ctx, conn, s.Objects, false, o)
}

func applyTablePostData(ctx context.Context, conn *pgx.Conn, s *proto.Schema, o *SchemaOptions) error {
	synced := make(map[proto.TableID]bool, len(s.Tables))
	for i := range s.Tables {
		synced[s.Tables[i].ID] = true
	}
	// Every table's indexes before any foreign key: a key may reference a
	// unique index that is not a constraint.
	for i := range s.Tables {
		t := &s.Tables[i]
		for j := range t.Indexes {
			if err := execDDL(ctx, conn, "create index "+quoteDDLIdent(t.Indexes[j].Name)+" on "+t.ID.String(), indexSQL(t.ID, &t.Indexes[j])); err != nil {
				return err
			}
		}
		for j := range t.Constraints {
			if c := &t.Constraints[j]; !preData(c) && c.Kind != proto.ConstraintForeignKey {
				if err := addConstraint(ctx, conn, t.ID, c.Name, c.Def); err != nil {
					return err
				}
			}
		}
		if t.ReplicaIdentity == proto.IdentityIndex && t.IdentityIndex != "" {
			if err := execDDL(ctx, conn, "set replica identity of "+t.ID.String(),
				"ALTER TABLE "+ddlTableIdent(t.ID)+" REPLICA IDENTITY "+replicaIdentitySQL(t)); err != nil {
				return err
			}
		}
	}
	for i := range s.Tables {
		if t := &s.Tables[i]; t.PartitionBy != "" && !o.flatten(t.ID) {
			if err := partitionPostData(ctx, conn, t, synced, o); err != nil {
				return err
			}
		}
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		for j := range t.Constraints {
			// A key to a table that is not synced would fail or, worse,
			// block writes at the destination.
			if c := &t.Constraints[j]; c.Kind == proto.ConstraintForeignKey && c.References != nil && synced[c.References.Table] {
				if err := addConstraint(ctx, conn, t.ID, c.Name, deferrableKey(c.Def, o.noReplicaMode())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// addConstraint adds a constraint to table unless it has one of that
// name (ADD CONSTRAINT has no IF NOT EXISTS).
func addConstraint(ctx context.Context, conn *pgx.Conn, table proto.TableID, name, def string) error {
	what := "add constraint " + quoteDDLIdent(name) + " to " + table.String()
	exists, err := hasConstraint(ctx, conn, table, name)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if exists {
		return nil
	}
	return execDDL(ctx, conn, what, "ALTER TABLE "+ddlTableIdent(table)+" ADD CONSTRAINT "+quoteDDLIdent(name)+" "+def)
}

// hasConstraint reports whether table has a constraint named name, on a
// session or in a transaction.
func hasConstraint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table proto.TableID, name string) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2)`,
		ddlTableIdent(table), name).Scan(&exists)
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
	for _, seq := range s.Sequences {
		if seq.DDL == "" || seq.OwnedBy == "" {
			continue
		}
		name := ddlObjectName(seq.Schema, seq.Name)
		if err := execDDL(ctx, conn, "set owner column of sequence "+name,
			"ALTER SEQUENCE "+pgx.Identifier{seq.Schema, seq.Name}.Sanitize()+" OWNED BY "+seq.OwnedBy); err != nil {
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
