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

// waitSame waits until the source expression and the destination table
// hold the same rows.
func waitSame(t *testing.T, p pair, srcExpr, dstTable string, timeout time.Duration) {
	t.Helper()
	waitConnsSame(t, testenv.Conn(t, p.src.DSN(testenv.DefaultDB)), testenv.Conn(t, p.dst.DSN(testenv.DefaultDB)), srcExpr, dstTable, timeout)
}

// waitConnsSame is waitSame between any two databases; dstTable may be a
// parenthesised query too (the rows of one source in a shared table).
func waitConnsSame(t *testing.T, src, dst *pgx.Conn, srcExpr, dstTable string, timeout time.Duration) {
	t.Helper()
	testenv.CheckFor(t, timeout, 250*time.Millisecond, func() error {
		return testenv.CompareTable(context.Background(), src, dst, srcExpr, dstTable)
	})
}

// An invalid row filter fails the precheck, named by its field, with its
// fix; nothing is created. A valid one passes on any column: on the key
// the publication filters, on another column the capture does.
func TestRowFilterPrecheck(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE plain (id int PRIMARY KEY, region text, up text GENERATED ALWAYS AS (upper(region)) STORED)`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	for filter, want := range map[string][]string{
		`nosuch = 1`:        {"source.filters", "cannot be published", "nosuch", "one boolean condition"},
		`up = 'EU'`:         {"source.filters", "cannot be published", `column "up" does not exist`}, // generated: not in the change stream
		`region = 'eu' AND`: {"source.filters", "syntax"},
		`region`:            {"source.filters", "boolean"},
	} {
		spec := taskYAML("filtered", p, fmt.Sprintf("    filter: { plain: %q }\n", filter))
		_, err := c.CreateTask(ctx, spec)
		if err == nil {
			t.Fatalf("filter %q accepted", filter)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("filter %q: error does not mention %q:\n%v", filter, w, err)
			}
		}
	}
	// A filter of a table that is not selected is named.
	if _, err := c.CreateTask(ctx, taskYAML("filtered", p, "    filter: { nosuch: \"id > 1\" }\n")); err == nil || !strings.Contains(err.Error(), "filter of public.nosuch") {
		t.Fatalf("filter of a missing table: %v", err)
	}
	for filter, where := range map[string]string{
		"id > 10":                 "filtered by the publication (columns in the replica identity): public.plain",
		"region = 'eu'":           "filtered in the pipeline (the capture evaluates each changed row at the source): public.plain",
		"id > (SELECT 1)":         "filtered in the pipeline", // publications take no subquery
		"lower(region) LIKE 'e%'": "filtered in the pipeline",
	} {
		report, err := c.Precheck(ctx, taskYAML("filtered", p, fmt.Sprintf("    filter: { plain: %q }\n", filter)))
		if err != nil || !report.Passed {
			t.Fatalf("filter %q: %+v %v", filter, report, err)
		}
		found := false
		for _, ch := range report.Checks {
			found = found || ch.Check == "source.filters" && strings.Contains(ch.Message, where)
		}
		if !found {
			t.Errorf("filter %q: the report does not say %q: %+v", filter, where, report.Checks)
		}
	}
	if err := testenv.SourceLeftovers(ctx, src); err != nil {
		t.Fatal(err)
	}
}

// A partitioned table syncs through its root: its partitions are skipped
// in a whole-schema selection, its rows are copied in page-range chunks
// across partitions, and changes to any partition (an UPDATE moving a row
// to another partition included) arrive as the root's. At a PostgreSQL
// destination it is kept partitioned, with the same partitions, or, with
// partitions: flatten, one plain table. Selecting a partition by itself
// is refused with the root to select instead.
func TestPartitionedTableThroughRoot(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `
		CREATE TABLE measures (id bigint, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
		CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
		CREATE TABLE measures_2025 PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
		CREATE TABLE measures_other PARTITION OF measures DEFAULT;
		CREATE INDEX measures_v ON measures (v);
		INSERT INTO measures SELECT g, date '2023-06-01' + (g % 1000), md5(g::text) FROM generate_series(1, 20000) g;
		CREATE TABLE plain (id int PRIMARY KEY);
		INSERT INTO plain VALUES (1)`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 8}})
	c := n.Client()

	_, err := c.CreateTask(ctx, taskYAML("parts", p, "    tables: [measures_2024]\n"))
	if err == nil || !strings.Contains(err.Error(), "a partition of public.measures: select public.measures") {
		t.Fatalf("a partition selected by itself: %v", err)
	}

	createTask(t, c, taskYAML("parts", p, ""))
	waitPhase(t, c, "parts", proto.PhaseIncremental, time.Minute)
	waitEqual(t, p, []string{"public.measures", "public.plain"}, time.Minute)
	flat := newDB(t, p.dst, "flat")
	createTask(t, c, dsnTaskYAML("flat", p.src.DSN(testenv.DefaultDB), p.dst.DSN("flat"), "    partitions: flatten\n"))
	waitPhase(t, c, "flat", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, src, `
		INSERT INTO measures VALUES (30001, '2024-03-01', 'new 2024'), (30002, '2025-03-01', 'new 2025'), (30003, '2030-01-01', 'new other');
		UPDATE measures SET at = '2025-07-01' WHERE id = 5 AND at = date '2023-06-01' + 5;  -- to another partition
		UPDATE measures SET v = 'changed' WHERE id BETWEEN 100 AND 200;
		DELETE FROM measures WHERE id BETWEEN 300 AND 350`)
	waitEqual(t, p, []string{"public.measures", "public.plain"}, time.Minute)
	waitConnsEqual(t, src, flat, []string{"public.measures", "public.plain"}, time.Minute)

	for _, want := range []struct {
		db, kind string
		parts    int
	}{{testenv.DefaultDB, "p", 3}, {"flat", "r", 0}} {
		dst := testenv.Conn(t, p.dst.DSN(want.db))
		var kind string
		var indexes int
		if err := dst.QueryRow(ctx, `SELECT c.relkind::text, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)
			FROM pg_class c WHERE c.oid = 'public.measures'::regclass`).Scan(&kind, &indexes); err != nil {
			t.Fatal(err)
		}
		if kind != want.kind || indexes != 2 {
			t.Fatalf("destination %s: measures has relkind %s, %d indexes; want %s with its key and measures_v", want.db, kind, indexes, want.kind)
		}
		var parts int
		if err := dst.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.measures'::regclass`).Scan(&parts); err != nil || parts != want.parts {
			t.Fatalf("destination %s: measures has %d partitions (%v), want %d", want.db, parts, err, want.parts)
		}
	}
}

