// Package sinktest is the conformance suite of the sink contract in
// package apply: every destination's sink runs it (apply/postgres,
// apply/kafka) and supplies a read-back of what the destination holds,
// so the same checks of content prove invariants 2 and 3 (each change
// once, one owner per unit) and the full sync's chunk rules for all of
// them.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Sink is what the suite drives: incremental apply, full-sync loads and
// the reset of a task's positions.
type Sink interface {
	apply.ChangeApplier
	apply.Snapshotter
	// ResetOffsets forgets a task's positions and chunks.
	ResetOffsets(ctx context.Context, task string) error
}

// Destination is one kind of destination under test.
type Destination struct {
	// Open opens a sink writing as unit. Opening a unit again is a new
	// owner of it (after a failover): where the destination fences by
	// unit (Kafka's transactional ids), the older one is fenced.
	Open func(t *testing.T, unit string) Sink
	// Create makes the table at the destination if it needs one:
	// keyed is (id int primary key, v text), keyless is (v text) with
	// replica identity full.
	Create func(t *testing.T, table proto.TableID, keyed bool)
	// Rows reads the table back as the destination holds it: "id=v" for
	// a keyed table, "v" for a keyless one, "<nil>" for NULL, sorted,
	// duplicates kept.
	Rows func(t *testing.T, table proto.TableID) []string
}

// Run runs the suite. Every case has tables and a task of its own, so
// one destination serves them all.
func Run(t *testing.T, d Destination) {
	t.Run("ChangesOnceAndPositions", func(t *testing.T) { changesOnce(t, d) })
	t.Run("ReplaySkipped", func(t *testing.T) { replaySkipped(t, d) })
	t.Run("EpochFencing", func(t *testing.T) { epochFencing(t, d) })
	t.Run("ChunksOnce", func(t *testing.T) { chunksOnce(t, d) })
	t.Run("PlanFencing", func(t *testing.T) { planFencing(t, d) })
	t.Run("Reset", func(t *testing.T) { reset(t, d) })
}

var (
	keyedCols   = []proto.Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "v", TypeOID: 25, TypeMod: -1}}
	keylessCols = []proto.Column{{Name: "v", TypeOID: 25, TypeMod: -1}}
)

func table(name string) proto.TableID { return proto.TableID{Schema: "public", Name: name} }

func at(lsn uint64, idx uint32) proto.Position { return proto.Position{LSN: proto.LSN(lsn), Idx: idx} }

func tuple(vals ...string) proto.Tuple {
	var tp proto.Tuple
	for _, v := range vals {
		if v == "<nil>" {
			tp.Kinds = append(tp.Kinds, proto.KindNull)
			tp.Values = append(tp.Values, nil)
			continue
		}
		tp.Kinds = append(tp.Kinds, proto.KindText)
		tp.Values = append(tp.Values, []byte(v))
	}
	return tp
}

// Row builders for the keyed table (id, v) and the keyless one (v).
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

