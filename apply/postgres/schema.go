package postgres

import (
	"context"
	"fmt"
	"strings"

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
func ApplyPreData(ctx context.Context, conn *pgx.Conn, s *proto.Schema) error {
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
	for i := range s.Tables {
		if err := createTable(ctx, conn, &s.Tables[i]); err != nil {
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

func createTable(ctx context.Context, conn *pgx.Conn, t *proto.TableDef) error {
	name := "create table " + t.ID.String()
	if err := execDDL(ctx, conn, name, createTableSQL(t)); err != nil {
		return err
	}
	// Repeating REPLICA IDENTITY is harmless; USING INDEX waits for the
	// index, in the post-data statements.
	var mode string
	switch t.ReplicaIdentity {
	case 'f':
		mode = "FULL"
	case 'n':
		mode = "NOTHING"
	default:
		return nil
	}
	return execDDL(ctx, conn, "set replica identity of "+t.ID.String(),
		"ALTER TABLE "+ddlTableIdent(t.ID)+" REPLICA IDENTITY "+mode)
}

// createTableSQL is the CREATE TABLE IF NOT EXISTS statement of a table:
// its columns and the constraints that go with it.
func createTableSQL(t *proto.TableDef) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(ddlTableIdent(t.ID))
	b.WriteString(" (")
	parts := make([]string, 0, len(t.Columns)+len(t.Constraints))
	for _, c := range t.Columns {
		parts = append(parts, columnSQL(c))
	}
	parts = append(parts, t.Constraints...)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n\t")
		b.WriteString(p)
	}
	b.WriteString("\n)")
	return b.String()
}

func columnSQL(c proto.ColumnDef) string {
	s := quoteDDLIdent(c.Name) + " " + c.Type
	if c.Collation != "" {
		s += " COLLATE " + c.Collation
	}
	switch {
	case c.Generated != "":
		s += " GENERATED ALWAYS AS (" + c.Generated + ") STORED"
	case c.Identity != 0:
		s += " GENERATED " + identityKind(c.Identity) + " AS IDENTITY"
		if c.IdentityOptions != "" {
			s += " (" + c.IdentityOptions + ")"
		}
	case c.Default != "":
		s += " DEFAULT " + c.Default
	}
	if c.NotNull {
		s += " NOT NULL"
	}
	return s
}

func identityKind(b byte) string {
	if b == 'a' {
		return "ALWAYS"
	}
	return "BY DEFAULT"
}

// ApplyPostData creates secondary indexes, exclusion constraints and
// foreign keys (after the full load). Idempotent.
func ApplyPostData(ctx context.Context, conn *pgx.Conn, s *proto.Schema) error {
	// Every table's indexes before any foreign key: a key may reference a
	// unique index that is not a constraint.
	for i := range s.Tables {
		t := &s.Tables[i]
		for _, stmt := range t.Indexes {
			if err := postDataStatement(ctx, conn, t.ID, stmt); err != nil {
				return err
			}
		}
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		for _, stmt := range t.ForeignKeys {
			if err := postDataStatement(ctx, conn, t.ID, stmt); err != nil {
				return err
			}
		}
	}
	return nil
}

// postDataStatement runs one post-data statement. CREATE INDEX comes with
// IF NOT EXISTS and REPLICA IDENTITY can be repeated; ADD CONSTRAINT has
// no IF NOT EXISTS, so it is skipped when the table has a constraint of
// that name.
func postDataStatement(ctx context.Context, conn *pgx.Conn, table proto.TableID, stmt string) error {
	constraint, ok := addedConstraint(table, stmt)
	if !ok {
		return execDDL(ctx, conn, "post-data statement on "+table.String(), stmt)
	}
	what := "add constraint " + quoteDDLIdent(constraint) + " to " + table.String()
	var exists bool
	err := conn.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
		               WHERE conrelid = $1::text::regclass AND conname = $2)`, ddlTableIdent(table), constraint).Scan(&exists)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if exists {
		return nil
	}
	return execDDL(ctx, conn, what, stmt)
}

// addedConstraint returns the constraint name of a statement
// `ALTER TABLE <table> ADD CONSTRAINT "name" ...`, the form capture builds
// with the same quoting.
func addedConstraint(table proto.TableID, stmt string) (string, bool) {
	rest, ok := strings.CutPrefix(stmt, "ALTER TABLE "+ddlTableIdent(table)+" ADD CONSTRAINT ")
	if !ok {
		return "", false
	}
	return parseLeadingQuotedIdent(rest)
}

// parseQuotedIdent reads a double-quoted identifier at the start of s.
func parseLeadingQuotedIdent(s string) (string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		return b.String(), true
	}
	return "", false
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