// Column selection: only the listed columns reach the destination, in
// the full sync and after it (a publication column list); constraints and
// indexes on the columns left out are left out too. A list without the
// key, or naming a missing column, fails the precheck.
func TestColumnSelection(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `
		CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE, secret text CHECK (length(secret) > 3));
		CREATE INDEX people_secret ON people (secret);
		CREATE INDEX people_name_secret ON people (name) WHERE secret IS NOT NULL;
		CREATE INDEX people_name ON people (lower(name));
		INSERT INTO people SELECT g, 'n' || g, 'e' || g || '@x', 'secret' || g FROM generate_series(1, 2000) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	for cols, want := range map[string]string{
		"[name, email]": "does not cover the replica identity",
		"[id, nosuch]":  "cannot be published",
	} {
		_, err := c.CreateTask(ctx, taskYAML("cols", p, fmt.Sprintf("    columns: { people: %s }\n", cols)))
		if err == nil || !strings.Contains(err.Error(), "source.columns") || !strings.Contains(err.Error(), want) {
			t.Fatalf("columns %s: %v", cols, err)
		}
	}

	createTask(t, c, taskYAML("cols", p, "    columns: { people: [id, name, email] }\n"))
	waitPhase(t, c, "cols", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, src, `
		INSERT INTO people VALUES (3001, 'new', 'new@x', 'hidden!');
		UPDATE people SET name = 'renamed', secret = 'changed' WHERE id <= 10;
		UPDATE people SET secret = 'only the secret' WHERE id = 20;
		DELETE FROM people WHERE id BETWEEN 100 AND 110`)
	waitSame(t, p, "(SELECT id, name, email FROM public.people)", "public.people", time.Minute)

	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var cols, indexes, checks int
	if err := dst.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped),
		(SELECT count(*) FROM pg_index WHERE indrelid = 'people'::regclass),
		(SELECT count(*) FROM pg_constraint WHERE conrelid = 'people'::regclass AND contype = 'c')`).Scan(&cols, &indexes, &checks); err != nil {
		t.Fatal(err)
	}
	// id, name, email; the key, email's unique and lower(name).
	if cols != 3 || indexes != 3 || checks != 0 {
		t.Fatalf("destination people: %d columns, %d indexes, %d checks; want 3, 3, 0", cols, indexes, checks)
	}
}

