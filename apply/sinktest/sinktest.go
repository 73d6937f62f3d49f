// Package sinktest is the conformance suite of the sink contract in
// package apply: every destination's sink runs it (apply/postgres,
// apply/kafka) and supplies a read-back of what the destination holds,
// so the same checks of content prove, for all of them, invariants 2
// and 3 (each change once, one owner per unit), the full sync's chunk
// rules, invariant 6 (values of every type family keep their meaning,
// unchanged TOAST values are never lost) and what each destination's
// Capabilities claim: schema sync, DDL sync, sequences and heartbeats.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Sink is what the suite drives: a task's sink, as every destination
// opens it (apply.TaskSink), with the optional interfaces its
// Capabilities claim (DDLApplier, HeartbeatWriter).
type Sink interface {
	apply.TaskSink
}

// Destination is one kind of destination under test.
type Destination struct {
	// Capabilities are what the destination claims (its
	// apply.Destination's): the cases of each claimed capability run,
	// and its sink must implement the interface the capability needs.
	Capabilities apply.Capabilities
	// Open opens a sink writing as unit ("<task>.<kind>.<n>"). Opening a
	// unit again is a new owner of it (after a failover): where the
	// destination fences by unit (Kafka's transactional ids), the older
	// one is fenced.
	Open func(t *testing.T, unit string) Sink
	// Create makes a table at the destination as a user (or schema sync)
	// would have before the task writes it, if the destination needs
	// one (Kafka creates topics on the first write).
	Create func(t *testing.T, def *proto.TableDef)
	// Read reads back what the destination holds of a table written by
	// task, as a reader of the destination sees it: one Row per row, in
	// any order, holding the value of each of cols (the table's columns
	// as the suite last wrote them, with their types) in canonical form
	// (see Row). A table the destination does not have reads as no rows.
	Read func(t *testing.T, task string, table proto.TableID, cols []proto.Column) []Row
	// Unavailable is what Read shows for a column that an update marked
	// unchanged-TOAST (proto.KindToast) and that the destination could not
	// fill from the change's old row: "" for a destination that keeps the
	// value it holds (PostgreSQL), or the marker a destination that writes
	// whole rows documents (Kafka's Debezium placeholder).
	Unavailable string
	// Exists reports whether the destination has a place for task's table
	// (PostgreSQL: the table; Kafka: the topic its messages go to). Needed
	// with SchemaSync.
	Exists func(t *testing.T, task string, table proto.TableID) bool
	// Columns reads back a table's columns as a reader of the destination
	// learns them, in order, each "name type", then " not null" and
	// " default <expression>" where they apply (type and expression as
	// format_type and pg_get_expr print them); nil for a table the
	// destination describes nowhere. Needed with SchemaSync or DDL.
	Columns func(t *testing.T, task string, table proto.TableID) []string
	// SchemaColumns: schema sync creates each table with its columns
	// (PostgreSQL), so SchemaSync checks them with Columns. False for a
	// destination that creates only a place for a table's messages
	// (Kafka's topics): readers learn its columns from DDL sync's
	// schema-change messages.
	SchemaColumns bool
	// OpenHeartbeats opens a sink of unit whose task writes heartbeats at
	// most once per every, by the clock now (the suite moves it); writer
	// says whether the unit is the task's heartbeat writer. Needed with
	// Heartbeats.
	OpenHeartbeats func(t *testing.T, unit string, writer bool, every time.Duration, now func() time.Time) Sink
	// Heartbeats reads back the heartbeats the destination holds for task
	// where its readers see them, in the order written: their positions.
	Heartbeats func(t *testing.T, task string) []proto.Position
	// KnownGaps names cases the destination fails for a known reason
	// (case name → the reason): they are skipped, and say so.
	KnownGaps map[string]string
}

