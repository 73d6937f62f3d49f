package doris_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	_ "github.com/sluicedb/sluice/apply/destinations" // the spec decoder knows doris
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
	"github.com/sluicedb/sluice/proto"
)

func precheck(t *testing.T, yaml string, tables ...proto.TableID) map[string]proto.Problem {
	t.Helper()
	return precheckFacts(t, yaml, &proto.SourceFacts{Tables: tables})
}

func precheckFacts(t *testing.T, yaml string, facts *proto.SourceFacts) map[string]proto.Problem {
	t.Helper()
	spec, err := proto.ParseTaskSpec([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var c proto.Checks
	doris.Destination.Precheck(context.Background(), spec, facts, &c)
	out := map[string]proto.Problem{}
	for _, p := range c.Report().Checks {
		out[p.Check] = p
	}
	return out
}

func wantResult(t *testing.T, got map[string]proto.Problem, check string, result proto.Result, text string) {
	t.Helper()
	p, ok := got[check]
	if !ok {
		t.Fatalf("no %s in %v", check, got)
	}
	if p.Result != result || !strings.Contains(p.Message+" "+p.Fix, text) {
		t.Fatalf("%s: %s %q (fix %q), want %s with %q", check, p.Result, p.Message, p.Fix, result, text)
	}
}

// The precheck against a live FE: credentials, privileges, names that
// collide in the schema-less database or that Doris does not take, and
// tables the database has already.
func TestPrecheck(t *testing.T) {
	e := testenv.NewDoris(t, func(o *emu.Options) {
		o.Users = map[string]emu.User{"reader": {Password: "pw", Privs: []string{emu.PrivSelect, emu.PrivLoad}}}
	})
	task := func(user, password, objects string) string {
		return fmt.Sprintf("name: pc\nsource: {dsn: \"postgres://u@127.0.0.1:1/db\"}\ndestination: {type: doris, url: %q, user: %s, password: %q, database: dw}\nobjects: %s\n",
			e.FEURL(), user, password, objects)
	}
	orders, salesOrders, digits := proto.TableID{Schema: "public", Name: "orders"}, proto.TableID{Schema: "sales", Name: "orders"}, proto.TableID{Schema: "public", Name: "9lives"}

	got := precheck(t, task("root", "", "[{schema: public}, {schema: sales}]"), orders, salesOrders, digits)
	wantResult(t, got, "destination.names", proto.ResultFailure, "both become orders")
	wantResult(t, got, "destination.names", proto.ResultFailure, `"9lives"`)
	wantResult(t, got, "destination.connect", proto.ResultPass, "doris")
	wantResult(t, got, "destination.privileges", proto.ResultPass, "administrator")

	got = precheck(t, task("root", "wrong", "[{schema: public}]"), orders)
	wantResult(t, got, "destination.connect", proto.ResultFailure, "401")

	got = precheck(t, task("reader", "pw", "[{schema: public}]"), orders)
	wantResult(t, got, "destination.privileges", proto.ResultFailure, "Alter_priv, Create_priv, Drop_priv")

	// A table the user made: an Aggregate one is refused; a Unique one
	// without a sequence column is a warning, and with schema sync a
	// conflict.
	if _, err := e.SQL("", "CREATE DATABASE dw"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SQL("dw", "CREATE TABLE orders (id INT NOT NULL, v STRING) UNIQUE KEY(id) DISTRIBUTED BY HASH(id) BUCKETS 1 PROPERTIES (\"enable_unique_key_merge_on_write\" = \"true\")"); err != nil {
		t.Fatal(err)
	}
	got = precheck(t, task("root", "", "[{schema: public}]"), orders)
	wantResult(t, got, "destination.conflicting_tables", proto.ResultFailure, "orders")
	got = precheck(t, task("root", "", "[{schema: public}]")+"sync: {schema: false}\n", orders)
	wantResult(t, got, "destination.tables", proto.ResultWarning, "no sequence column")
	got = precheck(t, task("root", "", "[{schema: public, engine: {orders: duplicate}}]")+"sync: {schema: false}\n", orders)
	wantResult(t, got, "destination.tables", proto.ResultFailure, "the task says engine duplicate")

	// With the source's definitions: the existing table's key against the
	// source's primary key, column names, a keyless table made unique,
	// and lossy types. (A keyless table is a Duplicate one by default.)
	ordersDef := proto.TableDef{ID: orders, PrimaryKey: []string{"id", "v"}, Columns: []proto.ColumnDef{
		{Name: "id", Type: "integer", TypeOID: 23}, {Name: "v", Type: "text", TypeOID: 25}}}
	logDef := proto.TableDef{ID: proto.TableID{Schema: "public", Name: "log"}, Columns: []proto.ColumnDef{
		{Name: "1st", Type: "integer", TypeOID: 23}, {Name: "at", Type: "timestamp with time zone", TypeOID: 1184}}}
	got = precheckFacts(t, task("root", "", "[{schema: public, engine: {log: unique}}]")+"sync: {schema: false}\n",
		&proto.SourceFacts{Tables: []proto.TableID{orders, logDef.ID}, Defs: []proto.TableDef{ordersDef, logDef}})
	wantResult(t, got, "destination.tables", proto.ResultFailure, "the source's primary key is (id, v)")
	wantResult(t, got, "destination.schema", proto.ResultFailure, `column "1st"`)
	wantResult(t, got, "destination.schema", proto.ResultFailure, "engine.log: duplicate")
	wantResult(t, got, "destination.types", proto.ResultPass, "public.log.at (timestamp with time zone): loads as a UTC DATETIMEV2")
	got = precheckFacts(t, task("root", "", `[{schema: public, engine: {log: duplicate}, rename: {"log.1st": first}}]`)+"sync: {schema: false}\n",
		&proto.SourceFacts{Tables: []proto.TableID{logDef.ID}, Defs: []proto.TableDef{logDef}})
	wantResult(t, got, "destination.schema", proto.ResultPass, "1 table(s)")
}
