package doris_test

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/proto"
)

func TestPlan(t *testing.T) {
	spec, err := proto.ParseTaskSpec([]byte(`name: shop-to-dw
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: doris, url: "http://fe-host:8030", user: admin, database: dw }
objects:
  - schema: shop
    bucket_count: { orders: 16 }
`))
	if err != nil {
		t.Fatal(err)
	}
	col := func(num int, name, typ string, oid uint32) proto.ColumnDef {
		return proto.ColumnDef{Num: num, Name: name, Type: typ, TypeOID: oid, NotNull: num == 1}
	}
	orders := proto.TableID{Schema: "shop", Name: "orders"}
	events := proto.TableID{Schema: "shop", Name: "events"}
	s := &proto.Schema{Tables: []proto.TableDef{
		{ID: orders, Columns: []proto.ColumnDef{col(1, "id", "bigint", 20), col(2, "note", "text", 25)}, PrimaryKey: []string{"id"}},
		{ID: events, Columns: []proto.ColumnDef{col(1, "at", "timestamp with time zone", 1184), col(2, "what", "text", 25)}},
	}}
	plan := &proto.TaskPlan{Tables: []proto.PlannedTable{{Source: orders, Key: []string{"id"}}, {Source: events}}}
	doris.Destination.(apply.Planner).Plan(spec, s, plan)
	if got := plan.Tables[0].Storage; got != "unique model, key (id), distributed by hash (id), 16 buckets" {
		t.Errorf("orders: %q", got)
	}
	if got := plan.Tables[1].Storage; !strings.HasPrefix(got, "duplicate model") {
		t.Errorf("events (no key): %q", got)
	}
	if len(plan.Statements) != 2 || !strings.Contains(plan.Statements[0].SQL, "CREATE TABLE IF NOT EXISTS `orders`") || !strings.Contains(plan.Statements[0].SQL, "BUCKETS 16") {
		t.Errorf("statements: %+v", plan.Statements)
	}
}