// Renames: a schema, a table and a column get new names at the
// destination, their key, index and foreign key along; changes keep
// arriving under the new names. Two tables renamed to one name fail the
// precheck.
func TestRenames(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `
		CREATE SCHEMA shop;
		CREATE TABLE shop.customers (id int PRIMARY KEY, name text);
		CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int REFERENCES shop.customers (id), amount int, note text);
		CREATE INDEX orders_amount ON shop.orders (amount);
		INSERT INTO shop.customers SELECT g, 'c' || g FROM generate_series(1, 100) g;
		INSERT INTO shop.orders SELECT g, 1 + g % 100, g, 'n' FROM generate_series(1, 3000) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := func(rename string) []byte {
		return []byte(fmt.Sprintf(`name: renamed
source: { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
objects:
  - schema: shop
    rename_schema: sales
    rename: %s
`, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB), rename))
	}
	_, err := c.CreateTask(ctx, spec(`{ orders: clients, customers: clients }`))
	if err == nil || !strings.Contains(err.Error(), "renames to") {
		t.Fatalf("two tables renamed to one name: %v", err)
	}

	createTask(t, c, spec(`{ orders: sales_orders, "orders.amount": total }`))
	waitPhase(t, c, "renamed", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, src, `
		INSERT INTO shop.orders VALUES (5001, 7, 42, 'new');
		UPDATE shop.orders SET amount = amount * 2 WHERE id <= 50;
		DELETE FROM shop.orders WHERE id BETWEEN 100 AND 120;
		UPDATE shop.customers SET name = 'renamed' WHERE id = 3`)
	waitSame(t, p, "shop.orders", "sales.sales_orders", time.Minute)
	waitSame(t, p, "shop.customers", "sales.customers", time.Minute)

	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var total, fk, idx, left int
	if err := dst.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_attribute WHERE attrelid = 'sales.sales_orders'::regclass AND attname = 'total'),
		(SELECT count(*) FROM pg_constraint WHERE conrelid = 'sales.sales_orders'::regclass AND contype = 'f' AND confrelid = 'sales.customers'::regclass),
		(SELECT count(*) FROM pg_indexes WHERE schemaname = 'sales' AND tablename = 'sales_orders' AND indexdef LIKE '%(total)%'),
		(SELECT count(*) FROM pg_tables WHERE schemaname = 'shop')`).Scan(&total, &fk, &idx, &left); err != nil {
		t.Fatal(err)
	}
	if total != 1 || fk != 1 || idx != 1 || left != 0 {
		t.Fatalf("destination: column total %d, foreign key %d, index on total %d, tables left in shop %d", total, fk, idx, left)
	}
}

