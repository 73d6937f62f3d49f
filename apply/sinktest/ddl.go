package sinktest

import (
	"slices"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// ddl applies ev as the apply unit a, which must be a DDLApplier.
func ddl(t *testing.T, a Sink, task string, ev *proto.DDLEvent) {
	t.Helper()
	applier, ok := a.(apply.DDLApplier)
	if !ok {
		t.Fatalf("the destination claims DDL, its sink %T is no apply.DDLApplier", a)
	}
	if err := applier.ApplyDDL(t.Context(), task, 1, ev, nil, nil); err != nil {
		t.Fatalf("%s: %v", ev.Query, err)
	}
}

// wantColumns compares the columns a reader learns of the table with s's.
func wantColumns(t *testing.T, d Destination, task string, tb proto.TableID, cols []column) {
	t.Helper()
	want := columnsOf(cols)
	if got := d.Columns(t, task, tb); !slices.Equal(got, want) {
		t.Fatalf("columns of %s:\n\t%q\nwant\n\t%q", tb, got, want)
	}
}

// Adding, renaming and dropping a column change the table's shape where
// readers see it, and changes in the new shape follow; each event
// stores its position, and a replayed event (at or below the position)
// changes nothing: no column, no row, no position.
func ddlColumns(t *testing.T, d Destination) {
	ctx := t.Context()
	v0 := simple(table("conf_ddl"), true) // id, v
	d.Create(t, v0.def())
	a := d.Open(t, "ddl.apply.0")
	_, err := a.Offsets(ctx, "ddl")
	must(t, err)
	must(t, a.Apply(ctx, v0.changes("ddl", 1, ins(at(10, 0), "1", "a"), ins(at(10, 1), "2", "b"))))

	n := column{name: "n", typ: "integer", oid: 23}
	v1 := tableSpec{v0.id, v0.identity, []column{idCol, vCol, n}}
	add := &proto.DDLEvent{Pos: at(20, 0), Tag: "ALTER TABLE", Query: "ALTER TABLE conf_ddl ADD COLUMN n integer", Old: v0.def(), New: v1.def()}
	ddl(t, a, "ddl", add)
	ddl(t, a, "ddl", add) // retried at once
	wantPosition(t, a, "ddl", v1.id, add.Pos)
	wantColumns(t, d, "ddl", v1.id, v1.cols)
	must(t, a.Apply(ctx, v1.changes("ddl", 1, ins(at(21, 0), "3", "c", "30"), upd(at(21, 1), nil, []string{"1", "a", "10"}))))
	rows := []Row{v1.row("1", "a", "10"), v1.row("2", "b", Null), v1.row("3", "c", "30")}
	wantTable(t, d, "ddl", v1, rows)

	// Replayed after changes above it: nothing moves.
	ddl(t, a, "ddl", add)
	wantPosition(t, a, "ddl", v1.id, at(21, 1))
	wantColumns(t, d, "ddl", v1.id, v1.cols)
	wantTable(t, d, "ddl", v1, rows)

	label := column{name: "label", typ: "text", oid: 25}
	v2 := tableSpec{v0.id, v0.identity, []column{idCol, label, n}}
	rename := &proto.DDLEvent{Pos: at(30, 0), Tag: "ALTER TABLE", Query: "ALTER TABLE conf_ddl RENAME COLUMN v TO label", Old: v1.def(), New: v2.def()}
	ddl(t, a, "ddl", rename)
	wantPosition(t, a, "ddl", v2.id, rename.Pos)
	wantColumns(t, d, "ddl", v2.id, v2.cols)
	// Every row changes in the new shape: a destination of messages
	// (Kafka) holds each row as its last message wrote it, so rows left
	// alone would still show the old name there.
	must(t, a.Apply(ctx, v2.changes("ddl", 1, upd(at(31, 0), nil, []string{"1", "a+", "10"}),
		upd(at(31, 1), nil, []string{"2", "b", "20"}), upd(at(31, 2), nil, []string{"3", "c", "30"}))))
	wantTable(t, d, "ddl", v2, []Row{v2.row("1", "a+", "10"), v2.row("2", "b", "20"), v2.row("3", "c", "30")})

	v3 := tableSpec{v0.id, v0.identity, []column{idCol, label}}
	drop := &proto.DDLEvent{Pos: at(40, 0), Tag: "ALTER TABLE", Query: "ALTER TABLE conf_ddl DROP COLUMN n", Old: v2.def(), New: v3.def()}
	ddl(t, a, "ddl", drop)
	wantPosition(t, a, "ddl", v3.id, drop.Pos)
	wantColumns(t, d, "ddl", v3.id, v3.cols)
	must(t, a.Apply(ctx, v3.changes("ddl", 1, ins(at(41, 0), "4", "d"))))
	wantTable(t, d, "ddl", v3, []Row{v3.row("1", "a+"), v3.row("2", "b"), v3.row("3", "c"), v3.row("4", "d")})
	wantPosition(t, d.Open(t, "ddl.apply.0"), "ddl", v3.id, at(41, 0))
}

// A table created at the source is created where readers see it, once
// however often its event comes, and takes changes at once.
func ddlCreateTable(t *testing.T, d Destination) {
	ctx := t.Context()
	s := tableSpec{table("conf_ddl_created"), proto.IdentityDefault, []column{idCol, {name: "w", typ: "text", oid: 25}}}
	a := d.Open(t, "ddlnew.apply.0")
	_, err := a.Offsets(ctx, "ddlnew")
	must(t, err)
	create := &proto.DDLEvent{Pos: at(10, 0), Tag: "CREATE TABLE", Query: "CREATE TABLE conf_ddl_created (id integer PRIMARY KEY, w text)", New: s.def()}
	ddl(t, a, "ddlnew", create)
	ddl(t, a, "ddlnew", create)
	wantPosition(t, a, "ddlnew", s.id, create.Pos)
	wantColumns(t, d, "ddlnew", s.id, s.cols)
	must(t, a.Apply(ctx, s.changes("ddlnew", 1, ins(at(11, 0), "1", "x"), ins(at(11, 1), "2", "y"))))
	wantTable(t, d, "ddlnew", s, []Row{s.row("1", "x"), s.row("2", "y")})
	wantPosition(t, d.Open(t, "ddlnew.apply.0"), "ddlnew", s.id, at(11, 1))
}

// A renamed table keeps its rows and columns under its new name, takes
// changes there, and is gone under the old one; the event's position is
// stored under both names, so batches under either skip it.
func ddlRenameTable(t *testing.T, d Destination) {
	ctx := t.Context()
	before, after := simple(table("conf_ddl_before"), true), simple(table("conf_ddl_after"), true)
	d.Create(t, before.def())
	a := d.Open(t, "ddlmove.apply.0")
	_, err := a.Offsets(ctx, "ddlmove")
	must(t, err)
	must(t, a.Apply(ctx, before.changes("ddlmove", 1, ins(at(10, 0), "1", "x"))))

	renamed := before.def()
	renamed.ID.Name = after.id.Name
	rename := &proto.DDLEvent{Pos: at(20, 0), Tag: "ALTER TABLE", Query: "ALTER TABLE conf_ddl_before RENAME TO conf_ddl_after", Old: before.def(), New: renamed}
	ddl(t, a, "ddlmove", rename)
	ddl(t, a, "ddlmove", rename)
	wantPosition(t, a, "ddlmove", before.id, rename.Pos)
	wantPosition(t, a, "ddlmove", after.id, rename.Pos)
	wantColumns(t, d, "ddlmove", after.id, after.cols)
	if got := d.Columns(t, "ddlmove", before.id); got != nil {
		t.Fatalf("%s still has columns %q after its rename", before.id, got)
	}
	must(t, a.Apply(ctx, after.changes("ddlmove", 1, ins(at(21, 0), "2", "y"))))
	wantRows(t, d, "ddlmove", after.id, true, "1=x", "2=y")
	wantRows(t, d, "ddlmove", before.id, true)
	wantPosition(t, d.Open(t, "ddlmove.apply.0"), "ddlmove", after.id, at(21, 0))
}
