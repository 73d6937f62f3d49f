package node_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// twoWayPair is two clusters with commit timestamps on, each able to be
// source and destination.
func twoWayPair(t *testing.T) pair {
	t.Helper()
	opts := testenv.PostgresOptions{Settings: []string{"track_commit_timestamp = on"}}
	return pair{src: testenv.NewPostgres(t, opts), dst: testenv.NewPostgres(t, opts)}
}

// twoWayDB creates database db on both sides and returns connections to it.
func twoWayDB(t *testing.T, p pair, db string) (a, b *pgx.Conn) {
	t.Helper()
	return newDB(t, p.src, db), newDB(t, p.dst, db)
}

// newDB creates database db in pg and returns a connection to it: tests
// that need several databases share a cluster, which costs seconds to
// start where a database costs a fraction of one.
func newDB(t *testing.T, pg *testenv.Postgres, db string) *pgx.Conn {
	t.Helper()
	if err := pg.Exec(context.Background(), testenv.DefaultDB, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return testenv.Conn(t, pg.DSN(db))
}

func twoWayYAML(name string, p pair, db, policy string) []byte {
	return []byte(fmt.Sprintf(`name: %s
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
two_way: { conflicts: %s }
objects: [{ schema: public }]
`, name, p.src.DSN(db), p.dst.DSN(db), policy))
}

// waitTwoWay waits until both directions of a two-way task stream
// changes.
func waitTwoWay(t *testing.T, c *coordinator.Client, name string) {
	t.Helper()
	testenv.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		st, err := c.GetTask(context.Background(), name)
		if err != nil {
			return err
		}
		if st.State == proto.StateFailed {
			t.Fatalf("task failed: %+v", st.LastError)
		}
		if st.TwoWay == nil {
			t.Fatalf("task %s shows no two_way status", name)
		}
		f, r := st.TwoWay.Forward, st.TwoWay.Reverse
		if f.Phase != proto.PhaseIncremental || r.Phase != proto.PhaseIncremental || r.State != proto.StateRunning {
			return fmt.Errorf("forward %s/%s, reverse %s/%s (%+v %+v)", f.Phase, f.State, r.Phase, r.State, f.LastError, r.LastError)
		}
		return nil
	})
}

// rowsOf reads t as id -> "v|u".
func rowsOf(ctx context.Context, conn *pgx.Conn) (map[int]string, error) {
	rows, err := conn.Query(ctx, `SELECT id, coalesce(v, 'NULL') || '|' || coalesce(u::text, 'NULL') FROM t`)
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for rows.Next() {
		var id int
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			return nil, err
		}
		out[id] = s
	}
	return out, rows.Err()
}

// xmins reads t as id -> xmin: a row rewritten (sent back and forth)
// changes its xmin.
func xmins(ctx context.Context, conn *pgx.Conn) (map[int]string, error) {
	rows, err := conn.Query(ctx, `SELECT id, xmin::text FROM t`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var id int
		var x string
		if err := rows.Scan(&id, &x); err != nil {
			return nil, err
		}
		out[id] = x
	}
	return out, rows.Err()
}

