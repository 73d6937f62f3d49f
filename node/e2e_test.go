package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// pair is a source and a destination cluster.
type pair struct {
	src, dst *testenv.Postgres
}

func newPair(t *testing.T) pair {
	t.Helper()
	return pair{src: testenv.NewPostgres(t), dst: testenv.NewPostgres(t)}
}

func taskYAML(name string, p pair, extra string) []byte {
	return dsnTaskYAML(name, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB), extra)
}

// dsnTaskYAML is taskYAML between any two databases: a PostgreSQL
// destination, schema public, then extra (lines of the objects entry, or
// top-level keys).
func dsnTaskYAML(name, srcDSN, dstDSN, extra string) []byte {
	return []byte(fmt.Sprintf(`name: %s
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
objects:
  - schema: public
%s`, name, srcDSN, dstDSN, extra))
}

func createTask(t *testing.T, c *coordinator.Client, spec []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.CreateTask(ctx, spec); err != nil {
		t.Fatalf("create task: %v", err)
	}
}

// waitPhase polls the task until it reaches phase, failing on a failed
// task.
func waitPhase(t *testing.T, c *coordinator.Client, name string, phase proto.Phase, timeout time.Duration) *proto.TaskStatus {
	t.Helper()
	var st *proto.TaskStatus
	testenv.CheckFor(t, timeout, 100*time.Millisecond, func() error {
		var err error
		st, err = c.GetTask(context.Background(), name)
		if err != nil {
			return err
		}
		if st.State == proto.StateFailed {
			t.Fatalf("task failed: %+v", st.LastError)
		}
		if st.Phase != phase {
			return fmt.Errorf("phase %s state %s, waiting for %s (last error: %+v)", st.Phase, st.State, phase, st.LastError)
		}
		return nil
	})
	return st
}

// waitEqual polls until source and destination have equal contents.
func waitEqual(t *testing.T, p pair, tables []string, timeout time.Duration) {
	t.Helper()
	waitConnsEqual(t, testenv.Conn(t, p.src.DSN(testenv.DefaultDB)), testenv.Conn(t, p.dst.DSN(testenv.DefaultDB)), tables, timeout)
}

// waitConnsEqual is waitEqual between any two databases.
func waitConnsEqual(t *testing.T, src, dst *pgx.Conn, tables []string, timeout time.Duration) {
	t.Helper()
	testenv.CheckFor(t, timeout, 250*time.Millisecond, func() error {
		return testenv.CompareTables(context.Background(), src, dst, tables)
	})
}

// Deleting a task drops everything it made in the source.
func TestDeleteTaskCleansSource(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, taskYAML("gone", p, ""))
	waitPhase(t, c, "gone", proto.PhaseIncremental, time.Minute)
	if err := c.DeleteTask(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(ctx, srcConn); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTask(ctx, "gone"); err == nil {
		t.Fatal("task still listed after delete")
	}
	// The same name can be used again, and starts from scratch.
	testenv.MustExec(t, srcConn, `INSERT INTO t VALUES (2, 'b')`)
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, dst, `DROP TABLE t`)
	createTask(t, c, taskYAML("gone", p, ""))
	waitEqual(t, p, []string{"public.t"}, time.Minute)
}

