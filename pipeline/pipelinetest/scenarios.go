package pipelinetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// underLoad: schema, full and incremental sync while a workload writes
// inserts, updates (key changes and unchanged TOAST values included),
// deletes and truncates over a keyed table, a keyless one and one of
// large documents; the destination ends with the source's rows.
func underLoad(t *testing.T, d Destination) {
	// Small chunks, so the bigger tables are copied by several readers.
	e := newEnv(t, d, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 32, SnapshotReaders: 3}})
	ctx := context.Background()
	e.exec(workload.Schema)
	e.fullIdentity("docs")
	if err := workload.Seed(ctx, e.conn, 5000); err != nil {
		t.Fatal(err)
	}
	load := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, e.src.DSN(testenv.DefaultDB), workload.Options{Transactions: 800, Duration: 2 * time.Minute, Seed: 1, Truncate: true,
			Progress: func(int) { time.Sleep(2 * time.Millisecond) }})
		load <- err
	}()
	e.create("load", "objects: [{schema: public}]\n")
	st := e.incremental("load")
	if st.Full.TablesDone != len(workload.Tables) || st.Full.RowsDone < 5000 {
		t.Errorf("full sync progress: %+v", st.Full)
	}
	if err := <-load; err != nil {
		t.Fatalf("workload: %v", err)
	}
	// A second burst, entirely in the incremental phase.
	if _, err := workload.Run(ctx, e.src.DSN(testenv.DefaultDB), workload.Options{Transactions: 200, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	e.waitEqual("load", workload.Tables, 3*time.Minute)
	st = e.status("load", "applied rows and latency", time.Minute, func(st *proto.TaskStatus) bool {
		return st.RowsApplied > 0 && st.LatencyMS != nil
	})
	if st.State != proto.StateRunning {
		t.Fatalf("status after sync: %+v", st)
	}
}

// typesRows adds, to testenv's rows of every type family, a row with
// NULL everywhere and a 10 MB value, and keyless rows with twins.
const typesRows = testenv.TypesRows + `
INSERT INTO types (id, big) VALUES ($1 + 2, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 327680) g));
INSERT INTO nokey_types VALUES ('{"k": 1}', '(1,2)', '<x/>', 'NaN', '{a,b}'), ('{"k": 1}', '(1,2)', '<x/>', 'NaN', '{a,b}'), (NULL, NULL, NULL, NULL, NULL);
`

// typeFamilies: every built-in type family (and user types) survives full
// sync and the change stream, value for value; then updates that leave
// the 10 MB value untouched (unchanged TOAST), a key change, and deletes
// of keyless rows that have twins.
func typeFamilies(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{})
	e.exec(testenv.TypesSchema)
	e.fullIdentity("types")
	e.exec("SET TIME ZONE 'America/New_York'; SET DateStyle = 'German'; " + strings.ReplaceAll(typesRows, "$1", "1"))
	e.exec("RESET TIME ZONE; RESET DateStyle; SET TimeZone = 'UTC'")
	e.create("types", "objects: [{schema: public}]\n")
	e.incremental("types")
	tables := []string{"public.types", "public.nokey_types"}
	e.waitEqual("types", tables, 2*time.Minute)

	e.exec(strings.ReplaceAll(typesRows, "$1", "100"))
	e.exec(`UPDATE types SET n_int = n_int + 1 WHERE id IN (3, 102);
		UPDATE types SET id = id + 1000 WHERE id = 102;
		UPDATE types SET big = big || 'x' WHERE id = 1;
		DELETE FROM nokey_types WHERE ctid = (SELECT ctid FROM nokey_types WHERE j::text = '{"k": 1}' LIMIT 1);
		UPDATE nokey_types SET f = 1 WHERE ctid = (SELECT ctid FROM nokey_types WHERE f IS NULL LIMIT 1)`)
	e.waitEqual("types", tables, 2*time.Minute)
}