// batch is one Apply call of a task on one table.
func batch(task string, epoch uint64, tb proto.TableID, keyed bool, rows ...proto.Row) *apply.Changes {
	cols, identity := keyedCols, byte(proto.IdentityDefault)
	if !keyed {
		cols, identity = keylessCols, proto.IdentityFull
	}
	return &apply.Changes{Task: task, Epoch: epoch,
		Segments:  []*apply.Segment{{Table: tb, Columns: cols, Identity: identity, Rows: rows}},
		Positions: map[string]proto.Position{tb.Key(): rows[len(rows)-1].Pos},
		Tables:    map[string]proto.TableID{tb.Key(): tb},
	}
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

func wantRows(t *testing.T, d Destination, tb proto.TableID, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := d.Rows(t, tb); !slices.Equal(got, want) {
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
	d.Create(t, tb, true)
	s := d.Open(t, "changes.apply.0")
	offs, err := s.Offsets(ctx, "changes")
	must(t, err)
	if len(offs) != 0 {
		t.Fatalf("positions of a new task: %v", offs)
	}
	must(t, s.Apply(ctx, batch("changes", 1, tb, true, ins(at(10, 0), "1", "a"), ins(at(10, 1), "2", "b"), ins(at(10, 2), "3", "<nil>"))))
	must(t, s.Apply(ctx, batch("changes", 1, tb, true, upd(at(20, 0), nil, []string{"1", "a+"}), del(at(20, 1), "2", "<nil>"),
		upd(at(21, 0), nil, []string{"3", "c"}))))
	wantRows(t, d, tb, "1=a+", "3=c")
	wantPosition(t, d.Open(t, "changes.apply.0"), "changes", tb, at(21, 0))
}

// A batch that repeats changes at or below the stored position (a replay
// after a crash) writes only what is new: on a keyless table a change
// written twice would show as a doubled row.
func replaySkipped(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_replay")
	d.Create(t, tb, false)
	s := d.Open(t, "replay.apply.0")
	_, err := s.Offsets(ctx, "replay")
	must(t, err)
	must(t, s.Apply(ctx, batch("replay", 1, tb, false, ins(at(10, 0), "x"), ins(at(10, 1), "y"))))
	again := d.Open(t, "replay.apply.0")
	wantPosition(t, again, "replay", tb, at(10, 1))
	must(t, again.Apply(ctx, batch("replay", 2, tb, false, ins(at(10, 0), "x"), ins(at(10, 1), "y"), ins(at(11, 0), "z"))))
	wantRows(t, d, tb, "x", "y", "z")
	wantPosition(t, again, "replay", tb, at(11, 0))
	// Rows of a keyless table are told apart by all their values.
	must(t, again.Apply(ctx, batch("replay", 2, tb, false, upd(at(12, 0), []string{"y"}, []string{"y+"}), del(at(12, 1), "x"))))
	wantRows(t, d, tb, "y+", "z")
}

// A unit's new owner (higher epoch) takes over: the old owner's writes
// are refused with ErrFenced and leave nothing, as are a lower epoch's
// from any unit, for changes and for finishing a table's copy.
func epochFencing(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_fencing")
	d.Create(t, tb, true)
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
	wantRows(t, d, tb, "1=old owner", "2=new owner")
	wantPosition(t, d.Open(t, "fencing.apply.0"), "fencing", tb, at(11, 0))
}

func chunk(task string, tb proto.TableID, plan uint64, i int) apply.ChunkLoad {
	return apply.ChunkLoad{Task: task, Plan: plan, Table: tb, Chunk: i, Columns: []string{"v"}, Types: []uint32{25},
		SnapshotLSN: 50, Format: proto.CopyText}
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
	d.Create(t, tb, false)
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
	wantRows(t, d, tb, append(named("zero", 3), named("one", 2)...)...)
}

// A new plan for a table empties it and takes it over: chunks and the
// finish of the replaced plan are fenced, an older plan cannot take it
// back, and once finished the table takes no chunk at all. The copy's
// position is what the apply units read.
func planFencing(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_plans")
	d.Create(t, tb, false)
	capture, copier := d.Open(t, "plans.task"), d.Open(t, "plans.copy")
	must(t, capture.BeginTable(ctx, "plans", tb, 10, false))
	_, err := copier.CopyChunk(ctx, chunk("plans", tb, 10, 0), rows("old plan", 2))
	must(t, err)
	wantRows(t, d, tb, named("old plan", 2)...)

	must(t, capture.BeginTable(ctx, "plans", tb, 12, false))
	wantRows(t, d, tb)
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
	wantRows(t, d, tb, named("new plan", 4)...)
	wantPosition(t, d.Open(t, "plans.apply.0"), "plans", tb, proto.EndOf(100))
}

// A reset forgets the task's positions and chunks (a new task with the
// name of a deleted one starts from nothing): the same chunk loads again.
func reset(t *testing.T, d Destination) {
	ctx := context.Background()
	tb := table("conf_reset")
	d.Create(t, tb, false)
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
	wantRows(t, d, tb, named("after", 3)...)
}
