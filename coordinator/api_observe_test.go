package coordinator_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// A node's heartbeat carries its units' figures; the API shows them in
// the task's status, its tables, and its history.
func TestAPITablesAndHistoryFromHeartbeats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.client.CreateTask(ctx, taskYAML("orders")); err != nil {
		t.Fatal(err)
	}
	// Before any heartbeat: the node's own figures (the backend's).
	e.backend.SetLive("orders", coordinator.Live{ThroughputRPS: 1})
	if st, err := e.client.GetTask(ctx, "orders"); err != nil || st.ThroughputRPS != 1 || st.LatencyMS != nil {
		t.Fatalf("status before heartbeats: %+v, %v", st, err)
	}
	lat := int64(40)
	for _, hb := range []coordinator.Heartbeat{
		{Node: "n1", Live: []coordinator.TaskLive{{Task: "orders", Running: true, LatencyMS: &lat, RowsPerSecond: 100, BytesPerSecond: 2000,
			Tables: []coordinator.TableLive{{Table: "public.orders", Insert: 5, Update: 2, Delete: 1, Last: proto.Position{LSN: 0x16B3F28, Idx: 3}, LagMS: &lat}}}}},
		{Node: "n2", Live: []coordinator.TaskLive{{Task: "orders", RowsPerSecond: 50, ConfirmedLSN: "0/16B3F28",
			Slot: &coordinator.SlotLive{RetainedWALBytes: 123, Active: true}}}},
	} {
		if err := e.coord.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.client.GetTask(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if st.LatencyMS == nil || *st.LatencyMS != 40 || st.ThroughputRPS != 150 || st.ThroughputBPS != 2000 || st.ConfirmedLSN != "0/16B3F28" {
		t.Fatalf("status from the heartbeats: %+v", st)
	}
	if st.Slot != nil {
		t.Fatalf("a slot before the task made one: %+v", st.Slot)
	}

	tables, err := e.client.TaskTables(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables.Tables) != 1 {
		t.Fatalf("tables: %+v", tables)
	}
	tb := tables.Tables[0]
	if tb.Table != "public.orders" || tb.Applied == nil || *tb.Applied != (proto.OpCounts{Insert: 5, Update: 2, Delete: 1}) ||
		tb.LastPosition != "0/16B3F28:3" || tb.LagMS == nil || *tb.LagMS != 40 {
		t.Fatalf("table: %+v (applied %+v)", tb, tb.Applied)
	}

	coordinator.SampleHistory(e.coord, time.Now())
	h, err := e.client.TaskHistory(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if h.IntervalSeconds != 10 || len(h.Points) != 1 || h.Points[0].RowsPerSecond != 150 || h.Points[0].LatencyMS == nil || *h.Points[0].LatencyMS != 40 {
		t.Fatalf("history: %+v", h)
	}
	// Within the interval no second point; after it, one more.
	coordinator.SampleHistory(e.coord, time.Now())
	coordinator.SampleHistory(e.coord, time.Now().Add(coordinator.HistoryInterval))
	if h, _ = e.client.TaskHistory(ctx, "orders"); len(h.Points) != 2 {
		t.Fatalf("history after an interval: %d points, want 2", len(h.Points))
	}

	_, err = e.client.TaskTables(ctx, "nope")
	apiError(t, err, http.StatusNotFound)
	_, err = e.client.TaskHistory(ctx, "nope")
	apiError(t, err, http.StatusNotFound)
}
