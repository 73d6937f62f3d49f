package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// Dialects. Servers of the PostgreSQL family that speak its protocol and
// most of its SQL are written by this package's sink, with a Dialect that
// says what the server does differently: AnalyticDB for PostgreSQL, which
// is Greenplum (adbpg.go), and PolarDB for PostgreSQL, Oracle-compatible
// (polardbo.go). The sink asks its dialect at a few points, each a one-line
// hook in the file that does the work (steps.go, meta.go, cdc.go,
// offset.go, snapshot.go, ddl.go); what a dialect does lives here and in
// its own file. A nil *Dialect is PostgreSQL itself: every method of a nil
// dialect answers as PostgreSQL would, so the hooks cost nothing there.

// dialectKind names a dialect.
type dialectKind uint8

const (
	kindADBPG dialectKind = iota + 1
	kindPolarDBO
)

// Dialect is a PostgreSQL-family server's way of differing from
// PostgreSQL. Make one with ADBPGDialect or PolarDBODialect; nil is
// PostgreSQL.
type Dialect struct {
	kind dialectKind
	// adbpg holds the task's AnalyticDB choices (distribution keys).
	adbpg adbpgSettings
	// srv is what the sink learnt of its server at Open (detect); golden
	// tests set it to render for a server they do not have.
	srv server
}

// server is what a dialect's rendering depends on of the server.
type server struct {
	// version is server_version_num: 904xx for Greenplum 6 (PostgreSQL
	// 9.4), 120xxx for Greenplum 7 / AnalyticDB 7 (PostgreSQL 12). Zero
	// until detected: the oldest server the dialect supports is assumed.
	version int
	// greenplum: the server is Greenplum (rows are placed on segments:
	// DISTRIBUTED BY, gp_segment_id).
	greenplum bool
	// onConflict: the sink may write INSERT ... ON CONFLICT (the server
	// has it and the task does not ask for DELETE + INSERT instead).
	onConflict bool
}

// Known server profiles, for golden files and tests that cannot run the
// server itself.
var (
	// greenplum6 is AnalyticDB for PostgreSQL 6 / Greenplum 6
	// (PostgreSQL 9.4): no ON CONFLICT, no IF NOT EXISTS on indexes and
	// sequences, no identity columns.
	greenplum6 = server{version: 90426, greenplum: true}
	// greenplum7 is AnalyticDB for PostgreSQL 7 / Greenplum 7
	// (PostgreSQL 12), with ON CONFLICT.
	greenplum7 = server{version: 120012, greenplum: true, onConflict: true}
)

// clone is the dialect for one sink: its own copy, whose server Open
// fills in.
func (d *Dialect) clone() *Dialect {
	if d == nil {
		return nil
	}
	c := *d
	return &c
}

// Name is the destination type the dialect writes ("postgres" for nil).
func (d *Dialect) Name() string {
	switch {
	case d == nil:
		return "postgres"
	case d.kind == kindADBPG:
		return "adbpg"
	case d.kind == kindPolarDBO:
		return "polardb-o"
	}
	return "postgres"
}

func (d *Dialect) isADBPG() bool { return d != nil && d.kind == kindADBPG }

func (d *Dialect) isPolarDBO() bool { return d != nil && d.kind == kindPolarDBO }

// detect learns the server's version at Open. Only AnalyticDB needs it:
// what it renders depends on the Greenplum version under it.
func (d *Dialect) detect(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	if !d.isADBPG() {
		return nil
	}
	var version string
	var num int
	if err := q.QueryRow(ctx, `SELECT version(), current_setting('server_version_num')::int`).Scan(&version, &num); err != nil {
		return fmt.Errorf("read the destination's version: %w", err)
	}
	d.srv = detectServer(version, num)
	if d.adbpg.deleteInsert {
		d.srv.onConflict = false
	}
	return nil
}

// detectServer reads version() and server_version_num: Greenplum 6 and
// older (PostgreSQL 9.4 and older) have no INSERT ... ON CONFLICT, which
// came with PostgreSQL 9.5 and Greenplum 7.
func detectServer(version string, num int) server {
	gp := strings.Contains(version, "Greenplum")
	old := num < 90500
	for _, v := range []string{"Greenplum Database 4", "Greenplum Database 5", "Greenplum Database 6"} {
		if strings.Contains(version, v) {
			old = true
		}
	}
	return server{version: num, greenplum: gp, onConflict: !old}
}

// atLeast reports whether the server has a feature of PostgreSQL version
// v (server_version_num); an undetected server is taken for the oldest.
func (s server) atLeast(v int) bool { return s.version >= v }