// ddl: schema changes at the source while the task runs (columns added,
// retyped, dropped, renamed; constraints and indexes; tables created,
// renamed, truncated; DDL and DML in one transaction) reach the
// destination, and the rows written after each change carry it. A last
// update rewrites every row, so that a destination that keeps messages
// (Kafka) holds every row in its latest form too.
func ddl(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{})
	e.exec(`CREATE TABLE items (id int PRIMARY KEY, v text, n int);
		INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 500) g;
		CREATE TABLE t2 (id int PRIMARY KEY, v text);
		INSERT INTO t2 SELECT g, 'x' FROM generate_series(1, 50) g`)
	e.create("ddl", "objects: [{schema: public}]\nsync: { ddl: true }\n")
	e.incremental("ddl")
	// A writer keeps changing the table meanwhile, on columns no
	// statement below changes.
	stopWriter := e.writer(func(i int) string {
		return fmt.Sprintf(`INSERT INTO items (id, v) VALUES (%d, 'w%d'); UPDATE items SET v = v || '+' WHERE id = %d; DELETE FROM items WHERE id = %d`,
			3000+i, i, 1+i%500, 2+(i*7)%490)
	})
	for i, stmt := range []string{
		`CREATE TABLE newt (id serial PRIMARY KEY, a text, b int)`,
		`INSERT INTO newt (a, b) SELECT 'a' || g, g % 5 FROM generate_series(1, 100) g`,
		`ALTER TABLE items ADD COLUMN c1 text`,
		`UPDATE items SET c1 = 'c' || id WHERE id % 3 = 0`,
		`ALTER TABLE items ADD COLUMN c2 int DEFAULT 7`,
		`ALTER TABLE items ALTER COLUMN n TYPE bigint`,
		`UPDATE items SET n = n * 10000000000 WHERE id % 5 = 0`,
		`ALTER TABLE items ADD CONSTRAINT items_n_check CHECK (n IS NULL OR n >= 0)`,
		`CREATE INDEX items_v_idx ON items (v)`,
		`ALTER TABLE items DROP COLUMN c1`,
		`ALTER TABLE t2 RENAME TO t3`,
		`INSERT INTO t3 VALUES (1000, 'after rename')`,
		`ALTER TABLE t3 RENAME COLUMN v TO w`,
		`UPDATE t3 SET w = 'renamed column' WHERE id <= 10`,
		`BEGIN;
		 INSERT INTO items (id, v) VALUES (-2, 'before');
		 ALTER TABLE items ADD COLUMN c3 text DEFAULT 'x';
		 UPDATE items SET c3 = 'y' WHERE id BETWEEN 1 AND 50;
		 CREATE TABLE txnew (id int PRIMARY KEY, v text);
		 INSERT INTO txnew VALUES (1, 'one'), (2, 'two');
		 COMMIT`,
		`CREATE TABLE keyless (a int, b text)`,
		`INSERT INTO keyless SELECT g, 'k' FROM generate_series(1, 10) g`,
		`UPDATE keyless SET b = 'changed' WHERE a <= 5`,
		`DELETE FROM keyless WHERE a = 10`,
	} {
		e.exec(stmt)
		if i%4 == 3 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopWriter()
	tables := []string{"public.items", "public.newt", "public.t3", "public.txnew", "public.keyless"}
	for _, tb := range tables {
		if tb != "public.keyless" {
			e.exec(fmt.Sprintf("UPDATE %s SET id = id", tb))
		}
	}
	e.waitEqual("ddl", tables, 3*time.Minute)
	if st, err := e.c.GetTask(context.Background(), "ddl"); err != nil || st.State != proto.StateRunning || st.LastError != nil {
		t.Fatalf("task after the schema changes: %+v %v", st, err)
	}
	// Deleting the task leaves no trigger, function or table in the
	// source, and DDL runs there as before.
	if err := e.c.DeleteTask(context.Background(), "ddl"); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(context.Background(), e.conn); err != nil {
		t.Fatal(err)
	}
	e.exec(`ALTER TABLE items ADD COLUMN gone int`)
}

// outage: the destination goes away while changes arrive; the task
// retries in the connection window (invariant 7), and once the
// destination is back (where it can come back) catches up.
func outage(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{Runner: node.RunnerConfig{RetryMinute: time.Second, MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}})
	e.exec(`CREATE TABLE o (id int PRIMARY KEY, v text);
		INSERT INTO o SELECT g, 'v' || g FROM generate_series(1, 200) g`)
	e.create("out", "objects: [{schema: public}]\n")
	e.incremental("out")
	e.waitEqual("out", []string{"public.o"}, time.Minute)

	e.target.Stop(t)
	e.exec(`INSERT INTO o SELECT g, 'during' FROM generate_series(201, 300) g; UPDATE o SET v = v || '+' WHERE id <= 20`)
	st := e.status("out", "retrying after a connection failure", 2*time.Minute, func(st *proto.TaskStatus) bool {
		return st.State == proto.StateRetrying && st.LastError != nil
	})
	if st.LastError.Kind != proto.ErrorConnection {
		t.Fatalf("the destination's outage is a failure of kind %q (%s), want connection", st.LastError.Kind, st.LastError.Message)
	}
	// A window's minute lasts a second here: the connection window (720
	// minutes) ends 720 s after the first failure, the other one (10
	// minutes) after 10 s.
	if w := st.LastError.RetryUntil.Sub(st.LastError.At); w < 5*time.Minute {
		t.Fatalf("retrying until %v, %v after the failure: not the connection window", st.LastError.RetryUntil, w)
	}
	if !e.target.Start(t) {
		return
	}
	e.waitEqual("out", []string{"public.o"}, 2*time.Minute)
	e.status("out", "running again", time.Minute, func(st *proto.TaskStatus) bool { return st.State == proto.StateRunning })
}