// Run runs the suite. Every case has tables and a task of its own, so
// one destination serves them all.
func Run(t *testing.T, d Destination) {
	cases := []struct {
		name string
		// needs is the capability the case proves ("" for the base
		// contract); claimed says whether the destination claims it.
		needs   string
		claimed bool
		run     func(*testing.T, Destination)
	}{
		{"ChangesOnceAndPositions", "", true, changesOnce},
		{"ReplaySkipped", "", true, replaySkipped},
		{"KeylessUpdates", "", true, keylessUpdates},
		{"EpochFencing", "", true, epochFencing},
		{"ChunksOnce", "", true, chunksOnce},
		{"PlanFencing", "", true, planFencing},
		{"Reset", "", true, reset},
		{"TypeFamilies", "", true, typeFamilies},
		{"UnchangedToast", "", true, unchangedToast},
		{"SchemaSync", "SchemaSync", d.Capabilities.SchemaSync, schemaSync},
		{"DDLColumns", "DDL", d.Capabilities.DDL, ddlColumns},
		{"DDLCreateTable", "DDL", d.Capabilities.DDL, ddlCreateTable},
		{"DDLRenameTable", "DDL", d.Capabilities.DDL, ddlRenameTable},
		{"Sequences", "Sequences", d.Capabilities.Sequences, sequences},
		{"Heartbeats", "Heartbeats", d.Capabilities.Heartbeats, heartbeats},
		{"HeartbeatReplay", "Heartbeats", d.Capabilities.Heartbeats, heartbeatReplay},
		{"HeartbeatReplayNewOwner", "Heartbeats", d.Capabilities.Heartbeats, heartbeatReplayNewOwner},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.claimed {
				t.Skipf("the destination does not claim %s", c.needs)
			}
			if why, ok := d.KnownGaps[c.name]; ok {
				t.Skip("known gap: " + why)
			}
			if missing := d.missing(c.needs); missing != "" {
				t.Fatalf("the destination claims %s but has no %s read-back", c.needs, missing)
			}
			c.run(t, d)
		})
	}
}

// missing names a read-back the cases of capability need that d lacks.
func (d Destination) missing(capability string) string {
	needed := map[string]bool{"Read": d.Read == nil}
	switch capability {
	case "SchemaSync":
		needed["Exists"], needed["Columns"] = d.Exists == nil, d.SchemaColumns && d.Columns == nil
	case "DDL":
		needed["Columns"] = d.Columns == nil
	case "Heartbeats":
		needed["OpenHeartbeats"], needed["Heartbeats"] = d.OpenHeartbeats == nil, d.Heartbeats == nil
	}
	for _, name := range slices.Sorted(maps.Keys(needed)) {
		if needed[name] {
			return name
		}
	}
	return ""
}

func table(name string) proto.TableID { return proto.TableID{Schema: "public", Name: name} }

func at(lsn uint64, idx uint32) proto.Position { return proto.Position{LSN: proto.LSN(lsn), Idx: idx} }

// Null is a NULL value: in the rows the suite writes and in what Read
// returns.
const Null = "<nil>"

// unchanged marks an unchanged TOAST value in the rows the suite writes.
const unchanged = "<unchanged toast>"

// tuple is a row image of values in text form, Null and unchanged
// marking the other kinds.
func tuple(vals ...string) proto.Tuple {
	var tp proto.Tuple
	for _, v := range vals {
		switch v {
		case Null:
			tp.Kinds = append(tp.Kinds, proto.KindNull)
			tp.Values = append(tp.Values, nil)
		case unchanged:
			tp.Kinds = append(tp.Kinds, proto.KindToast)
			tp.Values = append(tp.Values, nil)
		default:
			tp.Kinds = append(tp.Kinds, proto.KindText)
			tp.Values = append(tp.Values, []byte(v))
		}
	}
	return tp
}

// Row builders: values in the table's column order.
func ins(p proto.Position, vals ...string) proto.Row {
	return proto.Row{Op: proto.OpInsert, Pos: p, New: tuple(vals...)}
}

func upd(p proto.Position, old, cur []string) proto.Row {
	r := proto.Row{Op: proto.OpUpdate, Pos: p, New: tuple(cur...)}
	if old != nil {
		r.Old = tuple(old...)
	}
	return r
}