// upserts reports whether the sink writes INSERT ... ON CONFLICT; without
// it an upsert is a DELETE of the keys and an INSERT in one transaction
// (noconflict.go).
func (d *Dialect) upserts() bool {
	return d == nil || !d.isADBPG() || d.srv.onConflict
}

// overriding is the INSERT clause that writes a GENERATED ALWAYS identity
// column's value: PostgreSQL 10 and later; older servers have no identity
// columns, and no such clause.
func (d *Dialect) overriding() string {
	if d.isADBPG() && !d.srv.atLeast(100000) {
		return ""
	}
	return " OVERRIDING SYSTEM VALUE"
}

// alwaysIdentity is meta's expression for "a GENERATED ALWAYS identity
// column": pg_attribute.attidentity came with PostgreSQL 10.
func (d *Dialect) alwaysIdentity() string {
	if d.isADBPG() && !d.srv.atLeast(100000) {
		return "false"
	}
	return "a.attidentity = 'a'"
}

// binaryCopy reports whether full sync may load binary COPY (the same
// major version at both ends): AnalyticDB carries some types as text,
// and its binary forms are those of another major version.
func (d *Dialect) binaryCopy() bool { return !d.isADBPG() }

// keysAfterLoad reports whether a full sync builds a table's keys after
// its load (deferkeys.go): not on AnalyticDB, whose keys must hold the
// distribution key and are bound to it.
func (d *Dialect) keysAfterLoad() bool { return !d.isADBPG() }

// castType is the type name the apply casts a destination column's
// values to (format_type's text at the destination).
func (d *Dialect) castType(typ string) string {
	if d.isPolarDBO() {
		return polarDBOCastType(typ)
	}
	return typ
}

// schema is the source's schema as the dialect's server creates it
// (types mapped, what the server cannot hold left out); the schema
// itself for PostgreSQL. It fails naming the field to change when the
// server cannot take the schema as the task configures it.
func (d *Dialect) schema(sc *proto.Schema) (*proto.Schema, error) {
	switch {
	case d.isADBPG():
		return d.adbpgSchema(sc)
	case d.isPolarDBO():
		return polarDBOSchema(sc), nil
	}
	return sc, nil
}

// ddlEvent is a DDL event as the dialect's server takes it: both shapes
// adapted as schema sync adapts tables, so that their difference is what
// the server can do.
func (d *Dialect) ddlEvent(ev *proto.DDLEvent) *proto.DDLEvent {
	if d == nil || ev == nil {
		return ev
	}
	out := *ev
	if ev.Old != nil {
		out.Old = d.table(ev.Old)
	}
	if ev.New != nil {
		out.New = d.table(ev.New)
	}
	return &out
}

// table adapts one table definition (a copy; the event's is shared).
func (d *Dialect) table(t *proto.TableDef) *proto.TableDef {
	switch {
	case d.isADBPG():
		return d.adbpgTable(t)
	case d.isPolarDBO():
		return polarDBOTable(t)
	}
	return t
}

// tableSuffix is what follows the column list of t's CREATE TABLE:
// AnalyticDB's storage and distribution clauses.
func (d *Dialect) tableSuffix(t *proto.TableDef) string {
	if d.isADBPG() {
		return d.adbpgTableSuffix(t)
	}
	return ""
}

// statement is a statement Sluice renders, as the server takes it: the
// IF NOT EXISTS forms Greenplum 6 lacks become guarded blocks.
func (d *Dialect) statement(sql string) string {
	if d.isADBPG() {
		return d.gp6Statement(sql)
	}
	return sql
}

// ownTables is the DDL of Sluice's own tables (sluice.apply_offsets and
// the others) as the server takes it: at Greenplum, heap tables, as the
// server's default storage may be append-optimized, which has no primary
// keys and no single-row updates. Each CREATE TABLE of ddl ends its
// column list with a line of its own: "\n)".
func (d *Dialect) ownTables(ddl string) string {
	if !d.isADBPG() || !d.srv.greenplum {
		return ddl
	}
	storage := " WITH (appendonly=false)"
	if d.srv.atLeast(120000) {
		storage = " USING heap"
	}
	return strings.ReplaceAll(ddl, "\n)", "\n)"+storage)
}

// advanceSequences moves sequences forward (AdvanceSequences), with the
// dialect's statement (advanceSequencesSQL).
func (d *Dialect) advanceSequences(ctx context.Context, conn *pgx.Conn, seqs []proto.SequenceUpdate) ([]proto.TableID, error) {
	return advanceSequencesWith(ctx, conn, seqs, d.advanceSequencesSQL)
}

