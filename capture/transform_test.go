package capture

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// A transformed table's chunk is read by a query that computes its
// expressions in place of, and beside, the stored columns.
func TestChunkCopySQLTransforms(t *testing.T) {
	c := Chunk{Table: proto.TableID{Schema: "public", Name: "customers"}, Columns: []string{"id", "email", "synced_at"}, Of: 1,
		Exprs: []proto.ColumnExpr{{Column: "email", Expr: "md5(email)"}, {Column: "synced_at", Expr: "now()", Added: true}}}
	sql, err := c.CopySQL()
	if err != nil {
		t.Fatal(err)
	}
	want := "COPY (SELECT \"id\", (md5(email)\n) AS \"email\", (now()\n) AS \"synced_at\" FROM "
	if !strings.HasPrefix(sql, want) || !strings.Contains(sql, `"public"."customers"`) {
		t.Fatalf("got %q", sql)
	}
	c.Exprs[0].Expr, c.Exprs[0].Field = "1) FROM x; --", "objects[0].transform.customers.email"
	if _, err := c.CopySQL(); err == nil || !strings.Contains(err.Error(), "objects[0].transform.customers.email") {
		t.Fatalf("an expression that breaks out: %v", err)
	}
}
