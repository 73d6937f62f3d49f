package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// A user's own native replication beside Sluice: the source has a FOR
// ALL TABLES publication and a PostgreSQL subscription of it (a second
// database on the destination's cluster, with the application's table
// only). A Sluice task with DDL sync runs beside it: its heartbeats flow
// (the task reports a latency), a schema change is synced, and the
// native subscriber keeps up with the writes made after all that, with
// no apply error: Sluice put nothing into the publication it lacks.
// Deleting the task leaves the subscriber alone.
func TestNativeReplicationBesideSluice(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;
		CREATE PUBLICATION all_pub FOR ALL TABLES`)
	if err := p.dst.Exec(ctx, "postgres", "CREATE DATABASE native"); err != nil {
		t.Fatal(err)
	}
	native := testenv.Conn(t, p.dst.DSN("native"))
	testenv.MustExec(t, native, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	testenv.MustExec(t, native, fmt.Sprintf(`CREATE SUBSCRIPTION native_sub CONNECTION '%s' PUBLICATION all_pub`, p.src.DSN(testenv.DefaultDB)))
	t.Cleanup(func() { _ = p.dst.Exec(context.Background(), "native", "DROP SUBSCRIPTION native_sub") })
	waitConnsEqual(t, src, native, []string{"public.items"}, time.Minute)

	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := taskYAML("beside", p, "sync: { ddl: true }\n")
	report, err := c.Precheck(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	var pubCheck proto.Problem
	for _, ch := range report.Checks {
		if ch.Check == "source.publications" {
			pubCheck = ch
		}
	}
	if pubCheck.Result != proto.ResultPass || !strings.Contains(pubCheck.Message, "publication all_pub (FOR ALL TABLES) publish no table of Sluice's") {
		t.Fatalf("source.publications: %+v", pubCheck)
	}
	createTask(t, c, spec)
	waitPhase(t, c, "beside", proto.PhaseIncremental, 2*time.Minute)
	// Heartbeats flow: the latency is measured from them.
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "beside")
		if err != nil {
			return err
		}
		if st.LatencyMS == nil {
			return fmt.Errorf("no latency yet (no heartbeat applied)")
		}
		return nil
	})

	// The schema change, as a user of native replication makes it: at
	// the subscriber first. Then writes after the heartbeats and the
	// change.
	testenv.MustExec(t, native, `ALTER TABLE items ADD COLUMN n int`)
	testenv.MustExec(t, src, `ALTER TABLE items ADD COLUMN n int; CREATE INDEX items_v ON items (v)`)
	testenv.MustExec(t, src, `INSERT INTO items SELECT g, 'new', g FROM generate_series(101, 200) g;
		UPDATE items SET v = 'u', n = 1 WHERE id <= 50;
		DELETE FROM items WHERE id BETWEEN 60 AND 70`)
	waitEqual(t, p, []string{"public.items"}, 2*time.Minute)
	waitConnsEqual(t, src, native, []string{"public.items"}, 2*time.Minute)
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var idx bool
	if err := dst.QueryRow(ctx, `SELECT to_regclass('public.items_v') IS NOT NULL`).Scan(&idx); err != nil || !idx {
		t.Fatalf("the index did not reach Sluice's destination: %v %v", idx, err)
	}
	assertSubscriptionClean(t, native)

	// The task goes; the user's replication goes on.
	if err := c.DeleteTask(ctx, "beside"); err != nil {
		t.Fatal(err)
	}
	var sluiceSchema bool
	var triggers int
	if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'sluice'), (SELECT count(*) FROM pg_event_trigger)`).Scan(&sluiceSchema, &triggers); err != nil || sluiceSchema || triggers != 0 {
		t.Fatalf("left in the source: schema sluice %v, %d event triggers (%v)", sluiceSchema, triggers, err)
	}
	testenv.MustExec(t, src, `INSERT INTO items VALUES (1000, 'after', 0)`)
	waitConnsEqual(t, src, native, []string{"public.items"}, time.Minute)
	assertSubscriptionClean(t, native)
}

// assertSubscriptionClean: the native subscription had no apply or sync
// error (an unknown relation would be one), its worker runs, and its
// publication lists no table the subscriber lacks (REFRESH PUBLICATION
// fails on one).
func assertSubscriptionClean(t *testing.T, native *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	var applyErrors, syncErrors int64
	var running bool
	err := native.QueryRow(ctx, `SELECT s.apply_error_count, s.sync_error_count,
		EXISTS (SELECT 1 FROM pg_stat_subscription w WHERE w.subname = s.subname AND w.pid IS NOT NULL)
		FROM pg_stat_subscription_stats s WHERE s.subname = 'native_sub'`).Scan(&applyErrors, &syncErrors, &running)
	if err != nil || applyErrors != 0 || syncErrors != 0 || !running {
		t.Fatalf("native subscription: %d apply errors, %d sync errors, worker running %v (%v)", applyErrors, syncErrors, running, err)
	}
	testenv.MustExec(t, native, `ALTER SUBSCRIPTION native_sub REFRESH PUBLICATION`)
}