// selection: a row filter (rows moving into and out of it by UPDATE
// included), operations left out (deletes and truncates of a table
// synced for inserts and updates only), and a column list, in the full
// sync and after it.
func selection(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 4}})
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount int);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		INSERT INTO orders SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 3000) g;
		CREATE TABLE events (id int PRIMARY KEY, v text);
		INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 500) g;
		CREATE TABLE events_expected (LIKE events);
		INSERT INTO events_expected SELECT * FROM events;
		CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, email text, secret text);
		INSERT INTO people SELECT g, 'n' || g, 'e' || g || '@x', 'secret' || g FROM generate_series(1, 1000) g`)
	e.create("sel", `objects:
  - schema: public
    tables: [orders, events, people]
    filter: { orders: "region = 'eu' AND amount >= 0" }
    operations: { events: [insert, update] }
    columns: { people: [id, name, email] }
`)
	e.incremental("sel")
	e.exec(`INSERT INTO orders VALUES (5001, 'eu', 1), (5002, 'us', 2);
		UPDATE orders SET region = 'eu' WHERE id IN (1, 2);      -- into the filter
		UPDATE orders SET region = 'us' WHERE id IN (3, 6);      -- out of it
		UPDATE orders SET amount = -1 WHERE id = 9;              -- out by another column
		UPDATE orders SET amount = amount + 1 WHERE id = 12;     -- inside it
		DELETE FROM orders WHERE id IN (15, 16);
		BEGIN;
		INSERT INTO events VALUES (501, 'new'); INSERT INTO events_expected VALUES (501, 'new');
		UPDATE events SET v = 'changed' WHERE id = 1; UPDATE events_expected SET v = 'changed' WHERE id = 1;
		DELETE FROM events WHERE id BETWEEN 2 AND 10;
		COMMIT;
		UPDATE events SET v = 'late' WHERE id = 400; UPDATE events_expected SET v = 'late' WHERE id = 400;
		TRUNCATE events;
		INSERT INTO people VALUES (3001, 'new', 'new@x', 'hidden!');
		UPDATE people SET name = 'renamed', secret = 'changed' WHERE id <= 10;
		DELETE FROM people WHERE id BETWEEN 100 AND 110`)
	e.waitQuery("sel", "SELECT id, region, amount FROM orders WHERE region = 'eu' AND amount >= 0", "public.orders", "public.orders",
		[]string{"id", "region", "amount"}, 2*time.Minute)
	e.waitQuery("sel", "SELECT id, v FROM events_expected", "public.events", "public.events", []string{"id", "v"}, time.Minute)
	e.waitQuery("sel", "SELECT id, name, email FROM people", "public.people", "public.people", []string{"id", "name", "email"}, time.Minute)
}

// renames: a schema, a table and a column get new names at the
// destination; changes keep arriving under them.
func renames(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{})
	e.exec(`CREATE SCHEMA shop;
		CREATE TABLE shop.customers (id int PRIMARY KEY, name text);
		CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int REFERENCES shop.customers (id), amount int, note text);
		INSERT INTO shop.customers SELECT g, 'c' || g FROM generate_series(1, 100) g;
		INSERT INTO shop.orders SELECT g, 1 + g % 100, g, 'n' FROM generate_series(1, 3000) g`)
	e.create("ren", `objects:
  - schema: shop
    rename_schema: sales
    rename: { orders: sales_orders, "orders.amount": total }
