package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

func TestPrintPlan(t *testing.T) {
	p := &proto.TaskPlan{Task: "shop", Destination: "postgres", Groups: 4,
		Tables: []proto.PlannedTable{
			{Source: proto.TableID{Schema: "shop", Name: "customer"}, Destination: "shop.customer", Key: []string{"customer_id"}, Group: 3, Storage: "table", EstimatedRows: 50},
			{Source: proto.TableID{Schema: "shop", Name: "log"}, Destination: "wh.log", Group: 1, Linked: "shop.customer", Storage: "table"},
		},
		Objects: map[proto.ObjectKind]int{proto.ObjectView: 3, proto.ObjectFunction: 2},
		Statements: []proto.PlannedStatement{
			{Phase: proto.PhaseBeforeLoad, What: "create schema \"shop\"", SQL: "CREATE SCHEMA IF NOT EXISTS \"shop\""},
			{Phase: proto.PhaseAfterLoad, What: "create view shop.v", SQL: "CREATE OR REPLACE VIEW shop.v AS\n SELECT 1"},
		}}
	var b bytes.Buffer
	printPlan(&b, p)
	out := b.String()
	for _, want := range []string{"task shop: 2 tables to postgres, over 4 apply groups", "shop.customer  shop.customer  customer_id  3",
		"(none)", "1 (with shop.customer)", "other objects: 2 function, 3 view", "schema sync, before the load:\n   1. create schema \"shop\"\n      CREATE SCHEMA IF NOT EXISTS \"shop\";",
		"schema sync, after the load:\n   2. create view shop.v\n      CREATE OR REPLACE VIEW shop.v AS\n       SELECT 1;"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}
}