// advanceSequencesSQL is the statement that moves a batch of sequences
// forward at the dialect's server. Before PostgreSQL 10 (Greenplum 6) a
// sequence's increment is a column of the sequence itself, there being
// no pg_sequence catalog.
func (d *Dialect) advanceSequencesSQL(batch []proto.SequenceUpdate) string {
	if !d.isADBPG() || d.srv.atLeast(100000) {
		return advanceSequencesSQL(batch)
	}
	return gp6AdvanceSequencesSQL(batch)
}

// gp6AdvanceSequencesSQL is advanceSequencesSQL with each sequence's
// increment read from the sequence (increment_by).
func gp6AdvanceSequencesSQL(batch []proto.SequenceUpdate) string {
	parts := make([]string, len(batch))
	for i, s := range batch {
		parts[i] = fmt.Sprintf("SELECT %d::int8, last_value, is_called, increment_by FROM %s", i+1, tableName(s.Name))
	}
	const next = `(%[1]s.last_value::numeric + CASE WHEN %[1]s.is_called THEN cur.inc ELSE 0 END)`
	want, have := fmt.Sprintf(next, "w"), fmt.Sprintf(next, "cur")
	return `WITH cur(i, last_value, is_called, inc) AS (` + strings.Join(parts, " UNION ALL ") + `)
		SELECT w.i, pg_catalog.setval(w.name::pg_catalog.regclass, w.last_value, w.is_called)
		FROM unnest($1::text[], $2::int8[], $3::bool[]) WITH ORDINALITY AS w(name, last_value, is_called, i)
		JOIN cur ON cur.i = w.i
		WHERE CASE WHEN cur.inc > 0 THEN ` + want + ` > ` + have + ` ELSE ` + want + ` < ` + have + ` END`
}

// dialect is the schema options' dialect (nil: PostgreSQL).
func (o *SchemaOptions) dialect() *Dialect {
	if o == nil {
		return nil
	}
	return o.Dialect
}

// dialectSteps finishes a phase's statements for the dialect's server:
// each statement as the server takes it, the CREATE TABLE of each of s's
// tables with its suffix, and what completes a table after it (the marks
// of columns the destination computes, adbpg.go).
func (o *SchemaOptions) dialectSteps(s *proto.Schema, steps []ddlStep) []ddlStep {
	d := o.dialect()
	if d == nil {
		return steps
	}
	tables := make(map[string]*proto.TableDef, len(s.Tables))
	for i := range s.Tables {
		tables[createTableSQL(s.Tables[i].ID, &s.Tables[i])] = &s.Tables[i]
	}
	out := make([]ddlStep, 0, len(steps))
	for _, st := range steps {
		t := tables[st.SQL]
		if t != nil {
			st.SQL += d.tableSuffix(t)
		}
		st.SQL = d.statement(st.SQL)
		out = append(out, st)
		if t != nil {
			out = append(out, d.afterTable(t)...)
		}
	}
	return out
}

// afterTable are the statements that complete a table the dialect
// created.
func (d *Dialect) afterTable(t *proto.TableDef) []ddlStep {
	if d.isADBPG() {
		return d.generatedMarks(t)
	}
	return nil
}

// cloneTable copies a table's definition deeply enough to change its
// columns, constraints and indexes.
func cloneTable(t *proto.TableDef) *proto.TableDef {
	c := *t
	c.Columns = append([]proto.ColumnDef(nil), t.Columns...)
	c.Constraints = append([]proto.ConstraintDef(nil), t.Constraints...)
	c.Indexes = append([]proto.IndexDef(nil), t.Indexes...)
	c.Partitions = append([]proto.PartitionDef(nil), t.Partitions...)
	return &c
}

// baseTypeName is a format_type text's bare type name: no schema, no
// modifier, no array brackets ("public.geometry(Point,4326)[]" is
// "geometry"), and how many array dimensions it had.
func baseTypeName(typ string) (name string, dims int) {
	for strings.HasSuffix(typ, "[]") {
		typ = strings.TrimSuffix(typ, "[]")
		dims++
	}
	if i := strings.IndexByte(typ, '('); i >= 0 {
		typ = typ[:i]
	}
	if i := strings.LastIndexByte(typ, '.'); i >= 0 && !strings.HasSuffix(typ, `"`) {
		typ = typ[i+1:]
	} else if strings.HasSuffix(typ, `"`) {
		if j := strings.LastIndex(typ, `"."`); j >= 0 {
			typ = typ[j+2:]
		}
	}
	return strings.Trim(typ, `"`), dims
}

// quoteLiteral is a dollar-quoted string literal of s, whatever the
// server's standard_conforming_strings.
func quoteLiteral(s string) string {
	tag := "$sluice$"
	for i := 0; strings.Contains(s, tag); i++ {
		tag = fmt.Sprintf("$sluice%d$", i)
	}
	return tag + s + tag
}
