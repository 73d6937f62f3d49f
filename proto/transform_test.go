package proto_test

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

func TestTransformsInSpec(t *testing.T) {
	const head = "name: t\nsource: {dsn: postgres://a@b/c}\ndestination: {type: test, dsn: postgres://a@d/e}\nobjects:\n  - schema: public\n    tables: [customers, orders]\n"
	spec, err := proto.ParseTaskSpec([]byte(head + `    transform: {customers: {email: "md5(email)", region: "upper(region)"}}
    add_columns: {orders: {synced_at: "now()", big: "id * 10"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := spec.ColumnExprs(proto.TableID{Schema: "public", Name: "orders"})
	if len(got) != 2 || got[0].Column != "big" || !got[0].Added || got[1].Field != "objects[0].add_columns.orders.synced_at" {
		t.Fatalf("orders: %+v", got)
	}
	if got := spec.ColumnExprs(proto.TableID{Schema: "public", Name: "customers"}); len(got) != 2 || got[0].Expr != "md5(email)" || got[0].Added {
		t.Fatalf("customers: %+v", got)
	}
	for _, tc := range []struct{ yaml, want string }{
		{`    transform: {customers: {email: "md5(email)); DROP TABLE x; --"}}`, "objects[0].transform.customers.email: must be one SQL expression"},
		{`    transform: {customers: {email: "md5(email)) , (1"}}`, "objects[0].transform.customers.email: must be one SQL expression"},
		{`    transform: {nope: {email: "1"}}`, `objects[0].transform.nope: "nope" is not among the tables listed`},
		{`    add_columns: {orders: {at: ""}}`, "objects[0].add_columns.orders.at: is empty"},
		{"    transform: {orders: {x: \"1\"}}\n    add_columns: {orders: {x: \"2\"}}", "objects[0].add_columns.orders.x: is also under transform"},
		{"    columns: {orders: [id]}\n    transform: {orders: {x: \"1\"}}", "objects[0].transform.orders.x: is not among columns.orders"},
	} {
		_, err := proto.ParseTaskSpec([]byte(head + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