func del(p proto.Position, old ...string) proto.Row {
	return proto.Row{Op: proto.OpDelete, Pos: p, Old: tuple(old...)}
}

// batch is one Apply call of a task on the (id, v) table or, keyless,
// the (v) one.
func batch(task string, epoch uint64, tb proto.TableID, keyed bool, rows ...proto.Row) *apply.Changes {
	return simple(tb, keyed).changes(task, epoch, rows...)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fenced(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("%s: want ErrFenced, got %v", what, err)
	}
}

// wantRows compares what the destination holds of the (id, v) or (v)
// table with want: "id=v" or "v" per row, Null for NULL, duplicates kept.
func wantRows(t *testing.T, d Destination, task string, tb proto.TableID, keyed bool, want ...string) {
	t.Helper()
	var got []string
	for _, r := range d.Read(t, task, tb, simple(tb, keyed).stream()) {
		if keyed {
			got = append(got, r["id"]+"="+r["v"])
		} else {
			got = append(got, r["v"])
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", tb, got, want)
	}
}

func wantPosition(t *testing.T, s Sink, task string, tb proto.TableID, want proto.Position) {
	t.Helper()
	offs, err := s.Offsets(context.Background(), task)
	must(t, err)
	if got := offs[tb.Key()]; got != want {
		t.Fatalf("position of %s: %v, want %v (all: %v)", tb, got, want, offs)
	}
}

// Inserts, an update and a delete land once each; the last position is
// what a new owner of the unit reads back.
func changesOnce(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_changes")
	d.Create(t, simple(tb, true).def())
	s := d.Open(t, "changes.apply.0")
	offs, err := s.Offsets(ctx, "changes")
	must(t, err)
	if len(offs) != 0 {
		t.Fatalf("positions of a new task: %v", offs)
	}
	must(t, s.Apply(ctx, batch("changes", 1, tb, true, ins(at(10, 0), "1", "a"), ins(at(10, 1), "2", "b"), ins(at(10, 2), "3", Null))))
	must(t, s.Apply(ctx, batch("changes", 1, tb, true, upd(at(20, 0), nil, []string{"1", "a+"}), del(at(20, 1), "2", Null),
		upd(at(21, 0), nil, []string{"3", "c"}))))
	wantRows(t, d, "changes", tb, true, "1=a+", "3=c")
	wantPosition(t, d.Open(t, "changes.apply.0"), "changes", tb, at(21, 0))
}

// A batch that repeats changes at or below the stored position (a replay
// after a crash) writes only what is new: on a keyless table a change
// written twice would show as a doubled row.
func replaySkipped(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_replay")
	d.Create(t, simple(tb, false).def())
	s := d.Open(t, "replay.apply.0")
	_, err := s.Offsets(ctx, "replay")
	must(t, err)
	must(t, s.Apply(ctx, batch("replay", 1, tb, false, ins(at(10, 0), "x"), ins(at(10, 1), "y"))))
	again := d.Open(t, "replay.apply.0")
	wantPosition(t, again, "replay", tb, at(10, 1))
	must(t, again.Apply(ctx, batch("replay", 2, tb, false, ins(at(10, 0), "x"), ins(at(10, 1), "y"), ins(at(11, 0), "z"))))
	wantRows(t, d, "replay", tb, false, "x", "y", "z")
	wantPosition(t, again, "replay", tb, at(11, 0))
}

// Rows of a keyless table are told apart by all their values: an update
// and a delete change the row they name.
func keylessUpdates(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_keyless")
	d.Create(t, simple(tb, false).def())
	s := d.Open(t, "keyless.apply.0")
	_, err := s.Offsets(ctx, "keyless")
	must(t, err)
	must(t, s.Apply(ctx, batch("keyless", 1, tb, false, ins(at(10, 0), "x"), ins(at(10, 1), "y"), ins(at(11, 0), "z"))))
	must(t, s.Apply(ctx, batch("keyless", 1, tb, false, upd(at(12, 0), []string{"y"}, []string{"y+"}), del(at(12, 1), "x"))))
	wantRows(t, d, "keyless", tb, false, "y+", "z")
}

// A unit's new owner (higher epoch) takes over: the old owner's writes
// are refused with ErrFenced and leave nothing, as are a lower epoch's
// from any unit, for changes and for finishing a table's copy.
func epochFencing(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_fencing")
	d.Create(t, simple(tb, true).def())
	old := d.Open(t, "fencing.apply.0")
	_, err := old.Offsets(ctx, "fencing")
	must(t, err)
	must(t, old.Apply(ctx, batch("fencing", 5, tb, true, ins(at(10, 0), "1", "old owner"))))

	cur := d.Open(t, "fencing.apply.0")
	wantPosition(t, cur, "fencing", tb, at(10, 0))
	must(t, cur.Apply(ctx, batch("fencing", 7, tb, true, ins(at(11, 0), "2", "new owner"))))
	fenced(t, "the old owner's write after the new one's", old.Apply(ctx, batch("fencing", 5, tb, true, ins(at(12, 0), "3", "zombie"))))

	stale := d.Open(t, "fencing.apply.other")
	_, err = stale.Offsets(ctx, "fencing")
	must(t, err)
	fenced(t, "a write with an older epoch", stale.Apply(ctx, batch("fencing", 6, tb, true, ins(at(13, 0), "4", "stale epoch"))))
	must(t, cur.BeginTable(ctx, "fencing", tb, 3, true))
	fenced(t, "finishing a table with an older epoch", stale.FinishTable(ctx, "fencing", tb, 3, proto.EndOf(100), 6))
	wantRows(t, d, "fencing", tb, true, "1=old owner", "2=new owner")
	wantPosition(t, d.Open(t, "fencing.apply.0"), "fencing", tb, at(11, 0))
}

// chunk is chunk i of the keyless (v) table's full sync.
func chunk(task string, tb proto.TableID, plan uint64, i int) apply.ChunkLoad {
	return simple(tb, false).chunk(task, plan, i)
}

// rows streams n rows "<prefix> <i>" in COPY text form.
func rows(prefix string, n int) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		for i := range n {
			if _, err := fmt.Fprintf(w, "%s %d\n", prefix, i); err != nil {
				return 0, err
			}
		}
		return int64(n), nil
	}
}

