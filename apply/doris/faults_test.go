package doris_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
	"github.com/sluicedb/sluice/proto"
)

// The sink against the emulator's faults: loads refused for too many
// versions wait and go again, a Publish Timeout counts as loaded, and a
// dropped connection or an FE restart fails the batch as a connection
// failure, after which the unit's next owner goes on from the stored
// position. Each change lands once (a Duplicate table would show a
// doubled one).
func TestFaults(t *testing.T) {
	ctx := context.Background()
	e := testenv.NewDoris(t)
	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "faults"}
	tb := proto.TableID{Schema: "public", Name: "flog"}
	def := proto.TableDef{ID: tb, Columns: []proto.ColumnDef{{Name: "v", Type: "text", TypeOID: 25}}}
	cols := []proto.Column{{Name: "v", TypeOID: 25}}
	s := openSink(t, srv, "faults")
	if err := s.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
		t.Fatal(err)
	}
	next := 0
	batch := func(n int) *apply.Changes {
		seg := &apply.Segment{Table: tb, Columns: cols, Identity: proto.IdentityFull}
		var last proto.Position
		for range n {
			next++
			last = proto.Position{LSN: proto.LSN(1000 + next)}
			seg.Rows = append(seg.Rows, proto.Row{Op: proto.OpInsert, Pos: last, New: proto.Tuple{Kinds: []byte{proto.KindText}, Values: [][]byte{fmt.Appendf(nil, "r%d", next)}}})
		}
		return &apply.Changes{Task: "faults", Epoch: 1, Segments: []*apply.Segment{seg},
			Positions: map[string]proto.Position{tb.Key(): last}, Tables: map[string]proto.TableID{tb.Key(): tb}}
	}
	// applyUntil applies a batch as the apply unit does: a failure is
	// retried by a new owner of the unit, which reads the positions first.
	applyUntil := func(ch *apply.Changes) (failures int) {
		cur := s
		for range 20 {
			err := cur.Apply(ctx, ch)
			if err == nil {
				return failures
			}
			failures++
			if k := doris.Destination.Classify(err); k != proto.ErrorConnection {
				t.Fatalf("a fault's failure is of kind %q: %v", k, err)
			}
			for range 20 { // a new owner, once the FE answers
				time.Sleep(500 * time.Millisecond)
				next, err := doris.Open(ctx, doris.Options{Task: "faults", Config: doris.Config{URL: srv.URL, User: "root", Database: srv.DB}})
				if err != nil {
					continue
				}
				if _, err := next.Offsets(ctx, "faults"); err != nil {
					continue
				}
				cur = next
				break
			}
		}
		t.Fatal("the batch never landed")
		return 0
	}

	e.InjectTooManyVersions(2)
	if f := applyUntil(batch(3)); f != 0 {
		t.Fatalf("too many versions failed the batch %d times; it should wait", f)
	}
	e.InjectPublishTimeout(3)
	applyUntil(batch(3))
	e.InjectDropConnection(1)
	if f := applyUntil(batch(3)); f == 0 {
		t.Log("the dropped connection hit no load of this batch")
	}
	if err := e.RestartFE(time.Second); err != nil {
		t.Fatal(err)
	}
	if f := applyUntil(batch(3)); f == 0 {
		t.Fatal("a batch went through while the FE was down")
	}
	applyUntil(batch(2))

	var got, want []string
	for _, r := range srv.ReadTable(t, tb.Name, cols) {
		got = append(got, r["v"])
	}
	for i := 1; i <= next; i++ {
		want = append(want, fmt.Sprintf("r%d", i))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the table holds %q, want each of %q once", got, want)
	}
}

// A writer that precommitted a batch and died before recording it leaves
// a load that holds the table's next label: the next owner aborts it when
// it reads the positions, and its rows never show.
func TestLingeringPrecommitAborted(t *testing.T) {
	ctx := context.Background()
	e := testenv.NewDoris(t)
	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "linger"}
	tb := proto.TableID{Schema: "public", Name: "kv"}
	def := proto.TableDef{ID: tb, PrimaryKey: []string{"id"}, Columns: []proto.ColumnDef{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}, {Name: "v", Type: "text", TypeOID: 25}}}
	s := openSink(t, srv, "linger")
	if err := s.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Offsets(ctx, "linger"); err != nil {
		t.Fatal(err)
	}
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}
	insert := func(lsn proto.LSN, v string) *apply.Changes {
		return &apply.Changes{Task: "linger", Epoch: 2, Positions: map[string]proto.Position{tb.Key(): {LSN: lsn}}, Tables: map[string]proto.TableID{tb.Key(): tb},
			Segments: []*apply.Segment{{Table: tb, Columns: cols, Rows: []proto.Row{{Op: proto.OpInsert, Pos: proto.Position{LSN: lsn},
				New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte("1"), []byte(v)}}}}}}}
	}
	if err := s.Apply(ctx, insert(3, "first")); err != nil {
		t.Fatal(err)
	}
	// The crashed writer's load: the label of the batch after position 3
	// (generation 0), precommitted by hand.
	label := doris.BatchLabel("linger", tb, 0, proto.Position{LSN: 3})
	ans := doristest.StreamLoad(t, srv, tb.Name, label, `{"id":1,"v":"ghost","__sluice_op":0,"__sluice_seq":1}`+"\n",
		map[string]string{"two_phase_commit": "true", "columns": "id,v,__sluice_op,__sluice_seq", "merge_type": "MERGE", "delete": "__sluice_op=1", "function_column.sequence_col": "__sluice_seq"})
	if ans["Status"] != "Success" {
		t.Fatalf("precommit by hand: %v", ans)
	}
	next := openSink(t, srv, "linger")
	if _, err := next.Offsets(ctx, "linger"); err != nil {
		t.Fatal(err)
	}
	if st := doristest.LoadState(t, srv, label); st != "ABORTED" {
		t.Fatalf("the lingering load is %s after the new owner read the positions, want ABORTED", st)
	}
	if got := srv.ReadTable(t, "kv", cols); len(got) != 1 || got[0]["v"] != "first" {
		t.Fatalf("kv holds %v", got)
	}
	if err := next.Apply(ctx, insert(5, "real")); err != nil {
		t.Fatal(err)
	}
	if got := srv.ReadTable(t, "kv", cols); len(got) != 1 || got[0]["v"] != "real" {
		t.Fatalf("kv holds %v", got)
	}
}

