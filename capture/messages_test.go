package capture

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The heartbeat is a logical decoding message, no row: a user's FOR ALL
// TABLES publication beside the task publishes no Sluice table, the
// capture still publishes the task's heartbeats (not another task's) as
// rows of proto.HeartbeatTable at increasing positions, after the rows
// committed before them, and the slot moves.
func TestHeartbeatIsAMessage(t *testing.T) {
	ctx := context.Background()
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, `CREATE TABLE items (id int PRIMARY KEY); CREATE PUBLICATION all_pub FOR ALL TABLES`, items)
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	// Another task's heartbeat and someone else's message, decoded by
	// this slot too.
	testenv.MustExec(t, src, `SELECT pg_logical_emit_message(false, 'sluice', '{"task":"other","ts":1}');
		SELECT pg_logical_emit_message(false, 'someone', 'x')`)
	c, cancel, done := f.start(t)
	testenv.MustExec(t, src, `INSERT INTO items SELECT generate_series(1, 5)`)

	var last proto.Position
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		batches := f.readAll(t, items)
		if len(batches) == 0 {
			return fmt.Errorf("no rows yet")
		}
		b := batches[len(batches)-1]
		last = b.Rows[len(b.Rows)-1].Pos
		return nil
	})
	// Two heartbeats decoded after the rows were published (RowsCaptured
	// counts heartbeats too).
	seen := c.Stats.RowsCaptured.Load()
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := c.Stats.RowsCaptured.Load() - seen; n < 2 {
			return fmt.Errorf("%d heartbeats since the rows", n)
		}
		return nil
	})
	// Invariant 1 on an idle table: the heartbeats move the slot past the
	// rows, never past what JetStream acknowledged.
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		info, err := LookupSlot(ctx, src, f.task)
		if err != nil {
			return err
		}
		if info.ConfirmedLSN <= last.LSN {
			return fmt.Errorf("slot confirmed %s, the last row at %s", info.ConfirmedLSN, last.LSN)
		}
		if proto.LSN(c.Stats.ConfirmedLSN.Load()) < info.ConfirmedLSN {
			return fmt.Errorf("slot ahead of what capture confirmed")
		}
		return nil
	})
	if c.Stats.ChangesCaptured.Load() != 5 {
		t.Fatalf("%d changes captured, want the 5 rows (heartbeats left out)", c.Stats.ChangesCaptured.Load())
	}
	cancel()
	done <- <-done // stopped; the cleanup waits on done too

	var prev proto.Position
	after := 0
	for _, b := range f.readAll(t, proto.HeartbeatTable) {
		if b.IsBoundary() {
			continue
		}
		if len(b.Rows) != 1 || len(b.Columns) != 2 {
			t.Fatalf("heartbeat batch: %d rows, %d columns", len(b.Rows), len(b.Columns))
		}
		r := b.Rows[0]
		if task := string(r.New.Values[0]); task != f.task {
			t.Fatalf("heartbeat of task %q in task %s's stream", task, f.task)
		}
		if !prev.Less(r.Pos) {
			t.Fatalf("heartbeat at %s after one at %s", r.Pos, prev)
		}
		if r.CommitTimeUS < time.Now().Add(-time.Minute).UnixMicro() || r.CommitTimeUS > time.Now().Add(time.Minute).UnixMicro() {
			t.Fatalf("heartbeat time %d", r.CommitTimeUS)
		}
		if last.Less(r.Pos) {
			after++
		}
		prev = r.Pos
	}
	if after < 2 {
		t.Fatalf("%d heartbeats after the last row at %s, want 2 or more", after, last)
	}
	assertNothingPublishable(t, src)
}

// assertNothingPublishable: no table in schema sluice is one a
// publication can carry, and the user's all_pub lists none.
func assertNothingPublishable(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var tables []string
	err := conn.QueryRow(context.Background(), `SELECT coalesce(array_agg(c.relname::text), '{}') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'sluice' AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'`).Scan(&tables)
	if err != nil || len(tables) > 0 {
		t.Fatalf("publishable tables in schema sluice: %v (%v)", tables, err)
	}
	var published []string
	err = conn.QueryRow(context.Background(), `SELECT coalesce(array_agg(tablename::text), '{}') FROM pg_publication_tables
		WHERE pubname = 'all_pub' AND schemaname = 'sluice'`).Scan(&published)
	if err != nil || len(published) > 0 {
		t.Fatalf("all_pub publishes %v of schema sluice (%v)", published, err)
	}
}