// conflicting_tables: ignore: a table that exists at the destination
// keeps its rows; the full sync adds the source's rows whose key is new
// and leaves the others; incremental sync then overwrites by key. A
// keyless existing table is refused by the precheck.
func TestConflictingTablesIgnoreKeepsRows(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE kept (id int PRIMARY KEY, v text); INSERT INTO kept SELECT g, 'source ' || g FROM generate_series(1, 1000) g`)
	testenv.MustExec(t, dst, `CREATE TABLE kept (id int PRIMARY KEY, v text); INSERT INTO kept SELECT g, 'destination ' || g FROM generate_series(1, 10) g;
		INSERT INTO kept VALUES (9999, 'destination only')`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 2}})
	c := n.Client()

	testenv.MustExec(t, src, `CREATE TABLE bag (v text); ALTER TABLE bag REPLICA IDENTITY FULL`)
	testenv.MustExec(t, dst, `CREATE TABLE bag (v text)`)
	_, err := c.CreateTask(ctx, taskYAML("keep", p, "conflicting_tables: ignore\n"), "destination.conflicting_tables")
	if err == nil || !strings.Contains(err.Error(), "without a primary key or unique key, so the full sync cannot tell their rows from the source's: public.bag") {
		t.Fatalf("an existing keyless table: %v", err)
	}

	if _, err := c.CreateTask(ctx, taskYAML("keep", p, "    tables: [kept]\nconflicting_tables: ignore\n"), "destination.conflicting_tables"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "keep", proto.PhaseIncremental, time.Minute)
	expect := `(SELECT id, CASE WHEN id <= 10 THEN 'destination ' || id ELSE v END AS v FROM public.kept UNION ALL SELECT 9999, 'destination only')`
	waitSame(t, p, expect, "public.kept", time.Minute)
	testenv.MustExec(t, src, `UPDATE kept SET v = 'changed' WHERE id IN (3, 500); INSERT INTO kept VALUES (1001, 'new')`)
	expect = `(SELECT id, CASE WHEN id <= 10 AND id <> 3 THEN 'destination ' || id ELSE v END AS v FROM public.kept UNION ALL SELECT 9999, 'destination only')`
	waitSame(t, p, expect, "public.kept", time.Minute)
}

// A table created in a selected schema after the task started is left
// out, even when the capture starts over: it was never created or copied
// at the destination. It stays out of the publication, and the task's
// own tables keep syncing.
func TestTablesCreatedLaterAreLeftOut(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE first (id int PRIMARY KEY, v text); INSERT INTO first VALUES (1, 'a')`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, taskYAML("pinned", p, ""))
	waitPhase(t, c, "pinned", proto.PhaseIncremental, time.Minute)

	testenv.MustExec(t, src, `CREATE TABLE later (id int PRIMARY KEY); INSERT INTO later VALUES (1)`)
	// The capture starts over: its replication session is cut, and the
	// next attempt lists the tables again.
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var cut bool
		if err := src.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false) FROM pg_replication_slots WHERE slot_name = 'sluice_pinned' AND active`).Scan(&cut); err != nil {
			return err
		}
		if !cut {
			return fmt.Errorf("no active capture session to cut")
		}
		return nil
	})
	// Running again after the cut: its error resolved (a plain wait for
	// running could see the state from before the cut was noticed).
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "pinned")
		if err != nil {
			return err
		}
		if st.State != proto.StateRunning || st.ResolvedError == nil {
			return fmt.Errorf("state %s, current error %+v, resolved %+v", st.State, st.LastError, st.ResolvedError)
		}
		return nil
	})
	testenv.MustExec(t, src, `INSERT INTO later VALUES (2); INSERT INTO first VALUES (2, 'after the restart')`)
	waitEqual(t, p, []string{"public.first"}, time.Minute)
	time.Sleep(2 * time.Second) // long enough for a change of "later" to fail an apply
	st, err := c.GetTask(ctx, "pinned")
	if err != nil || st.State != proto.StateRunning || (st.LastError != nil && !strings.Contains(st.LastError.Message, "terminat")) {
		t.Fatalf("task after a table appeared: %+v %v", st, err)
	}
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var exists bool
	if err := dst.QueryRow(ctx, `SELECT to_regclass('public.later') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("the later table at the destination: %v %v", exists, err)
	}
	// Nor is it published: its changes are not decoded for nothing.
	var published bool
	if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'sluice_pinned' AND tablename = 'later')`).Scan(&published); err != nil || published {
		t.Fatalf("the later table is in the task's publication: %v %v", published, err)
	}
}