// conflictRows reads a side's conflict log for task as sorted
// "direction kind resolution key" lines.
func conflictRows(ctx context.Context, conn *pgx.Conn, task string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT direction || ' ' || kind || ' ' || resolution || ' ' || (key->>'id') FROM sluice.conflicts WHERE task = $1 ORDER BY 1`, task)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// The crossing: changes each side makes while the other cannot see them
// (the task paused, or Sluice down), so that every pair crosses the other
// and each conflict of issue 17 is certain: the same key inserted on both
// sides (600), the same row updated on both (501), a row deleted on one
// side and updated on the other (502), a unique-key collision (700, 701).
// B commits last.
const (
	crossingSeed = `INSERT INTO t VALUES (501, 'r501', 501), (502, 'r502', 502)`
	crossingA    = `BEGIN;
		INSERT INTO t VALUES (600, 'a', NULL);
		UPDATE t SET v = 'a1' WHERE id = 501;
		DELETE FROM t WHERE id = 502;
		INSERT INTO t VALUES (700, 'a', 7777);
		COMMIT`
	crossingB = `BEGIN;
		INSERT INTO t VALUES (600, 'b', NULL);
		UPDATE t SET v = 'b1' WHERE id = 501;
		UPDATE t SET v = 'b2' WHERE id = 502;
		INSERT INTO t VALUES (701, 'b', 7777);
		COMMIT`
)

// crossingIDs are the rows the crossing touches.
var crossingIDs = []int{501, 502, 600, 700, 701}

// crossingOutcome is what each side holds of the crossing's rows, and
// logs, under a policy.
type crossingOutcome struct {
	wantA, wantB map[int]string
	logA, logB   []string
}

var crossingOutcomes = map[string]crossingOutcome{
	// Updates of existing rows are not conflicts: each side takes the
	// other's. The delete meets its row and applies; the update of the
	// deleted row becomes an insert.
	proto.ConflictIgnore: {
		wantA: map[int]string{600: "a|NULL", 501: "b1|501", 502: "b2|502", 700: "a|7777"},
		wantB: map[int]string{600: "b|NULL", 501: "a1|501", 701: "b|7777"},
		logA:  []string{"reverse insert_exists kept_local 600", "reverse unique_conflict kept_local 701", "reverse update_missing inserted 502"},
		logB:  []string{"forward insert_exists kept_local 600", "forward unique_conflict kept_local 700"},
	},
	proto.ConflictOverwrite: {
		wantA: map[int]string{600: "b|NULL", 501: "b1|501", 502: "b2|502", 701: "b|7777"},
		wantB: map[int]string{600: "a|NULL", 501: "a1|501", 700: "a|7777"},
		logA:  []string{"reverse insert_exists overwritten 600", "reverse unique_conflict overwritten 701", "reverse update_missing inserted 502"},
		logB:  []string{"forward insert_exists overwritten 600", "forward unique_conflict overwritten 700"},
	},
	// B wrote last: its versions win; the delete wins over the concurrent
	// update on both sides.
	proto.ConflictLastWriterWins: {
		wantA: map[int]string{600: "b|NULL", 501: "b1|501", 701: "b|7777"},
		wantB: map[int]string{600: "b|NULL", 501: "b1|501", 701: "b|7777"},
		logA:  []string{"reverse insert_exists overwritten 600", "reverse unique_conflict overwritten 701", "reverse update_missing skipped 502"},
		logB:  []string{"forward delete_stale deleted 502", "forward insert_exists kept_local 600", "forward unique_conflict kept_local 700", "forward update_stale kept_local 501"},
	},
}

// TestTwoWaySyncPolicies runs a two-way task per conflict policy, each in
// its own pair of databases: changes on each side reach the other exactly
// once (no loop); then the crossing, made while the task is paused, ends
// on each side as its policy says, row by row, with the conflicts logged
// at the side that saw them and counted by task get; last_writer_wins
// leaves both sides equal and no row rewritten once writes stop. Under
// task_failed the first conflict stops the task, naming the row. Delete
// leaves both sides without slots, publications or origins.
func TestTwoWaySyncPolicies(t *testing.T) {
	p := twoWayPair(t)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	ctx := context.Background()
	steady := map[int]string{501: "r501|501", 502: "r502|502", 100: "a100|NULL", 200: "b200|NULL"}
	for i := 1; i <= 10; i++ {
		steady[i] = fmt.Sprintf("r%d|%d", i, i)
	}
	type run struct {
		policy, name string
		a, b         *pgx.Conn
	}
	var runs []run
	for _, policy := range []string{proto.ConflictIgnore, proto.ConflictOverwrite, proto.ConflictLastWriterWins, proto.ConflictTaskFailed} {
		name := "tw-" + strings.ReplaceAll(policy, "_", "-")
		a, b := twoWayDB(t, p, strings.ReplaceAll(name, "-", "_"))
		testenv.MustExec(t, a, `CREATE TABLE t (id int PRIMARY KEY, v text, u int UNIQUE);
			INSERT INTO t SELECT i, 'r' || i, i FROM generate_series(1, 10) i; `+crossingSeed)
		createTask(t, c, twoWayYAML(name, p, strings.ReplaceAll(name, "-", "_"), policy))
		runs = append(runs, run{policy: policy, name: name, a: a, b: b})
	}
	for _, r := range runs {
		waitTwoWay(t, c, r.name)
		// The copied rows are the forward direction's own at B, like the
		// rows it applies: last_writer_wins never takes a change made at
		// A during the copy for older than the copy.
		var foreign int
		if err := r.b.QueryRow(ctx, `SELECT count(*) FROM t LEFT JOIN pg_replication_origin o ON o.roident = (pg_xact_commit_timestamp_origin(t.xmin)).roident
			WHERE o.roname IS NULL OR NOT starts_with(o.roname, $1)`, "sluice:"+r.name+":fwd").Scan(&foreign); err != nil || foreign != 0 {
			t.Fatalf("%s: %d copied rows at B not written under the forward origin (%v)", r.name, foreign, err)
		}
		testenv.MustExec(t, r.a, `INSERT INTO t VALUES (100, 'a100', NULL)`)
		testenv.MustExec(t, r.b, `INSERT INTO t VALUES (200, 'b200', NULL)`)
	}
	for _, r := range runs {
		waitRows(t, r.a, steady)
		waitRows(t, r.b, steady)
		if _, err := c.PauseTask(ctx, r.name); err != nil {
			t.Fatal(err)
		}
	}
	assertNotRewritten(t, runs[0].name, runs[0].a, runs[0].b)
	for _, r := range runs {
		st, err := c.GetTask(ctx, r.name)
		if err != nil || st.TwoWay.Reverse.State != proto.StatePaused {
			t.Fatalf("%s: pause must stop the reverse direction too: %+v %v", r.name, st.TwoWay, err)
		}
		testenv.MustExec(t, r.a, crossingA)
	}
	time.Sleep(20 * time.Millisecond) // B's commits are later than A's (last_writer_wins)
	for _, r := range runs {
		testenv.MustExec(t, r.b, crossingB)
		if _, err := c.ResumeTask(ctx, r.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		t.Run(r.policy, func(t *testing.T) {
			if r.policy == proto.ConflictTaskFailed {
				checkTaskFailed(t, c, r.name, r.a, r.b)
				return
			}
			out := crossingOutcomes[r.policy]
			for _, side := range []struct {
				conn *pgx.Conn
				want map[int]string
				log  []string
			}{{r.a, out.wantA, out.logA}, {r.b, out.wantB, out.logB}} {
				exp := maps.Clone(steady)
				delete(exp, 501)
				delete(exp, 502)
				maps.Copy(exp, side.want)
				waitRows(t, side.conn, exp)
				waitConflicts(t, side.conn, r.name, side.log)
			}
			if r.policy == proto.ConflictLastWriterWins {
				assertNotRewritten(t, r.name, r.a, r.b)
			}
			st, err := c.GetTask(ctx, r.name)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, cc := range st.TwoWay.Conflicts {
				total += cc.Count
			}
			if want := int64(len(out.logA) + len(out.logB)); total != want || st.TwoWay.ConflictsError != "" || st.State != proto.StateRunning {
				t.Fatalf("task get: %s, %d conflicts (%+v, %s); the logs hold %d", st.State, total, st.TwoWay.Conflicts, st.TwoWay.ConflictsError, want)
			}
		})
	}
	// /metrics counts the conflicts this node's apply groups saw, and the
	// peer transactions its captures dropped (the counters are the
	// process's: with -count=N they hold earlier runs' too).
	metrics := scrape(t, n.URL, n.Token)
	for _, want := range []string{
		`sluice_twoway_conflicts_total{direction="forward",kind="insert_exists",resolution="kept_local",task="tw-ignore"} `,
		`sluice_twoway_conflicts_total{direction="reverse",kind="update_missing",resolution="skipped",task="tw-last-writer-wins"} `,
		`sluice_task_peer_transactions_dropped_total{task="tw-overwrite"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Delete leaves both sides clean: slots, publications, origins, DDL
	// capture (the conflict log stays, for the record).
	for _, r := range runs {
		if err := c.DeleteTask(ctx, r.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		for _, conn := range []*pgx.Conn{r.a, r.b} {
			if err := twoWayLeftovers(ctx, conn); err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
		}
	}
}

// checkTaskFailed: under task_failed the crossing's first conflict, the
// insert of 600 that exists, stops both directions; the task shows failed
// with the row named, both sides log it, and nothing of the failed
// batches is written.
func checkTaskFailed(t *testing.T, c *coordinator.Client, name string, a, b *pgx.Conn) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		st, err := c.GetTask(context.Background(), name)
		if err != nil {
			return err
		}
		f, r := st.TwoWay.Forward, st.TwoWay.Reverse
		if st.State != proto.StateFailed || f.State != proto.StateFailed || r.State != proto.StateFailed {
			return fmt.Errorf("task %s, forward %s, reverse %s", st.State, f.State, r.State)
		}
		for _, d := range []proto.DirectionStatus{f, r} {
			if msg := d.LastError.Message; !strings.Contains(msg, "600") || !strings.Contains(msg, "insert_exists") || !strings.Contains(msg, "public.t") {
				t.Fatalf("%s's error does not name the row: %s", d.Task, msg)
			}
		}
		return nil
	})
	// A kill between logging the conflict and recording the failure runs
	// the direction once more, which logs it again: compare distinct rows.
	waitConflicts(t, a, name, []string{"reverse insert_exists failed 600"}, true)
	waitConflicts(t, b, name, []string{"forward insert_exists failed 600"}, true)
	for _, side := range []struct {
		conn   *pgx.Conn
		v, own string
	}{{a, "a|NULL", "a1|501"}, {b, "b|NULL", "b1|501"}} {
		rows, err := rowsOf(context.Background(), side.conn)
		if err != nil {
			t.Fatal(err)
		}
		if rows[600] != side.v || rows[501] != side.own {
			t.Fatalf("a failed batch was written: %v", sortedRows(rows))
		}
	}
}