`)
	e.incremental("ren")
	e.exec(`INSERT INTO shop.orders VALUES (5001, 7, 42, 'new');
		UPDATE shop.orders SET amount = amount * 2 WHERE id <= 50;
		DELETE FROM shop.orders WHERE id BETWEEN 100 AND 120;
		UPDATE shop.customers SET name = 'renamed' WHERE id = 3`)
	e.waitQuery("ren", "SELECT id, customer_id, amount, note FROM shop.orders", "sales.sales_orders", "shop.orders",
		[]string{"id", "customer_id", "total=amount", "note"}, 2*time.Minute)
	e.waitQuery("ren", "SELECT id, name FROM shop.customers", "sales.customers", "shop.customers", []string{"id", "name"}, time.Minute)
}

// addTables: a table added to the running task gets its schema and copy
// while the task's other table keeps streaming, its changes meanwhile
// waiting; a removed table stops being synced and keeps what it had.
func addTables(t *testing.T, d Destination) {
	e := newEnv(t, d, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 8}})
	e.exec(`CREATE TABLE a (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, 'a' FROM generate_series(1, 1000) g;
		CREATE TABLE b (id int PRIMARY KEY, v text, n int);
		INSERT INTO b SELECT g, 'b', g FROM generate_series(1, 4000) g`)
	// spec is the task with tables, and more keys of their objects entry.
	// The full-sync throttle makes b's copy take seconds, so that changes
	// to rows not copied yet arrive while it runs: they must wait for it.
	spec := func(tables, more string) []byte {
		return []byte(fmt.Sprintf("name: grow\nsource: { dsn: %q }\ndestination: %s\nthrottle: { full: { rps: 1000 } }\nobjects:\n  - schema: public\n    tables: [%s]\n%s",
			e.src.DSN(testenv.DefaultDB), e.target.Block(), tables, more))
	}
	e.exec(`CREATE TABLE nokey (v text)`)
	e.create("grow", "throttle: { full: { rps: 1000 } }\nobjects: [{schema: public, tables: [a]}]\n")
	e.incremental("grow")
	ctx := context.Background()
	// An added table that fails the precheck, and a new filter on a
	// synced table, are refused with their fields.
	if _, err := e.c.UpdateTask(ctx, "grow", spec("a, nokey", "")); err == nil || !strings.Contains(err.Error(), "source.replica_identity") {
		t.Fatalf("adding a table without a key: %v", err)
	}
	if _, err := e.c.UpdateTask(ctx, "grow", spec("a, b", "    filter: { a: \"id > 5\" }\n")); err == nil || !strings.Contains(err.Error(), "objects[0].filter.a") {
		t.Fatalf("a new filter on a synced table: %v", err)
	}
	// Both tables change all along, the one being added included.
	stop := e.writer(func(i int) string {
		return fmt.Sprintf(`INSERT INTO a VALUES (%d, 'w'); UPDATE b SET v = v || '+', n = n + 1 WHERE id = %d; INSERT INTO b VALUES (%d, 'new', 0); DELETE FROM b WHERE id = %d`,
			2000+i, 4000-(i*13)%4000, 30000+i, 3999-(i*7)%3900)
	})
	if _, err := e.c.UpdateTask(ctx, "grow", spec("a, b", "")); err != nil {
		t.Fatal(err)
	}
	// The status names b until its copy is in.
	st := e.status("grow", "b being added", time.Minute, func(st *proto.TaskStatus) bool { return len(st.Adding) > 0 })
	if st.Adding[0] != "public.b" {
		t.Fatalf("adding: %v", st.Adding)
	}
	e.status("grow", "b added", 2*time.Minute, func(st *proto.TaskStatus) bool { return len(st.Adding) == 0 && st.State == proto.StateRunning })
	stop()
	e.waitEqual("grow", []string{"public.a", "public.b"}, 2*time.Minute)

	if _, err := e.c.UpdateTask(ctx, "grow", spec("b", "")); err != nil {
		t.Fatal(err)
	}
	before := len(e.target.Read(t, "grow", tableID("a"), e.columns(tableID("a"))))
	// Once the capture has the new set, a's changes are no longer synced.
	time.Sleep(2 * time.Second)
	e.exec(`INSERT INTO a VALUES (-1, 'after removal'); INSERT INTO b VALUES (-1, 'still synced', 0)`)
	e.waitEqual("grow", []string{"public.b"}, time.Minute)
	if after := len(e.target.Read(t, "grow", tableID("a"), e.columns(tableID("a")))); after != before {
		t.Fatalf("the removed table went from %d rows to %d at the destination", before, after)
	}
}