func named(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func notRead(io.Writer) (int64, error) { return 0, errors.New("read a chunk that is already loaded") }

// A chunk loads once however often it is loaded, and by whichever owner
// of the copy unit that holds it: a retry finds it and reads nothing;
// when a new owner takes the unit over while the old one is inside a
// load, the new owner's load stands and the old one is fenced. The table
// has no key, so a chunk loaded twice would show as doubled rows.
func chunksOnce(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_chunks")
	d.Create(t, simple(tb, false).def())
	capture, old := d.Open(t, "chunks.task"), d.Open(t, "chunks.copy.0")
	_, err := old.CopyChunk(ctx, chunk("chunks", tb, 10, 0), rows("early", 3))
	fenced(t, "a chunk of a table bound to no plan", err)
	must(t, capture.BeginTable(ctx, "chunks", tb, 10, false))
	if n, err := old.CopyChunk(ctx, chunk("chunks", tb, 10, 0), rows("zero", 3)); err != nil || n != 3 {
		t.Fatalf("chunk 0: %d rows, %v", n, err)
	}
	if n, err := old.CopyChunk(ctx, chunk("chunks", tb, 10, 0), notRead); err != nil || n != 3 {
		t.Fatalf("chunk 0 again: %d rows, %v", n, err)
	}

	// The old owner is inside its load of chunk 1 when the new one takes
	// the unit over, finds chunk 0 loaded and loads chunk 1 whole.
	inside, release := make(chan struct{}), make(chan struct{})
	slow := make(chan error, 1)
	go func() {
		_, err := old.CopyChunk(ctx, chunk("chunks", tb, 10, 1), func(w io.Writer) (int64, error) {
			if _, err := io.WriteString(w, "slow 0\n"); err != nil {
				return 0, err
			}
			close(inside)
			<-release
			return 1, nil
		})
		slow <- err
	}()
	select {
	case <-inside:
	case err := <-slow:
		t.Fatalf("the old owner's load of chunk 1 ended before reading: %v", err)
	}
	cur := d.Open(t, "chunks.copy.0")
	if n, err := cur.CopyChunk(ctx, chunk("chunks", tb, 10, 0), notRead); err != nil || n != 3 {
		t.Fatalf("chunk 0 by the new owner: %d rows, %v", n, err)
	}
	if n, err := cur.CopyChunk(ctx, chunk("chunks", tb, 10, 1), rows("one", 2)); err != nil || n != 2 {
		t.Fatalf("chunk 1 by the new owner: %d rows, %v", n, err)
	}
	close(release)
	fenced(t, "the old owner's load of chunk 1", <-slow)
	wantRows(t, d, "chunks", tb, false, append(named("zero", 3), named("one", 2)...)...)
}

// A new plan for a table empties it and takes it over: chunks and the
// finish of the replaced plan are fenced, an older plan cannot take it
// back, and once finished the table takes no chunk at all. The copy's
// position is what the apply units read.
func planFencing(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_plans")
	d.Create(t, simple(tb, false).def())
	capture, copier := d.Open(t, "plans.task"), d.Open(t, "plans.copy")
	must(t, capture.BeginTable(ctx, "plans", tb, 10, false))
	_, err := copier.CopyChunk(ctx, chunk("plans", tb, 10, 0), rows("old plan", 2))
	must(t, err)
	wantRows(t, d, "plans", tb, false, named("old plan", 2)...)

	must(t, capture.BeginTable(ctx, "plans", tb, 12, false))
	wantRows(t, d, "plans", tb, false)
	_, err = copier.CopyChunk(ctx, chunk("plans", tb, 10, 1), rows("replaced", 1))
	fenced(t, "a chunk of the replaced plan", err)
	fenced(t, "an older plan beginning", capture.BeginTable(ctx, "plans", tb, 11, false))
	if n, err := copier.CopyChunk(ctx, chunk("plans", tb, 12, 0), rows("new plan", 4)); err != nil || n != 4 {
		t.Fatalf("chunk of the new plan: %d rows, %v", n, err)
	}
	fenced(t, "finishing under the replaced plan", capture.FinishTable(ctx, "plans", tb, 10, proto.EndOf(100), 1))
	must(t, capture.FinishTable(ctx, "plans", tb, 12, proto.EndOf(100), 1))
	_, err = copier.CopyChunk(ctx, chunk("plans", tb, 12, 1), rows("late", 1))
	fenced(t, "a chunk after the table finished", err)
	wantRows(t, d, "plans", tb, false, named("new plan", 4)...)
	wantPosition(t, d.Open(t, "plans.apply.0"), "plans", tb, proto.EndOf(100))
}

// A reset forgets the task's positions and chunks (a new task with the
// name of a deleted one starts from nothing): the same chunk loads again.
func reset(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_reset")
	d.Create(t, simple(tb, false).def())
	s := d.Open(t, "reset.task")
	must(t, s.BeginTable(ctx, "reset", tb, 4, false))
	_, err := s.CopyChunk(ctx, chunk("reset", tb, 4, 0), rows("before", 2))
	must(t, err)
	must(t, s.FinishTable(ctx, "reset", tb, 4, proto.EndOf(30), 1))
	must(t, s.ResetOffsets(ctx, "reset"))
	offs, err := d.Open(t, "reset.apply.0").Offsets(ctx, "reset")
	must(t, err)
	if len(offs) != 0 {
		t.Fatalf("positions after a reset: %v", offs)
	}
	must(t, s.BeginTable(ctx, "reset", tb, 4, false))
	if n, err := s.CopyChunk(ctx, chunk("reset", tb, 4, 0), rows("after", 3)); err != nil || n != 3 {
		t.Fatalf("the chunk after a reset: %d rows, %v", n, err)
	}
	wantRows(t, d, "reset", tb, false, named("after", 3)...)
}
