package proto

import (
	"testing"
)

func TestNameMap(t *testing.T) {
	spec := TaskSpec{NameCase: "upper", Objects: []ObjectSpec{
		{Schema: "shop", RenameSchema: "sales", Rename: map[string]string{"orders": "sales_orders", "orders.amount": "total"}},
		{Schema: "crm"},
	}}
	m := spec.Names()
	orders := TableID{Schema: "shop", Name: "orders"}
	if got := m.Table(orders); got != (TableID{Schema: "sales", Name: "sales_orders"}) {
		t.Errorf("orders -> %v", got)
	}
	if got := m.Column(orders, "amount"); got != "total" {
		t.Errorf("orders.amount -> %q", got)
	}
	// name_case applies to every name not renamed.
	if got := m.Column(orders, "note"); got != "NOTE" {
		t.Errorf("orders.note -> %q", got)
	}
	if got := m.Table(TableID{Schema: "crm", Name: "people"}); got != (TableID{Schema: "CRM", Name: "PEOPLE"}) {
		t.Errorf("crm.people -> %v", got)
	}
	if got := m.Table(HeartbeatTable); got != HeartbeatTable {
		t.Errorf("the heartbeat table is renamed: %v", got)
	}
	lower := (&TaskSpec{NameCase: "lower", Objects: []ObjectSpec{{Schema: "S"}}}).Names()
	if got := lower.Table(TableID{Schema: "S", Name: "MixedCase"}); got != (TableID{Schema: "s", Name: "mixedcase"}) {
		t.Errorf("lower: %v", got)
	}
	if (&TaskSpec{NameCase: "source", Objects: []ObjectSpec{{Schema: "public"}}}).Names() != nil {
		t.Error("a spec renaming nothing has a name map")
	}
	var none *NameMap
	if none.Table(orders) != orders || none.Column(orders, "amount") != "amount" {
		t.Error("the nil map renames")
	}
}
