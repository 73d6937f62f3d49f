package sinktest

import (
	"slices"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// The schema sync case's tables, in a schema of their own: a parent
// with a secondary index, a child with a foreign key to it, a check and
// defaults, and a keyless table.
var (
	parents = tableSpec{proto.TableID{Schema: "conf_schema", Name: "parents"}, proto.IdentityDefault, []column{
		{name: "id", typ: "bigint", oid: 20, key: true, notNull: true},
		{name: "name", typ: "character varying(20)", oid: 1043, mod: 20 + 4, notNull: true},
		{name: "status", typ: "text", oid: 25, notNull: true, def: "'new'::text"},
	}}
	children = tableSpec{proto.TableID{Schema: "conf_schema", Name: "children"}, proto.IdentityDefault, []column{
		{name: "id", typ: "integer", oid: 23, key: true, notNull: true},
		{name: "parent_id", typ: "bigint", oid: 20},
		{name: "amount", typ: "numeric(12,2)", oid: 1700, mod: 12<<16 | 2 + 4, notNull: true, def: "0"},
		{name: "tags", typ: "text[]", oid: 1009},
	}}
	notes = tableSpec{proto.TableID{Schema: "conf_schema", Name: "notes"}, proto.IdentityFull, []column{
		{name: "body", typ: "text", oid: 25},
		{name: "at", typ: "date", oid: 1082},
	}}
)

// schemaOf is the schema as capture.ReadSchema reads it.
func schemaOf() *proto.Schema {
	sc := &proto.Schema{Schemas: []string{"conf_schema"}}
	for _, s := range []tableSpec{parents, children, notes} {
		sc.Tables = append(sc.Tables, *s.def())
	}
	sc.Tables[0].Indexes = []proto.IndexDef{{Name: "parents_name", Def: "btree (name)", Columns: []int{2}}}
	sc.Tables[1].Constraints = append(sc.Tables[1].Constraints,
		proto.ConstraintDef{Name: "children_amount_check", Kind: proto.ConstraintCheck, Def: "CHECK ((amount >= (0)::numeric))", Columns: []int{3}, Validated: true},
		proto.ConstraintDef{Name: "children_parent_id_fkey", Kind: proto.ConstraintForeignKey, Def: "FOREIGN KEY (parent_id) REFERENCES conf_schema.parents(id)",
			Columns: []int{2}, Validated: true, References: &proto.Reference{From: []string{"parent_id"}, Table: parents.id, Columns: []string{"id"}}})
	return sc
}

// columnsOf is what Destination.Columns reads of a table of cols.
func columnsOf(cols []column) []string {
	var out []string
	for _, c := range cols {
		line := c.name + " " + c.typ
		if c.notNull {
			line += " not null"
		}
		if c.def != "" {
			line += " default " + c.def
		}
		out = append(out, line)
	}
	return out
}

// Schema sync makes a place for every table before the load (and, where
// the destination keeps them, the tables' columns with their types, NOT
// NULL and defaults); the full sync's chunks and then incremental
// changes land in it; post-data (indexes, foreign keys) follows the
// load; and each step run again, as a retried schema phase does, is
// harmless: it fails on nothing and changes no row.
func schemaSync(t *testing.T, d Destination) {
	ctx := t.Context()
	sc, tables := schemaOf(), []tableSpec{parents, children, notes}
	s := d.Open(t, "schema.task")
	for _, tb := range tables {
		if d.Exists(t, "schema", tb.id) {
			t.Fatalf("%s exists before schema sync: the check below could not fail", tb.id)
		}
	}
	must(t, s.ApplyPreData(ctx, sc))
	must(t, s.ApplyPreData(ctx, sc))
	for _, tb := range tables {
		if !d.Exists(t, "schema", tb.id) {
			t.Fatalf("%s is not there after schema sync's pre-data", tb.id)
		}
		if !d.SchemaColumns {
			continue
		}
		if got, want := d.Columns(t, "schema", tb.id), columnsOf(tb.cols); !slices.Equal(got, want) {
			t.Fatalf("columns of %s:\n\t%q\nwant\n\t%q", tb.id, got, want)
		}
	}

	parents.load(t, d, "schema", proto.EndOf(100), []string{"1", "one", "new"}, []string{"2", "two", "old"})
	children.load(t, d, "schema", proto.EndOf(100), []string{"10", "1", "9.50", "{a,b}"}, []string{"11", "2", "0.00", Null})
	notes.load(t, d, "schema", proto.EndOf(100), []string{"first note", "2024-01-01"}, []string{"second", Null})
	a := d.Open(t, "schema.apply.0")
	_, err := a.Offsets(ctx, "schema")
	must(t, err)
	must(t, a.Apply(ctx, parents.changes("schema", 1, ins(at(200, 0), "3", "three", "new"), upd(at(200, 1), nil, []string{"1", "one+", "done"}))))
	must(t, a.Apply(ctx, children.changes("schema", 1, ins(at(200, 2), "12", "3", "1.25", `{c,"d e"}`), del(at(200, 3), "11", Null, Null, Null))))
	must(t, a.Apply(ctx, notes.changes("schema", 1, ins(at(200, 4), "third", "2024-03-01"),
		upd(at(200, 5), []string{"second", Null}, []string{"second+", "2024-02-02"}))))
	want := map[proto.TableID][]Row{
		parents.id:  {parents.row("1", "one+", "done"), parents.row("2", "two", "old"), parents.row("3", "three", "new")},
		children.id: {children.row("10", "1", "9.50", "{a,b}"), children.row("12", "3", "1.25", `{c,"d e"}`)},
		notes.id:    {notes.row("first note", "2024-01-01"), notes.row("second+", "2024-02-02"), notes.row("third", "2024-03-01")},
	}
	check := func() {
		t.Helper()
		for _, tb := range tables {
			wantTable(t, d, "schema", tb, want[tb.id])
		}
	}
	check()

	s = d.Open(t, "schema.task") // the task's unit, after the loads took it over
	must(t, s.ApplyPostData(ctx, sc))
	must(t, s.ApplyPostData(ctx, sc))
	must(t, s.ApplyPreData(ctx, sc)) // a schema phase retried after the load
	check()
	wantPosition(t, d.Open(t, "schema.apply.0"), "schema", notes.id, at(200, 5))
}