// Bad input: each problem is named with its fix, and nothing is created
// in the source.
func TestCreateTaskRejectsBadInput(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	replica := testenv.NewPostgres(t, testenv.PostgresOptions{WALLevel: "replica"})
	// A source whose only replication slot is taken by someone else.
	full := testenv.NewPostgres(t, testenv.PostgresOptions{MaxReplicationSlots: 1})
	fullConn := testenv.Conn(t, full.DSN(testenv.DefaultDB))
	testenv.MustExec(t, fullConn, `CREATE TABLE keyed (id int PRIMARY KEY)`)
	testenv.MustExec(t, fullConn, `SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')`)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE keyed (id int PRIMARY KEY);
		CREATE TABLE nokey (v text);
		CREATE ROLE app LOGIN PASSWORD 'right' IN ROLE `+testenv.PasswordRole+`;
		CREATE ROLE weak LOGIN;
		GRANT SELECT ON keyed TO weak`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	dstDSN := p.dst.DSN(testenv.DefaultDB)

	cases := []struct {
		name string
		spec string
		want []string // substrings of the error
	}{
		{"unknown field", fmt.Sprintf("name: x\nsource: {dsn: %q, dsnn: 1}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public}]\n", p.src.DSN(testenv.DefaultDB), dstDSN),
			[]string{"source.dsnn"}},
		{"bad value", fmt.Sprintf("name: Bad Name\nsource: {dsn: %q}\ndestination: {type: mysql, dsn: %q}\nobjects: [{schema: public}]\nretry: {connection: forever}\n", p.src.DSN(testenv.DefaultDB), dstDSN),
			[]string{"name:", "destination.type", "retry"}},
		{"wrong password", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, tables: [keyed]}]\n", p.src.UserDSN("app", "wrong", testenv.DefaultDB), dstDSN),
			[]string{"source.connect", "password authentication failed", "password in source.dsn"}},
		{"nobody listening", fmt.Sprintf("name: x\nsource: {dsn: \"postgres://postgres@127.0.0.1:1/postgres\"}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public}]\n", dstDSN),
			[]string{"source.connect", "host and port"}},
		{"wal_level replica", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public}]\n", replica.DSN(testenv.DefaultDB), dstDSN),
			[]string{"source.wal_level", "wal_level = logical"}},
		{"no primary key", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public}]\n", p.src.DSN(testenv.DefaultDB), dstDSN),
			[]string{"source.replica_identity", "public.nokey", "REPLICA IDENTITY FULL"}},
		{"missing privileges", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, tables: [keyed]}]\n", p.src.UserDSN("weak", "", testenv.DefaultDB), dstDSN),
			[]string{"source.privileges.replication", "REPLICATION"}},
		{"DDL sync without a superuser", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, tables: [keyed]}]\nsync: {ddl: true}\n", p.src.UserDSN("app", "right", testenv.DefaultDB), dstDSN),
			[]string{"source.privileges.event_trigger", "SUPERUSER", "sync.ddl: false"}},
		{"no free slot", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public}]\n", full.DSN(testenv.DefaultDB), dstDSN),
			[]string{"source.replication_slots", "max_replication_slots"}},
		{"missing table", fmt.Sprintf("name: x\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, tables: [nosuch]}]\n", p.src.DSN(testenv.DefaultDB), dstDSN),
			[]string{"source.objects", "nosuch"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateTask(ctx, []byte(tc.spec))
			if err == nil {
				t.Fatal("accepted")
			}
			var apiErr *coordinator.APIError
			if !errors.As(err, &apiErr) || apiErr.Status >= 500 {
				t.Fatalf("want a 4xx API error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
	// Nothing half-created anywhere (the full source keeps only the slot
	// that was there before).
	testenv.MustExec(t, fullConn, `SELECT pg_drop_replication_slot('someone_else')`)
	for _, pg := range []*testenv.Postgres{p.src, replica, full} {
		conn := testenv.Conn(t, pg.DSN(testenv.DefaultDB))
		if err := testenv.SourceLeftovers(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := c.ListTasks(ctx); err != nil || len(list) != 0 {
		t.Fatalf("tasks after rejected creates: %v %v", list, err)
	}
}

// The precheck on its own: every check reported with its result, a
// warning that blocks a create until acknowledged by its id, nothing
// created by the precheck itself.
func TestPrecheckReport(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE EXTENSION citext; CREATE TABLE keyed (id int PRIMARY KEY, name citext)`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := []byte(taskYAML("checked", p, "conflicting_tables: ignore\n"))

	report, err := c.Precheck(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]proto.Problem{}
	for _, ch := range report.Checks {
		results[ch.Check] = ch
	}
	for _, id := range []string{"source.connect", "source.wal_level", "source.privileges.replication", "source.privileges.create",
		"source.replication_slots", "source.wal_senders", "source.slot_name", "source.publication", "source.replication_connection",
		"source.objects", "source.replica_identity", "source.privileges.select", "source.privileges.owner", "source.size",
		"destination.connect", "destination.privileges.create", "destination.space", "destination.naming", "destination.types",
		"destination.conflicting_tables"} {
		if r := results[id]; r.Result != proto.ResultPass {
			t.Errorf("check %s: %+v, want a pass", id, r)
		}
	}
	if !report.Passed || !strings.Contains(results["destination.space"].Message, "free") || !strings.Contains(results["destination.types"].Message, "citext") {
		t.Errorf("report: %+v", report)
	}

	// The table exists at the destination: conflicting_tables: ignore
	// warns, and the warning blocks until acknowledged.
	testenv.MustExec(t, testenv.Conn(t, p.dst.DSN(testenv.DefaultDB)), `CREATE EXTENSION citext; CREATE TABLE keyed (id int PRIMARY KEY, name citext)`)
	if report, err = c.Precheck(ctx, spec); err != nil || report.Passed {
		t.Fatalf("precheck with an existing table: %+v %v", report, err)
	}
	var warned bool
	for _, ch := range report.Checks {
		warned = warned || (ch.Check == "destination.conflicting_tables" && ch.Result == proto.ResultWarning && strings.Contains(ch.Message, "public.keyed"))
	}
	if !warned {
		t.Fatalf("no conflicting-tables warning: %+v", report.Checks)
	}
	if _, err := c.CreateTask(ctx, spec); err == nil || !strings.Contains(err.Error(), "--ignore destination.conflicting_tables") {
		t.Fatalf("create with an unacknowledged warning: %v", err)
	}
	if err := testenv.SourceLeftovers(ctx, srcConn); err != nil {
		t.Fatal(err)
	}
	if report, err = c.Precheck(ctx, spec, "destination.conflicting_tables"); err != nil || !report.Passed {
		t.Fatalf("precheck with the warning acknowledged: %+v %v", report, err)
	}
	testenv.MustExec(t, srcConn, `INSERT INTO keyed VALUES (1, 'Ada')`)
	if _, err := c.CreateTask(ctx, spec, "destination.conflicting_tables"); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, []string{"public.keyed"}, time.Minute)
}

