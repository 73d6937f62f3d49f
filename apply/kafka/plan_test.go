package kafka

import (
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

func TestPlan(t *testing.T) {
	spec, err := proto.ParseTaskSpec([]byte(`name: shop
source: { dsn: "postgres://repl@10.0.0.5:5432/shop" }
destination: { type: kafka, brokers: ["127.0.0.1:9092"], topic_partitions: 3 }
objects:
  - schema: shop
    topics: { orders: shop.orders }
    partitions: { orders: 12 }
    partition_key: { orders: [customer_id] }
`))
	if err != nil {
		t.Fatal(err)
	}
	orders, events := proto.TableID{Schema: "shop", Name: "orders"}, proto.TableID{Schema: "shop", Name: "events"}
	plan := &proto.TaskPlan{Tables: []proto.PlannedTable{{Source: orders}, {Source: events}}}
	Destination.(apply.Planner).Plan(spec, &proto.Schema{}, plan)
	for i, want := range []proto.PlannedTable{
		{Destination: "topic shop.orders", Storage: "12 partitions (when Sluice creates the topic), partition key (customer_id)"},
		{Destination: "topic shop", Storage: "3 partitions (when Sluice creates the topic)"},
	} {
		if got := plan.Tables[i]; got.Destination != want.Destination || got.Storage != want.Storage {
			t.Errorf("table %d: %+v, want %+v", i, got, want)
		}
	}
}
