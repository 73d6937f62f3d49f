package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// source.publications: a user's FOR ALL TABLES publication is named; it
// is a warning only while an older Sluice's tables that it publishes are
// there, and PrepareSource drops those once no task uses them. The
// heartbeat needs no more than the replication user a task has.
func TestPrecheckPublications(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE items (id int PRIMARY KEY); CREATE ROLE repl LOGIN REPLICATION`)
	check := func() proto.Problem {
		t.Helper()
		spec, err := proto.ParseTaskSpec([]byte(fmt.Sprintf("name: t\nsource: {dsn: %q}\ndestination: {type: test, dsn: x}\nobjects: [{schema: public}]\n", pg.DSN("postgres"))))
		if err != nil {
			t.Fatal(err)
		}
		c := &proto.Checks{}
		Precheck(ctx, spec, c)
		for _, p := range c.Report().Checks {
			if p.Check == "source.publications" {
				return p
			}
		}
		t.Fatalf("no source.publications check: %+v", c.Report().Checks)
		return proto.Problem{}
	}
	if p := check(); p.Result != proto.ResultPass || p.Message != "no FOR ALL TABLES publication" {
		t.Fatalf("no publication: %+v", p)
	}
	testenv.MustExec(t, conn, `CREATE PUBLICATION all_pub FOR ALL TABLES`)
	if p := check(); p.Result != proto.ResultPass || !strings.Contains(p.Message, "publication all_pub (FOR ALL TABLES) publish no table of Sluice's") {
		t.Fatalf("FOR ALL TABLES, nothing of Sluice's: %+v", p)
	}
	// An older Sluice's heartbeat table, still listed by another task's
	// publication.
	testenv.MustExec(t, conn, `CREATE SCHEMA sluice; CREATE TABLE sluice.heartbeat (task text PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now());
		CREATE PUBLICATION sluice_old FOR TABLE sluice.heartbeat WHERE (task = 'old')`)
	p := check()
	if p.Result != proto.ResultWarning || !strings.Contains(p.Message, "all_pub (FOR ALL TABLES) publish Sluice's sluice.heartbeat") || !strings.Contains(p.Fix, "restart the tasks") {
		t.Fatalf("FOR ALL TABLES with an older Sluice's table: %+v", p)
	}
	items := []proto.TableID{{Schema: "public", Name: "items"}}
	if err := PrepareSource(ctx, conn, "new", items, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if p := check(); p.Result != proto.ResultWarning {
		t.Fatalf("the old task still uses its heartbeat table: %+v", p)
	}
	// The old task restarts on this version: its publication no longer
	// lists the table, which goes.
	if err := PrepareSource(ctx, conn, "old", items, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if p := check(); p.Result != proto.ResultPass {
		t.Fatalf("after the last task moved on: %+v", p)
	}
	// The heartbeat as the task's replication user writes it.
	repl := testenv.Conn(t, pg.UserDSN("repl", "", "postgres"))
	if _, err := repl.Exec(ctx, heartbeatSQL, "new"); err != nil {
		t.Fatalf("heartbeat as a replication user: %v", err)
	}
	for _, task := range []string{"new", "old"} {
		if err := DropTaskObjects(ctx, conn, task); err != nil {
			t.Fatal(err)
		}
	}
	testenv.MustExec(t, conn, `DROP PUBLICATION all_pub`)
	if err := testenv.SourceLeftovers(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