// sync.full without incremental: a one-off copy that ends released and
// leaves no slot behind; sync.incremental without full: only changes made
// after the task started arrive.
func TestSyncPhaseSelection(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE once (id int PRIMARY KEY, v text); INSERT INTO once SELECT g, 'v' FROM generate_series(1, 1000) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()

	createTask(t, c, taskYAML("copy-only", p, "sync: { incremental: false }\n"))
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "copy-only")
		if err != nil {
			return err
		}
		if st.State != proto.StateReleased {
			return fmt.Errorf("phase %s state %s (%+v)", st.Phase, st.State, st.LastError)
		}
		return nil
	})
	waitEqual(t, p, []string{"public.once"}, 10*time.Second)
	if err := testenv.SourceLeftovers(ctx, src); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTask(ctx, "copy-only"); err != nil {
		t.Fatal(err)
	}

	// Changes only, into the table the copy made.
	createTask(t, c, taskYAML("changes-only", p, "sync: { schema: false, full: false }\n"))
	waitPhase(t, c, "changes-only", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, dst, `DELETE FROM once WHERE id > 10`)
	testenv.MustExec(t, src, `UPDATE once SET v = 'changed' WHERE id <= 5; INSERT INTO once VALUES (5000, 'new')`)
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		var changed, total int
		if err := dst.QueryRow(ctx, `SELECT count(*) FILTER (WHERE v = 'changed'), count(*) FROM once`).Scan(&changed, &total); err != nil {
			return err
		}
		if changed != 5 || total != 11 {
			st, _ := c.GetTask(ctx, "changes-only")
			return fmt.Errorf("%d changed of %d rows, want 5 of 11 (status %+v)", changed, total, st)
		}
		return nil
	})
}

// Pause stops the task where it is (the slot keeps the changes); resume
// catches up. A paused task's late status reports do not undo the pause.
func TestPauseResume(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE pr (id int PRIMARY KEY, v text); INSERT INTO pr VALUES (1, 'a')`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, taskYAML("pr", p, ""))
	waitPhase(t, c, "pr", proto.PhaseIncremental, time.Minute)
	waitEqual(t, p, []string{"public.pr"}, 30*time.Second)

	st, err := c.PauseTask(ctx, "pr")
	if err != nil || st.State != proto.StatePaused {
		t.Fatalf("pause: %v %+v", err, st)
	}
	testenv.MustExec(t, src, `INSERT INTO pr SELECT g, 'paused' FROM generate_series(2, 500) g`)
	// Nothing moves while paused: the heartbeat and the rows wait in the slot.
	time.Sleep(2 * time.Second)
	var rows int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM pr`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("paused task wrote: %d rows, %v", rows, err)
	}
	if st, err := c.GetTask(ctx, "pr"); err != nil || st.State != proto.StatePaused {
		t.Fatalf("still paused? %v %+v", err, st)
	}
	if _, err := c.ResumeTask(ctx, "pr"); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, []string{"public.pr"}, time.Minute)
	if st, err := c.GetTask(ctx, "pr"); err != nil || st.State != proto.StateRunning {
		t.Fatalf("after resume: %v %+v", err, st)
	}
}
