package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// SampleHistory lets the API tests record a history point now.
func SampleHistory(c *Coordinator, now time.Time) { c.sampleHistory(context.Background(), now) }

func TestTablesFullAndPhases(t *testing.T) {
	a, b := proto.TableID{Schema: "public", Name: "a"}, proto.TableID{Schema: "public", Name: "b"}
	task := &Task{Phase: proto.PhaseFull, Tables: []string{a.Key(), b.Key()},
		TablesCopied: map[string]proto.LSN{a.Key(): 1},
		FullSync: &FullSyncPlan{Tables: []PlannedCopy{
			{Table: a, Estimated: 5, Chunks: []PlannedChunk{{Done: true, Rows: 7}}},
			{Table: b, Estimated: 100, Chunks: []PlannedChunk{{Done: true, Rows: 10}, {Copying: 30}}},
		}}}
	full := task.TablesFull()
	if f := full["public.a"]; f.RowsDone != 7 || f.RowsEstimated != 7 {
		t.Errorf("a copied: %+v, want its exact count 7/7", f)
	}
	if f := full["public.b"]; f.RowsDone != 40 || f.RowsEstimated != 100 {
		t.Errorf("b copying: %+v, want 40 of 100", f)
	}
	lag := int64(12)
	st := TablesStatus(task, TaskLive{Tables: []TableLive{{Table: "public.b", Insert: 3, Delete: 1, Last: proto.Position{LSN: 0x16B3F28, Idx: 3}, LagMS: &lag}}},
		map[string]float64{"public.b": 20})
	if len(st.Tables) != 2 {
		t.Fatalf("tables: %+v", st.Tables)
	}
	ta, tb := st.Tables[0], st.Tables[1]
	if ta.Table != "public.a" || ta.Phase != "copied" || ta.Applied != nil || ta.Full.ETASeconds != nil {
		t.Errorf("a: %+v", ta)
	}
	if tb.Phase != "full" || tb.Full.RowsPerSecond != 20 || tb.Full.ETASeconds == nil || *tb.Full.ETASeconds != 3 {
		t.Errorf("b's copy: %+v %+v, want 60 rows left at 20/s: 3 s", tb, tb.Full)
	}
	if tb.Applied == nil || *tb.Applied != (proto.OpCounts{Insert: 3, Delete: 1}) || tb.LastPosition != "0/16B3F28:3" || tb.LagMS == nil || *tb.LagMS != 12 {
		t.Errorf("b's changes: %+v %+v", tb, tb.Applied)
	}
	task.Phase, task.FullSync = proto.PhaseIncremental, nil
	task.Adding = []string{b.Key()}
	task.TablesCopied = map[string]proto.LSN{a.Key(): 1}
	st = TablesStatus(task, TaskLive{}, nil)
	if st.Tables[0].Phase != "incremental" || st.Tables[1].Phase != "adding" || st.Tables[0].Full != nil {
		t.Errorf("incremental, b added: %+v", st.Tables)
	}
}

func TestMergeLive(t *testing.T) {
	l5, l9 := int64(5), int64(9)
	m := MergeLive(
		[]TaskLive{{Task: "t", Running: true, LatencyMS: &l5, RowsPerSecond: 10, ConfirmedLSN: "0/10",
			Tables: []TableLive{{Table: "public.a", Insert: 2, Last: proto.Position{LSN: 5}}}}},
		[]TaskLive{{Task: "t", Running: true, LatencyMS: &l9, RowsPerSecond: 5,
			Tables: []TableLive{{Table: "public.a", Update: 1, Last: proto.Position{LSN: 7}}, {Table: "public.b", Delete: 4}}}},
		[]TaskLive{{Task: "t", Slot: &SlotLive{RetainedWALBytes: 42, Active: true}}},
	)
	got := m["t"]
	if !got.Running || *got.LatencyMS != 9 || got.RowsPerSecond != 15 || got.ConfirmedLSN != "0/10" || got.Slot == nil || got.Slot.RetainedWALBytes != 42 {
		t.Fatalf("merged: %+v", got)
	}
	if len(got.Tables) != 2 || got.Tables[0].Insert != 2 || got.Tables[0].Update != 1 || got.Tables[0].Last.LSN != 7 || got.Tables[1].Delete != 4 {
		t.Fatalf("merged tables: %+v", got.Tables)
	}
}
