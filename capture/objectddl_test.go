package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Object DDL capture: changes to views, routines, types, triggers, rules
// and comments of the task's scope arrive on the heartbeat subject in
// WAL order, each with the object as its command left it (not as it is
// later); renames say from where, drops what; objects out of scope and
// refreshes of materialized views give nothing.
func TestObjectDDLCapture(t *testing.T) {
	ctx := context.Background()
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, `CREATE TABLE items (id int PRIMARY KEY, v text);
		CREATE SCHEMA util; CREATE SCHEMA other;
		CREATE FUNCTION old_f(a int) RETURNS int LANGUAGE sql AS 'SELECT a';
		CREATE VIEW old_v AS SELECT id FROM items`)
	conn := testenv.Conn(t, f.pg.DSN("postgres"))
	stop := f.runWithDDLCapture(t, conn, []proto.TableID{items}, func(context.Context, *proto.DDLEvent) error { return nil })
	defer stop()

	testenv.MustExec(t, conn, `
		CREATE FUNCTION double(a int) RETURNS int LANGUAGE sql AS 'SELECT 2 * a';
		CREATE VIEW v1 AS SELECT id, double(id) AS d FROM items;
		CREATE OR REPLACE VIEW v1 AS SELECT id, double(id) AS d, v FROM items;
		ALTER VIEW v1 RENAME TO v2;
		COMMENT ON VIEW v2 IS 'doubled';
		COMMENT ON COLUMN items.v IS 'the value';
		CREATE FUNCTION util.stamp() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
		CREATE TRIGGER items_stamp BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION util.stamp();
		CREATE TYPE mood AS ENUM ('sad', 'ok');
		ALTER TYPE mood ADD VALUE 'happy';
		CREATE DOMAIN posint AS int CHECK (VALUE > 0);
		CREATE MATERIALIZED VIEW mv AS SELECT count(*) AS n FROM items;
		CREATE INDEX mv_n ON mv (n);
		REFRESH MATERIALIZED VIEW mv;
		CREATE FUNCTION other.ignored() RETURNS int LANGUAGE sql AS 'SELECT 1';
		CREATE VIEW other.ignored_v AS SELECT 1 AS one;
		DROP FUNCTION old_f(int);
		DROP VIEW old_v;
		DROP TRIGGER items_stamp ON items`)

	want := []string{
		"function public.double(integer)",
		"view public.v1",
		"view public.v1",
		"view public.v2 renamed from view public.v1",
		"comment VIEW public.v2",
		"comment COLUMN public.items.v",
		"function util.stamp()",
		"trigger items_stamp on public.items",
		"type public.mood",
		"type public.mood",
		"type public.posint",
		"materialized view public.mv",
		"materialized view public.mv",
		"dropped function public.old_f [integer]",
		"dropped view public.old_v",
		"dropped trigger public.items.items_stamp",
	}
	var events []*proto.ObjectEvent
	testenv.CheckFor(t, 20*time.Second, 200*time.Millisecond, func() error {
		events = nil
		for _, b := range f.readAll(t, proto.HeartbeatTable) {
			if !b.IsObjectEvent() {
				continue
			}
			ev, err := proto.DecodeObjectEvent(b.DDL)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		if len(events) < len(want) {
			return fmt.Errorf("%d object events, want %d", len(events), len(want))
		}
		return nil
	})
	var got []string
	for i, ev := range events {
		if i > 0 && !events[i-1].Pos.Less(ev.Pos) {
			t.Fatalf("event %d at %s, not after %s", i, ev.Pos, events[i-1].Pos)
		}
		var s string
		switch {
		case ev.Dropped != nil:
			s = "dropped " + ev.Dropped.Type + " " + strings.Join(ev.Dropped.Names, ".")
			if len(ev.Dropped.Args) > 0 {
				s += fmt.Sprint(" ", ev.Dropped.Args)
			}
		case ev.Object.Kind == proto.ObjectComment:
			s = "comment " + strings.SplitN(strings.TrimPrefix(ev.Object.DDL, "COMMENT ON "), " IS", 2)[0]
		default:
			s = ev.Object.Ident()
			if ev.Renamed != nil {
				s += " renamed from " + ev.Renamed.Type + " " + strings.Join(ev.Renamed.Names, ".")
			}
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("object events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each as its command left it: the first v1 has two columns, the
	// enum its two labels then three.
	if ddl := events[1].Object.DDL; strings.Contains(ddl, "v\n") || strings.Contains(ddl, "items.v") {
		t.Fatalf("first view definition has the later column: %s", ddl)
	}
	if ddl := events[8].Object.DDL; ddl != `CREATE TYPE "public"."mood" AS ENUM ('sad', 'ok')` || len(events[8].Object.After) != 1 {
		t.Fatalf("enum: %s %q", ddl, events[8].Object.After)
	}
	if after := events[9].Object.After; len(after) != 2 || after[1] != `ALTER TYPE "public"."mood" ADD VALUE IF NOT EXISTS 'happy' AFTER 'ok'` {
		t.Fatalf("enum after ADD VALUE: %q", after)
	}
	if ddl := events[10].Object.DDL; ddl != `CREATE DOMAIN "public"."posint" AS integer CONSTRAINT "posint_check" CHECK ((VALUE > 0))` {
		t.Fatalf("domain: %s", ddl)
	}
	if after := events[12].Object.After; len(after) != 1 || !strings.Contains(after[0], "CREATE INDEX IF NOT EXISTS mv_n") {
		t.Fatalf("materialized view index: %q", after)
	}
	if err := DropTaskObjects(ctx, conn, f.task); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
