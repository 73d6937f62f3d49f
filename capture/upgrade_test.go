package capture

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// A source an older Sluice prepared (heartbeat and DDL log tables in the
// task's publication, a trigger function writing the log, logged state
// tables): PrepareSource takes the heartbeat out and drops it, keeps the
// log published while the old function may still write it;
// InstallDDLCapture replaces the function, takes the log out and drops
// it, and makes the state unlogged, with its marker row. Twice changes
// nothing. A task without tables gets an empty publication.
func TestUpgradeFromSourceTables(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE items (id int PRIMARY KEY);
		CREATE SCHEMA sluice;
		CREATE TABLE sluice.heartbeat (task text PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now());
		INSERT INTO sluice.heartbeat VALUES ('t1');
		CREATE TABLE sluice.ddl_log (task text NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, tag text NOT NULL, query text,
			old_shape jsonb, new_shape jsonb, object jsonb, PRIMARY KEY (task, id));
		CREATE TABLE sluice.ddl_state (task text NOT NULL, relid oid NOT NULL, shape jsonb NOT NULL, PRIMARY KEY (task, relid));
		INSERT INTO sluice.ddl_state SELECT 't1', 'items'::regclass, '{"id": 1}';
		CREATE FUNCTION sluice.sluice_t1_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO sluice.ddl_log (task, tag) VALUES ('t1', TG_TAG); DELETE FROM sluice.ddl_log; END $$;
		CREATE PUBLICATION sluice_t1 FOR TABLE items, sluice.heartbeat WHERE (task = 't1'), sluice.ddl_log WHERE (task = 't1')`)
	items := []proto.TableID{{Schema: "public", Name: "items"}}
	published := func() string {
		t.Helper()
		var tables []string
		if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(schemaname || '.' || tablename ORDER BY schemaname, tablename), '{}') FROM pg_publication_tables WHERE pubname = 'sluice_t1'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		var left []string
		if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(c.relname::text || ':' || c.relpersistence::text ORDER BY c.relname), '{}') FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sluice' AND c.relkind = 'r'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(tables, left)
	}
	if err := PrepareSource(ctx, conn, "t1", items, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if got, want := published(), "[public.items sluice.ddl_log] [ddl_log:p ddl_state:p]"; got != want {
		t.Fatalf("after PrepareSource: %s, want %s", got, want)
	}
	for range 2 {
		if err := InstallDDLCapture(ctx, conn, "t1", items, []string{"public"}); err != nil {
			t.Fatal(err)
		}
		if got, want := published(), "[public.items] [ddl_state:u object_state:u]"; got != want {
			t.Fatalf("after InstallDDLCapture: %s, want %s", got, want)
		}
		if err := PrepareSource(ctx, conn, "t1", items, nil, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	var kept int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sluice.ddl_state WHERE task = 't1' AND relid IN (0, 'items'::regclass)`).Scan(&kept); err != nil || kept != 2 {
		t.Fatalf("%d recorded rows (%v), want the shape and the marker", kept, err)
	}
	if err := PrepareSource(ctx, conn, "t1", nil, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if got, want := published(), "[] [ddl_state:u object_state:u]"; got != want {
		t.Fatalf("without tables: %s, want %s", got, want)
	}
	if err := DropTaskObjects(ctx, conn, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
