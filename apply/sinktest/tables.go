package sinktest

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// column is a column of a table the suite writes: what schema sync and
// Create need of it, and what the change stream says of it.
type column struct {
	name string
	typ  string // as format_type prints it
	oid  uint32
	// mod is atttypmod, 0 for none (no column of the suite has a type
	// whose modifier is 0, like time(0)).
	mod     int32
	key     bool
	notNull bool
	def     string // the default, as pg_get_expr prints it
}

// tableSpec is a table the suite writes.
type tableSpec struct {
	id       proto.TableID
	identity byte // replica identity
	cols     []column
}

var (
	idCol = column{name: "id", typ: "integer", oid: 23, key: true, notNull: true}
	vCol  = column{name: "v", typ: "text", oid: 25}
)

// simple is the (id int primary key, v text) table, or the keyless (v
// text) one with replica identity full.
func simple(tb proto.TableID, keyed bool) tableSpec {
	if keyed {
		return tableSpec{tb, proto.IdentityDefault, []column{idCol, vCol}}
	}
	return tableSpec{tb, proto.IdentityFull, []column{vCol}}
}

func (s tableSpec) keys() []string {
	var out []string
	for _, c := range s.cols {
		if c.key {
			out = append(out, c.name)
		}
	}
	return out
}

// def is the table's definition as the source's catalog read gives it
// (capture: the schema read and DDL capture alike); nums are the
// columns' attribute numbers (by default 1, 2, ...: a dropped column
// leaves a gap, a renamed one keeps its number).
func (s tableSpec) def(nums ...int) *proto.TableDef {
	d := &proto.TableDef{ID: s.id, ReplicaIdentity: proto.Char(s.identity), PrimaryKey: s.keys()}
	for i, c := range s.cols {
		num := i + 1
		if i < len(nums) {
			num = nums[i]
		}
		d.Columns = append(d.Columns, proto.ColumnDef{Num: num, Name: c.name, Type: c.typ, TypeOID: c.oid, NotNull: c.notNull, Default: c.def})
	}
	if name, def, ok := s.primaryKey(); ok {
		var keyNums []int
		for _, c := range d.Columns {
			if slices.Contains(d.PrimaryKey, c.Name) {
				keyNums = append(keyNums, c.Num)
			}
		}
		d.Constraints = []proto.ConstraintDef{{Name: name, Kind: proto.ConstraintPrimaryKey, Def: def, Columns: keyNums, Validated: true}}
	}
	return d
}

// primaryKey is the primary key constraint's name (PostgreSQL's default
// name) and definition, as pg_get_constraintdef prints it.
func (s tableSpec) primaryKey() (name, def string, ok bool) {
	keys := s.keys()
	if len(keys) == 0 {
		return "", "", false
	}
	return s.id.Name + "_pkey", "PRIMARY KEY (" + strings.Join(keys, ", ") + ")", true
}

// stream is the table's columns as the change stream describes them.
func (s tableSpec) stream() []proto.Column {
	out := make([]proto.Column, len(s.cols))
	for i, c := range s.cols {
		mod := c.mod
		if mod == 0 {
			mod = -1
		}
		out[i] = proto.Column{Name: c.name, TypeOID: c.oid, TypeMod: mod, Key: c.key}
	}
	return out
}

// changes is one Apply call of a task on the table.
func (s tableSpec) changes(task string, epoch uint64, rows ...proto.Row) *apply.Changes {
	tb := s.id
	return &apply.Changes{Task: task, Epoch: epoch,
		Segments:  []*apply.Segment{{Table: tb, Columns: s.stream(), Identity: s.identity, Rows: rows}},
		Positions: map[string]proto.Position{tb.Key(): rows[len(rows)-1].Pos},
		Tables:    map[string]proto.TableID{tb.Key(): tb},
	}
}

// chunk is chunk i of the table's full sync under plan, in COPY's text
// format.
func (s tableSpec) chunk(task string, plan uint64, i int) apply.ChunkLoad {
	c := apply.ChunkLoad{Task: task, Plan: plan, Table: s.id, Chunk: i, Key: s.keys(), SnapshotLSN: 50, Format: proto.CopyText}
	for _, col := range s.cols {
		c.Columns = append(c.Columns, col.name)
		c.Types = append(c.Types, col.oid)
	}
	return c
}

// load copies rows into the table as a full sync does: the task binds
// the table to a plan, a copy unit loads the rows as one chunk, and the
// task finishes the table at the position the copy corresponds to.
func (s tableSpec) load(t *testing.T, d Destination, task string, finish proto.Position, rows ...[]string) {
	t.Helper()
	ctx := t.Context()
	owner := d.Open(t, task+".task")
	must(t, owner.BeginTable(ctx, task, s.id, 1, false))
	n, err := d.Open(t, task+".copy.0").CopyChunk(ctx, s.chunk(task, 1, 0), copyRows(rows))
	if err != nil || n != int64(len(rows)) {
		t.Fatalf("chunk of %s: %d rows, %v; want %d", s.id, n, err, len(rows))
	}
	must(t, owner.FinishTable(ctx, task, s.id, 1, finish, 1))
}

// copyRows streams rows in COPY's text format, as capture's COPY TO
// writes them: fields separated by tabs, \N for NULL, and backslash
// escapes for backslashes and control characters.
func copyRows(rows [][]string) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		for _, r := range rows {
			fields := make([]string, len(r))
			for i, v := range r {
				fields[i] = copyField(v)
			}
			if _, err := io.WriteString(w, strings.Join(fields, "\t")+"\n"); err != nil {
				return 0, err
			}
		}
		return int64(len(rows)), nil
	}
}

// copyEscapes are the escapes of COPY TO's text format (PostgreSQL's
// CopyAttributeOutText), the backslash first.
var copyEscapes = strings.NewReplacer(`\`, `\\`, "\b", `\b`, "\f", `\f`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\v", `\v`)

func copyField(v string) string {
	if v == Null {
		return `\N`
	}
	return copyEscapes.Replace(v)
}

// Row is a row read back: column name → value in canonical form, Null
// for NULL.
//
// The canonical form of a value is what PostgreSQL's text output prints
// for it (`SELECT col::text` under DateStyle ISO, IntervalStyle
// postgres, bytea_output hex), with the two choices a session would
// otherwise make fixed: timestamptz in UTC ("2024-05-01 10:00:00.5+00")
// and floats in their shortest exact form (extra_float_digits 1, the
// default). A destination that keeps values in another representation
// (Kafka's JSON) turns them back by the mapping it documents: bytea
// written as base64 reads back as "\x00ff", a JSON array as "{1,NULL}".
// So one expected table holds for every destination, and a value
// compares by its meaning, not by the bytes a destination stores.
type Row map[string]string

// wantTable compares what the destination holds of the table with want,
// in any order.
func wantTable(t *testing.T, d Destination, task string, s tableSpec, want []Row) {
	t.Helper()
	render := func(rows []Row) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			var b strings.Builder
			for j, c := range s.cols {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s=%q", c.name, r[c.name])
			}
			out[i] = b.String()
		}
		slices.Sort(out)
		return out
	}
	got, exp := render(d.Read(t, task, s.id, s.stream())), render(want)
	if !slices.Equal(got, exp) {
		t.Fatalf("%s holds\n\t%s\nwant\n\t%s", s.id, strings.Join(got, "\n\t"), strings.Join(exp, "\n\t"))
	}
}

// row pairs the table's columns with values, in order.
func (s tableSpec) row(vals ...string) Row {
	r := Row{}
	for i, c := range s.cols {
		r[c.name] = vals[i]
	}
	return r
}
