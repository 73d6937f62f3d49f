package node_test

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// TestTopologies runs the synchronization topologies of guide 003 end to
// end, each ending in a comparison of table contents: one-to-many (one
// source, two tasks, two destinations), cascade (A to B by one task, B to
// C by another) and many-to-one (two sources into one destination
// database, one of their tables into one shared table). The subtests share
// one node and three clusters, each subtest in databases of its own: a
// cluster costs seconds to start, a database a fraction of one.
func TestTopologies(t *testing.T) {
	pgs := [3]*testenv.Postgres{testenv.NewPostgres(t), testenv.NewPostgres(t), testenv.NewPostgres(t)}
	c := sluicetest.StartNode(t, node.Config{}).Client()
	t.Run("one-to-many", func(t *testing.T) { topologyOneToMany(t, c, pgs) })
	t.Run("cascade", func(t *testing.T) { topologyCascade(t, c, pgs) })
	t.Run("many-to-one", func(t *testing.T) { topologyManyToOne(t, c, pgs) })
}

// deleteAtEnd deletes the tasks when the subtest ends, so that the next
// one does not share the two cores with their captures and heartbeats.
func deleteAtEnd(t *testing.T, c *coordinator.Client, names ...string) {
	t.Cleanup(func() {
		for _, name := range names {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := c.DeleteTask(ctx, name); err != nil && !strings.Contains(err.Error(), "not found") {
				t.Errorf("delete task %s: %v", name, err)
			}
			cancel()
		}
	})
}

// runWorkload runs the mixed workload at dsn in the background, bounded
// in transactions and time; wait returns how many committed, failing the
// test on an error.
func runWorkload(t *testing.T, dsn string, txs int, seed int64) (wait func() int) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := workload.Run(context.Background(), dsn, workload.Options{
			Transactions: txs, Duration: time.Minute, Seed: seed, Truncate: true,
			// A pause between transactions spreads them over several apply
			// batches (and, for a task created meanwhile, over its copy).
			Progress: func(int) { time.Sleep(5 * time.Millisecond) },
		})
		done <- result{n, err}
	}()
	return func() int {
		t.Helper()
		r := <-done
		if r.err != nil {
			t.Fatalf("workload at %s: %v", dsn, r.err)
		}
		if r.n == 0 {
			t.Fatalf("workload at %s committed nothing", dsn)
		}
		return r.n
	}
}

