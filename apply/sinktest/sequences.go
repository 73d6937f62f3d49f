package sinktest

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// sequences: a destination that claims Sequences moves them forward
// only, in each sequence's own direction, reports those it does not have,
// and sets them exactly with what each held before and after. Schema sync
// creates them (ApplyPreData with the source's DDL), as for a task.
func sequences(t *testing.T, d Destination) {
	ctx := context.Background()
	sink := d.Open(t, "sinktest-sequences.task.0")
	syncer, ok := sink.(apply.SequenceSyncer)
	if !ok {
		t.Fatal("the destination claims Sequences but its sink is no apply.SequenceSyncer")
	}
	up, down, gone := table("sinktest_seq_up"), table("sinktest_seq_down"), table("sinktest_seq_gone")
	err := sink.ApplyPreData(ctx, &proto.Schema{Schemas: []string{"public"}, Sequences: []proto.SequenceDef{
		{Schema: up.Schema, Name: up.Name, DDL: "CREATE SEQUENCE IF NOT EXISTS public.sinktest_seq_up AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE"},
		{Schema: down.Schema, Name: down.Name, DDL: "CREATE SEQUENCE IF NOT EXISTS public.sinktest_seq_down AS bigint INCREMENT BY -1 MINVALUE -1000 MAXVALUE -1 START WITH -1 CACHE 1 NO CYCLE"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	state := func(v int64, called bool) proto.SequenceState {
		return proto.SequenceState{LastValue: v, IsCalled: called}
	}
	update := func(name proto.TableID, st proto.SequenceState) proto.SequenceUpdate {
		return proto.SequenceUpdate{Name: name, SequenceState: st}
	}
	missing, err := syncer.AdvanceSequences(ctx, []proto.SequenceUpdate{update(up, state(10, true)), update(gone, state(3, true)), update(down, state(-10, true))})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(missing) != fmt.Sprint([]proto.TableID{gone}) {
		t.Fatalf("missing %v, want %v", missing, gone)
	}
	// Behind in each one's direction: nothing moves.
	if _, err := syncer.AdvanceSequences(ctx, []proto.SequenceUpdate{update(up, state(5, true)), update(down, state(-5, true))}); err != nil {
		t.Fatal(err)
	}
	got, err := syncer.SetSequences(ctx, []proto.SequenceUpdate{update(up, state(7, false)), update(gone, state(1, true)), update(down, state(-3, true))})
	if err != nil {
		t.Fatal(err)
	}
	want := []proto.SequenceResult{
		{Name: up, Before: state(10, true), After: state(7, false)},
		{Name: gone, Missing: true},
		{Name: down, Before: state(-10, true), After: state(-3, true)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("set exactly:\n got %v\nwant %v", got, want)
	}
}