// waitRows waits until conn's t holds exactly want.
func waitRows(t *testing.T, conn *pgx.Conn, want map[int]string) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		got, err := rowsOf(context.Background(), conn)
		if err != nil {
			return err
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("rows differ:\n got  %v\n want %v", sortedRows(got), sortedRows(want))
		}
		return nil
	})
}

func sortedRows(m map[int]string) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%d=%s", id, m[id]))
	}
	return out
}

// waitConflicts waits until a side's conflict log is exactly want.
func waitConflicts(t *testing.T, conn *pgx.Conn, task string, want []string, distinct ...bool) {
	t.Helper()
	slices.Sort(want)
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		got, err := conflictRows(context.Background(), conn, task)
		if err != nil {
			return err
		}
		if len(distinct) > 0 && distinct[0] {
			got = slices.Compact(got)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("conflicts logged:\n got  %q\n want %q", got, want)
		}
		return nil
	})
}

// assertNotRewritten checks that no row changes on either side for a
// while: nothing goes around in a loop.
func assertNotRewritten(t *testing.T, task string, a, b *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	before := [2]map[int]string{}
	for i, conn := range []*pgx.Conn{a, b} {
		m, err := xmins(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = m
	}
	time.Sleep(3 * time.Second) // longer than a few apply rounds of both directions
	for i, conn := range []*pgx.Conn{a, b} {
		m, err := xmins(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(m, before[i]) {
			t.Fatalf("%s: rows rewritten at side %d once writes stopped (a loop): xmin before %v, after %v", task, i, before[i], m)
		}
	}
}

// twoWayLeftovers names the replication objects left in a database.
func twoWayLeftovers(ctx context.Context, conn *pgx.Conn) error {
	var slots, pubs, triggers, origins int
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()),
		(SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_event_trigger),
		(SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'sluice:%')`).Scan(&slots, &pubs, &triggers, &origins)
	if err != nil {
		return err
	}
	if slots+pubs+triggers+origins != 0 {
		return fmt.Errorf("left behind: %d slots, %d publications, %d event triggers, %d replication origins", slots, pubs, triggers, origins)
	}
	return nil
}

// Bad input for two-way: each refusal names the field or check with its
// fix, and nothing is created; the reverse direction cannot be acted on
// alone.
func TestTwoWayRefusals(t *testing.T) {
	p := newPair(t) // track_commit_timestamp off
	ctx := context.Background()
	replica := testenv.NewPostgres(t, testenv.PostgresOptions{WALLevel: "replica"})
	small := testenv.NewPostgres(t, testenv.PostgresOptions{MaxReplicationSlots: 3})
	a := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, a, `CREATE TABLE keyed (id serial PRIMARY KEY, v text); CREATE TABLE nokey (v text);
		ALTER TABLE nokey REPLICA IDENTITY FULL`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := func(dst, tables, extra string) []byte {
		return []byte(fmt.Sprintf("name: tw\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, tables: [%s]}]\n%s",
			p.src.DSN(testenv.DefaultDB), dst, tables, extra))
	}
	dst := p.dst.DSN(testenv.DefaultDB)
	for _, tc := range []struct {
		name string
		spec []byte
		want []string
	}{
		{"keyless table", spec(dst, "keyed, nokey", "two_way: {}\n"), []string{"two_way.primary_keys", "public.nokey"}},
		{"commit timestamps off", spec(dst, "keyed", "two_way: {conflicts: last_writer_wins}\n"),
			[]string{"two_way.source.track_commit_timestamp", "two_way.destination.track_commit_timestamp", "track_commit_timestamp = on"}},
		{"destination not logical", spec(replica.DSN(testenv.DefaultDB), "keyed", "two_way: {}\n"), []string{"two_way.destination.wal_level", "wal_level = logical"}},
		{"too few origins", spec(small.DSN(testenv.DefaultDB), "keyed", "two_way: {}\n"), []string{"two_way.destination.replication_origins_free", "raise max_replication_slots"}},
		{"unknown policy", spec(dst, "keyed", "two_way: {conflicts: newest}\n"), []string{"two_way.conflicts", "last_writer_wins"}},
		{"kafka", []byte(fmt.Sprintf("name: tw\nsource: {dsn: %q}\ndestination: {type: kafka, brokers: [127.0.0.1:1]}\nobjects: [{schema: public}]\ntwo_way: {}\n", p.src.DSN(testenv.DefaultDB))),
			[]string{"two_way: needs a PostgreSQL destination"}},
		{"filter", []byte(fmt.Sprintf("name: tw\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nobjects: [{schema: public, filter: {keyed: \"id > 1\"}}]\ntwo_way: {}\n", p.src.DSN(testenv.DefaultDB), dst)),
			[]string{"objects[0].filter", "two-way sync refuses it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateTask(ctx, tc.spec)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
	for _, pg := range []*testenv.Postgres{p.src, p.dst} {
		if err := twoWayLeftovers(ctx, testenv.Conn(t, pg.DSN(testenv.DefaultDB))); err != nil {
			t.Fatal(err)
		}
	}

	// A serial key on both sides draws from the same range: a warning,
	// with how to split the sequences; acknowledged, the task runs.
	report, err := c.Precheck(ctx, spec(dst, "keyed", "two_way: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, ch := range report.Checks {
		if ch.Check == "two_way.sequences" && ch.Result == proto.ResultWarning && strings.Contains(ch.Fix, "INCREMENT BY 2") {
			warned = true
		}
	}
	if !warned {
		t.Fatalf("no sequence warning: %+v", report.Checks)
	}
	if _, err := c.CreateTask(ctx, spec(dst, "keyed", "two_way: {}\n"), "two_way.sequences"); err != nil {
		t.Fatal(err)
	}
	waitTwoWay(t, c, "tw")
	// Only the two-way task acts on its reverse direction; the list shows
	// the task once.
	for _, act := range []func() error{
		func() error { _, err := c.PauseTask(ctx, "tw__r"); return err },
		func() error { return c.DeleteTask(ctx, "tw__r") },
	} {
		var apiErr *coordinator.APIError
		if err := act(); !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(err.Error(), `two-way task "tw"`) {
			t.Fatalf("acting on the reverse direction: %v", err)
		}
	}
	if list, err := c.ListTasks(ctx); err != nil || len(list) != 1 || list[0].TwoWay == nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := c.DeleteTask(ctx, "tw"); err != nil {
		t.Fatal(err)
	}
	for _, pg := range []*testenv.Postgres{p.src, p.dst} {
		if err := twoWayLeftovers(ctx, testenv.Conn(t, pg.DSN(testenv.DefaultDB))); err != nil {
			t.Fatal(err)
		}
	}
}

// DDL travels forward only: a column added at the source reaches the
// destination, and the reverse direction goes on with it (its rows carry
// the new column back); the reverse direction installs no DDL capture.
func TestTwoWayForwardDDL(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	a, b := testenv.Conn(t, p.src.DSN(testenv.DefaultDB)), testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, a, `CREATE TABLE t (id int PRIMARY KEY, v text, u int UNIQUE); INSERT INTO t VALUES (1, 'one', NULL)`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, []byte(fmt.Sprintf("name: twddl\nsource: {dsn: %q}\ndestination: {type: postgres, dsn: %q}\nsync: {ddl: true}\ntwo_way: {conflicts: overwrite}\nobjects: [{schema: public}]\n",
		p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB))))
	waitTwoWay(t, c, "twddl")
	testenv.MustExec(t, a, `ALTER TABLE t ADD COLUMN w int NOT NULL DEFAULT 7`)
	testenv.MustExec(t, a, `INSERT INTO t VALUES (2, 'two', NULL, 8)`)
	waitEqual(t, p, []string{"public.t"}, time.Minute)
	testenv.MustExec(t, b, `INSERT INTO t VALUES (3, 'three', NULL, 9); UPDATE t SET w = 10 WHERE id = 1`)
	waitEqual(t, p, []string{"public.t"}, time.Minute)
	var triggers int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM pg_event_trigger`).Scan(&triggers); err != nil || triggers != 0 {
		t.Fatalf("DDL capture at the destination: %d event triggers (%v)", triggers, err)
	}
	assertNotRewritten(t, "twddl", a, b)
	// Delete removes the DDL capture too, with the slots, publications
	// and origins of both directions.
	if err := c.DeleteTask(ctx, "twddl"); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*pgx.Conn{a, b} {
		if err := twoWayLeftovers(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
}
