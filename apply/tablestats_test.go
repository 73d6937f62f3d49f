package apply

import (
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// A batch's rows count per source table and operation (a renamed table
// under its source name), with the last position.
func TestCountTables(t *testing.T) {
	src, dst := proto.TableID{Schema: "public", Name: "orders"}, proto.TableID{Schema: "public", Name: "orders_v2"}
	other := proto.TableID{Schema: "public", Name: "items"}
	row := func(op proto.Op, lsn proto.LSN, idx uint32) proto.Row {
		return proto.Row{Op: op, Pos: proto.Position{LSN: lsn, Idx: idx}}
	}
	var s WorkerStats
	s.countTables(&Changes{Segments: []*Segment{
		{Table: dst, Rows: []proto.Row{row(proto.OpInsert, 10, 0), row(proto.OpUpdate, 10, 1), row(proto.OpDelete, 12, 0)}},
		{Table: other, Rows: []proto.Row{row(proto.OpTruncate, 11, 0)}},
	}}, map[proto.TableID]proto.TableID{dst: src})
	s.countTables(&Changes{Segments: []*Segment{{Table: dst, Rows: []proto.Row{row(proto.OpInsert, 13, 2)}}}}, map[proto.TableID]proto.TableID{dst: src})
	got := s.Tables()
	want := []TableCount{
		{Table: "public.items", Truncate: 1, Last: proto.Position{LSN: 11}},
		{Table: "public.orders", Insert: 2, Update: 1, Delete: 1, Last: proto.Position{LSN: 13, Idx: 2}},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}