// rowCount returns the number of rows of a table or query.
func rowCount(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// One source database, two tasks into two destinations. The second task
// is created while the workload runs and the first is incremental: each
// task has its own slot and publication, so the second one's copy and
// cut leave the first alone. Both destinations end equal to the source.
func topologyOneToMany(t *testing.T, c *coordinator.Client, pgs [3]*testenv.Postgres) {
	ctx := context.Background()
	src := newDB(t, pgs[0], "otm_src")
	dst1, dst2 := newDB(t, pgs[1], "otm_one"), newDB(t, pgs[2], "otm_two")
	testenv.MustExec(t, src, workload.Schema)
	if err := workload.Seed(ctx, src, 500); err != nil {
		t.Fatal(err)
	}
	srcDSN := pgs[0].DSN("otm_src")
	deleteAtEnd(t, c, "otm-one", "otm-two")
	createTask(t, c, dsnTaskYAML("otm-one", srcDSN, pgs[1].DSN("otm_one"), ""))
	waitPhase(t, c, "otm-one", proto.PhaseIncremental, 2*time.Minute)

	wait := runWorkload(t, srcDSN, 400, 31)
	createTask(t, c, dsnTaskYAML("otm-two", srcDSN, pgs[2].DSN("otm_two"), ""))
	waitPhase(t, c, "otm-two", proto.PhaseIncremental, 2*time.Minute)
	t.Logf("workload: %d transactions", wait())

	waitConnsEqual(t, src, dst1, workload.Tables, 2*time.Minute)
	waitConnsEqual(t, src, dst2, workload.Tables, 2*time.Minute)
	// Two slots on one source, one per task.
	var slots []string
	rows, err := src.Query(ctx, `SELECT slot_name FROM pg_replication_slots WHERE database = 'otm_src' ORDER BY 1`)
	if err == nil {
		slots, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || !slices.Equal(slots, []string{"sluice_otm_one", "sluice_otm_two"}) {
		t.Fatalf("slots at the source: %v %v", slots, err)
	}
}

// Cascade: task A->B and task B->C. What Sluice applies at B (the copy,
// the changes, the schema changes) is WAL at B like any other write, and
// a one-way apply writes under no replication origin, so B's capture
// sends it on to C; writes made at B directly go to C as well. C ends as
// A's tables plus B's own rows. Deleting B->C leaves A->B's bookkeeping
// in B's sluice schema alone.
func topologyCascade(t *testing.T, c *coordinator.Client, pgs [3]*testenv.Postgres) {
	ctx := context.Background()
	a, b, cc := newDB(t, pgs[0], "casc_a"), newDB(t, pgs[1], "casc_b"), newDB(t, pgs[2], "casc_c")
	aDSN, bDSN, cDSN := pgs[0].DSN("casc_a"), pgs[1].DSN("casc_b"), pgs[2].DSN("casc_c")
	testenv.MustExec(t, a, workload.Schema)
	if err := workload.Seed(ctx, a, 300); err != nil {
		t.Fatal(err)
	}
	// A table only B has, and B's own rows in a table A->B fills (keys A
	// never uses: the workload's are positive).
	testenv.MustExec(t, b, `CREATE TABLE b_local (id int PRIMARY KEY, v text);
		INSERT INTO b_local SELECT g, 'seed ' || g FROM generate_series(1, 50) g`)
	deleteAtEnd(t, c, "casc-bc", "casc-ab")
	ddl := "sync: { ddl: true }\n"
	createTask(t, c, dsnTaskYAML("casc-ab", aDSN, bDSN, ddl))
	waitPhase(t, c, "casc-ab", proto.PhaseIncremental, 2*time.Minute)
	createTask(t, c, dsnTaskYAML("casc-bc", bDSN, cDSN, ddl))
	waitPhase(t, c, "casc-bc", proto.PhaseIncremental, 2*time.Minute)

	wait := runWorkload(t, aDSN, 300, 47)
	rng := rand.New(rand.NewSource(47))
	for i := 1; i <= 60; i++ {
		id := 50 + i
		testenv.MustExec(t, b, `INSERT INTO b_local VALUES ($1, $2)`, id, fmt.Sprintf("b %d", id))
		testenv.MustExec(t, b, `UPDATE b_local SET v = v || '+' WHERE id = $1`, 1+rng.Intn(id))
		if i%5 == 0 {
			testenv.MustExec(t, b, `DELETE FROM b_local WHERE id = $1`, 1+rng.Intn(id))
		}
		testenv.MustExec(t, b, `INSERT INTO accounts (id, owner, balance) VALUES ($1, 'written at B', $2)`, -i, i)
		if i%4 == 0 {
			testenv.MustExec(t, b, `DELETE FROM accounts WHERE id = $1`, -i+2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("workload at A: %d transactions", wait())

	// A's changes reached C through B ...
	waitConnsSame(t, a, cc, "public.accounts", "(SELECT * FROM public.accounts WHERE id > 0)", 2*time.Minute)
	waitConnsEqual(t, a, cc, []string{"public.events", "public.docs"}, 2*time.Minute)
	// ... B's own writes too, and C holds nothing else.
	waitConnsEqual(t, b, cc, append(slices.Clone(workload.Tables), "public.b_local"), 2*time.Minute)
	if n := rowCount(t, cc, "public.accounts WHERE id < 0"); n != 45 {
		t.Fatalf("C holds %d of B's own accounts, want 45", n)
	}

	// A schema change at A travels both hops, with the rows around it.
	testenv.MustExec(t, a, `ALTER TABLE docs ADD COLUMN note text DEFAULT 'none';
		UPDATE docs SET note = 'changed at A' WHERE id <= 5;
		INSERT INTO docs (id, title, body, note) VALUES (100000, 'after the DDL', 'b', 'new')`)
	waitConnsEqual(t, a, cc, []string{"public.docs"}, 2*time.Minute)

	// Deleting B->C removes its slot, publication and triggers at B, and
	// leaves A->B's positions in B's sluice schema: A->B goes on.
	if err := c.DeleteTask(ctx, "casc-bc"); err != nil {
		t.Fatal(err)
	}
	var bcObjects, abOffsets int
	if err := b.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'sluice_casc_bc%')
		+ (SELECT count(*) FROM pg_publication WHERE pubname = 'sluice_casc_bc')
		+ (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'sluice_casc_bc%'),
		(SELECT count(*) FROM sluice.apply_offsets WHERE task = 'casc-ab')`).Scan(&bcObjects, &abOffsets); err != nil {
		t.Fatal(err)
	}
	if bcObjects != 0 || abOffsets == 0 {
		t.Fatalf("at B after deleting casc-bc: %d of its objects left, %d positions of casc-ab", bcObjects, abOffsets)
	}
	testenv.MustExec(t, a, `UPDATE accounts SET owner = 'after the delete' WHERE id IN (SELECT id FROM accounts ORDER BY id LIMIT 10)`)
	waitConnsSame(t, a, b, "public.accounts", "(SELECT * FROM public.accounts WHERE id > 0)", time.Minute)
}

// Many-to-one: two sources into one destination database. Each has a
// table of its own (orders, customers), created by its task's schema
// sync, and both have items, with keys that do not collide (source 1
// ids 1-1000 and 100000 up, source 2 1001-2000 and 200000 up; the src
// column tells them apart). The first task creates items; the second
// one's precheck refuses it until conflicting_tables: ignore and the
// acknowledged warning let it write into it, keeping the rows there. Both
// leave truncates of items out, or one source's TRUNCATE would empty the
// other's rows too. Under a workload at both, the destination holds the
// union, each task's positions apart under its name. A column added at
// either source reaches the shared table; drops and renames, which would
// take the column from the other source's rows too, are left out
// (ddl_operations).
func topologyManyToOne(t *testing.T, c *coordinator.Client, pgs [3]*testenv.Postgres) {
	ctx := context.Background()
	s1, s2, d := newDB(t, pgs[0], "mto_one"), newDB(t, pgs[1], "mto_two"), newDB(t, pgs[2], "mto_dst")
	s1DSN, s2DSN, dDSN := pgs[0].DSN("mto_one"), pgs[1].DSN("mto_two"), pgs[2].DSN("mto_dst")
	const items = `CREATE TABLE items (id int PRIMARY KEY, src int NOT NULL CHECK (src IN (1, 2)), name text, price numeric(10,2));
		CREATE INDEX items_name ON items (name);`
	testenv.MustExec(t, s1, items+`
		CREATE TABLE orders (id int PRIMARY KEY, item int, qty int);
		INSERT INTO items SELECT g, 1, 'one ' || g, g / 10.0 FROM generate_series(1, 1000) g;
		INSERT INTO orders SELECT g, g, g % 7 FROM generate_series(1, 300) g`)
	testenv.MustExec(t, s2, items+`
		CREATE TABLE customers (id int PRIMARY KEY, name text);
		INSERT INTO items SELECT g, 2, 'two ' || g, g / 10.0 FROM generate_series(1001, 2000) g;
		INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 300) g`)
	// Truncates of the shared table left out, and schema changes that
	// take a column or table away from the other source's rows too.
	extra := `    operations: { items: [insert, update, delete] }
sync: { ddl: true, ddl_operations: [create_table, add_column, create_index] }
`
	deleteAtEnd(t, c, "mto-one", "mto-two")
	createTask(t, c, dsnTaskYAML("mto-one", s1DSN, dDSN, extra))
	waitPhase(t, c, "mto-one", proto.PhaseIncremental, 2*time.Minute)

	two := dsnTaskYAML("mto-two", s2DSN, dDSN, extra)
	if _, err := c.CreateTask(ctx, two); err == nil || !strings.Contains(err.Error(), "destination.conflicting_tables") || !strings.Contains(err.Error(), "public.items") {
		t.Fatalf("a second task into an existing table without conflicting_tables: ignore: %v", err)
	}
	two = append(two, "conflicting_tables: ignore\n"...)
	if _, err := c.CreateTask(ctx, two, "destination.conflicting_tables"); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "mto-two", proto.PhaseIncremental, 2*time.Minute)

	// Both sources write at once, each its own keys.
	// other is a statement on the source's own table, %d a key of it.
	load := func(conn *pgx.Conn, src, base int, other string) func() {
		done := make(chan error, 1)
		go func() {
			rng := rand.New(rand.NewSource(int64(src)))
			lo := 1 + (src-1)*1000
			for i := 0; i < 150; i++ {
				sql := fmt.Sprintf(`BEGIN;
					INSERT INTO items VALUES (%[1]d, %[2]d, 'new %[1]d', %[3]d);
					UPDATE items SET price = price + 1, name = name || '+' WHERE id = %[4]d;
					DELETE FROM items WHERE id = %[5]d;
					%[6]s;
					COMMIT`, base+i, src, i, lo+rng.Intn(1000), lo+rng.Intn(1000), fmt.Sprintf(other, 1+rng.Intn(300)))
				if _, err := conn.Exec(context.Background(), sql); err != nil {
					done <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			done <- nil
		}()
		return func() {
			t.Helper()
			if err := <-done; err != nil {
				t.Fatalf("load at source %d: %v", src, err)
			}
		}
	}
	w1 := load(testenv.Conn(t, s1DSN), 1, 100000, "UPDATE orders SET qty = qty + 1 WHERE id = %d")
	w2 := load(testenv.Conn(t, s2DSN), 2, 200000, "UPDATE customers SET name = name || '+' WHERE id = %d")
	w1()
	w2()
	testenv.MustExec(t, s1, `DELETE FROM orders WHERE id <= 20; INSERT INTO orders VALUES (1000, 1, 1)`)
	testenv.MustExec(t, s2, `DELETE FROM customers WHERE id <= 20; UPDATE customers SET name = 'renamed' WHERE id = 21`)

	waitConnsSame(t, s1, d, "public.items", "(SELECT * FROM public.items WHERE src = 1)", 2*time.Minute)
	waitConnsSame(t, s2, d, "public.items", "(SELECT * FROM public.items WHERE src = 2)", 2*time.Minute)
	waitConnsEqual(t, s1, d, []string{"public.orders"}, time.Minute)
	waitConnsEqual(t, s2, d, []string{"public.customers"}, time.Minute)
	if n, want := rowCount(t, d, "public.items"), rowCount(t, s1, "public.items")+rowCount(t, s2, "public.items"); n != want {
		t.Fatalf("destination items: %d rows, want %d (the union)", n, want)
	}

	// Each task's positions and copy records are its own, under its name
	// (the same table's positions included: the two sources' LSNs are of
	// different WAL streams, and sharing a row would skip one's changes).
	rows, err := d.Query(ctx, `SELECT DISTINCT task || ' ' || schema_name || '.' || table_name FROM sluice.apply_offsets
		UNION ALL SELECT 'copied ' || task || ' ' || schema_name || '.' || table_name FROM sluice.copy_tables WHERE finished ORDER BY 1`)
	var books []string
	if err == nil {
		books, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	want := []string{"copied mto-one public.items", "copied mto-one public.orders", "copied mto-two public.customers", "copied mto-two public.items",
		"mto-one public.items", "mto-one public.orders", "mto-two public.customers", "mto-two public.items"}
	if err != nil || !slices.Equal(books, want) {
		t.Fatalf("bookkeeping at the destination:\n%v (%v)\nwant\n%v", books, err, want)
	}

	// A column added at one source reaches the shared table, and the
	// other source's rows, written after it is there, leave it empty;
	// added at the other source too, it is there already (ADD COLUMN IF
	// NOT EXISTS) and both fill it.
	testenv.MustExec(t, s1, `ALTER TABLE items ADD COLUMN note text; UPDATE items SET note = 'one' WHERE id <= 10;
		INSERT INTO items VALUES (150000, 1, 'noted', 1, 'new')`)
	waitConnsSame(t, s1, d, "public.items", "(SELECT * FROM public.items WHERE src = 1)", time.Minute)
	testenv.MustExec(t, s2, `UPDATE items SET name = 'after the column' WHERE id <= 1010; INSERT INTO items VALUES (150001, 2, 'not noted', 1)`)
	waitConnsSame(t, s2, d, "(SELECT *, NULL::text AS note FROM public.items)", "(SELECT * FROM public.items WHERE src = 2)", time.Minute)
	testenv.MustExec(t, s2, `ALTER TABLE items ADD COLUMN note text; UPDATE items SET note = 'two' WHERE id <= 1010;
		INSERT INTO items VALUES (250000, 2, 'noted', 1, 'new')`)
	waitConnsSame(t, s2, d, "public.items", "(SELECT * FROM public.items WHERE src = 2)", time.Minute)
	waitConnsSame(t, s1, d, "public.items", "(SELECT * FROM public.items WHERE src = 1)", time.Minute)

	// A truncate at one source is left out (operations): the other
	// source's rows stay, and so, until they are deleted one by one, do
	// its own. The row written after it shows the truncate has passed.
	before := rowCount(t, d, "public.items WHERE src = 2")
	testenv.MustExec(t, s2, `TRUNCATE items; INSERT INTO items VALUES (300000, 2, 'after the truncate', 1)`)
	testenv.CheckFor(t, time.Minute, 250*time.Millisecond, func() error {
		if n := rowCount(t, d, "public.items WHERE id = 300000"); n != 1 {
			return fmt.Errorf("the row written after the truncate has not arrived")
		}
		return nil
	})
	if n := rowCount(t, d, "public.items WHERE src = 2"); n != before+1 {
		t.Fatalf("source 2's rows at the destination after its truncate: %d, want %d", n, before+1)
	}
	waitConnsSame(t, s1, d, "public.items", "(SELECT * FROM public.items WHERE src = 1)", time.Minute)

	// Deleting one task forgets its positions only; the other goes on.
	if err := c.DeleteTask(ctx, "mto-two"); err != nil {
		t.Fatal(err)
	}
	var others, gone int
	if err := d.QueryRow(ctx, `SELECT count(*) FILTER (WHERE task = 'mto-one'), count(*) FILTER (WHERE task = 'mto-two') FROM sluice.apply_offsets`).Scan(&others, &gone); err != nil {
		t.Fatal(err)
	}
	if others == 0 || gone != 0 {
		t.Fatalf("positions after deleting mto-two: %d of mto-one, %d of mto-two", others, gone)
	}
	testenv.MustExec(t, s1, `UPDATE items SET name = 'after the delete' WHERE id <= 10`)
	waitConnsSame(t, s1, d, "public.items", "(SELECT * FROM public.items WHERE src = 1)", time.Minute)
}