// Newer Doris answers a taken label with "[LABEL_ALREADY_EXISTS]... existing
// job status [PRECOMMITTED]" in the message: the sink reads that form too,
// aborts the stray load and loads its own.
func TestLabelExistsNewForm(t *testing.T) {
	ctx := context.Background()
	e := testenv.NewDoris(t, func(o *emu.Options) { o.LabelExistsNewForm = true })
	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "newform"}
	tb := proto.TableID{Schema: "public", Name: "kv"}
	def := proto.TableDef{ID: tb, PrimaryKey: []string{"id"}, Columns: []proto.ColumnDef{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}, {Name: "v", Type: "text", TypeOID: 25}}}
	s := openSink(t, srv, "newform")
	if err := s.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
		t.Fatal(err)
	}
	// A stray precommitted load holding the label of the table's first batch.
	label := doris.BatchLabel("newform", tb, 0, proto.Position{})
	doristest.StreamLoad(t, srv, tb.Name, label, `{"id":9,"v":"stray","__sluice_op":0,"__sluice_seq":1}`+"\n",
		map[string]string{"two_phase_commit": "true", "columns": "id,v,__sluice_op,__sluice_seq", "merge_type": "MERGE", "delete": "__sluice_op=1", "function_column.sequence_col": "__sluice_seq"})
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}
	ch := &apply.Changes{Task: "newform", Epoch: 1, Positions: map[string]proto.Position{tb.Key(): {LSN: 5}}, Tables: map[string]proto.TableID{tb.Key(): tb},
		Segments: []*apply.Segment{{Table: tb, Columns: cols, Rows: []proto.Row{{Op: proto.OpInsert, Pos: proto.Position{LSN: 5},
			New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte("1"), []byte("mine")}}}}}}}
	if err := s.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if got := srv.ReadTable(t, "kv", cols); len(got) != 1 || got[0]["v"] != "mine" {
		t.Fatalf("kv holds %v", got)
	}
	// The same batch again (a replay after a crash) changes nothing.
	again := openSink(t, srv, "newform")
	if _, err := again.Offsets(ctx, "newform"); err != nil {
		t.Fatal(err)
	}
	if err := again.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if got := srv.ReadTable(t, "kv", cols); len(got) != 1 || got[0]["v"] != "mine" {
		t.Fatalf("kv holds %v after the replay", got)
	}
}

// A TRUNCATE empties the table once: a batch replayed after a crash
// (its rows at or below the stored position) does not truncate again,
// which would lose the rows loaded after it.
func TestTruncateReplayed(t *testing.T) {
	ctx := context.Background()
	srv := server(t, "trunc")
	tb := proto.TableID{Schema: "public", Name: "kv"}
	def := proto.TableDef{ID: tb, PrimaryKey: []string{"id"}, Columns: []proto.ColumnDef{{Name: "id", Type: "integer", TypeOID: 23, NotNull: true}, {Name: "v", Type: "text", TypeOID: 25}}}
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}
	s := openSink(t, srv, "trunc")
	if err := s.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
		t.Fatal(err)
	}
	ins := func(lsn proto.LSN, id string) proto.Row {
		return proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: lsn}, New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(id), []byte("v" + id)}}}
	}
	batch := func(rows ...proto.Row) *apply.Changes {
		return &apply.Changes{Task: "trunc", Epoch: 1, Positions: map[string]proto.Position{tb.Key(): rows[len(rows)-1].Pos}, Tables: map[string]proto.TableID{tb.Key(): tb},
			Segments: []*apply.Segment{{Table: tb, Columns: cols, Rows: rows}}}
	}
	truncate := proto.Row{Op: proto.OpTruncate, Pos: proto.Position{LSN: 11}}
	if err := s.Apply(ctx, batch(ins(10, "1"), truncate, ins(12, "2"))); err != nil {
		t.Fatal(err)
	}
	again := openSink(t, srv, "trunc")
	if _, err := again.Offsets(ctx, "trunc"); err != nil {
		t.Fatal(err)
	}
	if err := again.Apply(ctx, batch(ins(10, "1"), truncate, ins(12, "2"), ins(13, "3"))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range srv.ReadTable(t, "kv", cols) {
		got = append(got, r["id"])
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("kv holds %v, want [2 3]", got)
	}
}
