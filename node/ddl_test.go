package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// DDL sync: every statement of the guides' list runs at the source while a
// writer keeps changing the table, and DDL and DML share one transaction;
// the destination ends with the source's rows and the source's schema.
// Deleting the task leaves no trigger, function or table in the source.
func TestDDLSync(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `
		CREATE TABLE items (id int PRIMARY KEY, v text, n int);
		INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 2000) g;
		CREATE TABLE t2 (id int PRIMARY KEY, v text);
		INSERT INTO t2 SELECT g, 'x' FROM generate_series(1, 50) g;
		CREATE TABLE dropme (id int PRIMARY KEY);
		INSERT INTO dropme VALUES (1)`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, append(taskYAML("ddl", p, ""), []byte("sync: { ddl: true }\n")...))
	waitPhase(t, c, "ddl", proto.PhaseIncremental, time.Minute)

	// The writer touches only id and v, which no statement below changes.
	stopWriter := startWriter(t, p.src.DSN(testenv.DefaultDB), 4000, 2*time.Millisecond, func(i int) string {
		return fmt.Sprintf(`INSERT INTO items (id, v) VALUES (%d, 'w%d'); UPDATE items SET v = v || '+' WHERE id = %d; DELETE FROM items WHERE id = %d`,
			3000+i, i, 1+i%2000, 2+(i*7)%1990)
	})
	statements := []string{
		`CREATE TABLE newt (id serial PRIMARY KEY, a text, b int)`,
		`INSERT INTO newt (a, b) SELECT 'a' || g, 1995 + g % 5 FROM generate_series(1, 100) g`,
		`ALTER TABLE items ADD COLUMN c1 text`,
		`UPDATE items SET c1 = 'c' || id WHERE id % 3 = 0`,
		`ALTER TABLE items ADD COLUMN c2 int DEFAULT 7`,
		`ALTER TABLE items ALTER COLUMN n TYPE bigint`,
		`UPDATE items SET n = n * 10000000000 WHERE id % 5 = 0`,
		`ALTER TABLE items ALTER COLUMN c2 DROP DEFAULT`,
		`INSERT INTO items (id, v) VALUES (-1, 'no default')`,
		`ALTER TABLE items ADD CONSTRAINT items_n_check CHECK (n IS NULL OR n >= 0)`,
		`ALTER TABLE newt ADD CONSTRAINT newt_a_key UNIQUE (a)`,
		`ALTER TABLE newt ADD CONSTRAINT newt_b_fk FOREIGN KEY (b) REFERENCES items (id)`,
		`CREATE INDEX items_v_idx ON items (v)`,
		`ALTER TABLE items DROP COLUMN c1`,
		`ALTER TABLE t2 RENAME TO t3`,
		`INSERT INTO t3 VALUES (1000, 'after rename')`,
		`ALTER TABLE t3 RENAME COLUMN v TO w`,
		`UPDATE t3 SET w = 'renamed column' WHERE id <= 10`,
		`TRUNCATE t3`,
		`INSERT INTO t3 SELECT g, 'y' FROM generate_series(1, 20) g`,
		`DROP TABLE dropme`,
		// DDL and DML in one transaction, a new table among them.
		`BEGIN;
		 INSERT INTO items (id, v) VALUES (-2, 'before');
		 ALTER TABLE items ADD COLUMN c3 text DEFAULT 'x';
		 UPDATE items SET c3 = 'y' WHERE id BETWEEN 1 AND 50;
		 CREATE TABLE txnew (id int PRIMARY KEY, v text);
		 INSERT INTO txnew VALUES (1, 'one'), (2, 'two');
		 ALTER TABLE txnew ADD COLUMN w int NOT NULL DEFAULT 0;
		 INSERT INTO txnew VALUES (3, 'three', 3);
		 COMMIT`,
		`CREATE TABLE keyless (a int, b text)`,
		`INSERT INTO keyless SELECT g, 'k' FROM generate_series(1, 10) g`,
		`UPDATE keyless SET b = 'changed' WHERE a <= 5`,
		`DELETE FROM keyless WHERE a = 10`,
	}
	for _, stmt := range statements {
		testenv.MustExec(t, src, stmt)
		time.Sleep(150 * time.Millisecond)
	}
	stopWriter()
	waitEqual(t, p, []string{"public.items", "public.newt", "public.t3", "public.txnew", "public.keyless"}, 2*time.Minute)

	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var shape string
	err := dst.QueryRow(ctx, `SELECT
		(SELECT string_agg(column_name || ' ' || data_type || ' ' || coalesce(column_default, '-'), ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'items')
		|| ' | ' || (SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid IN ('items'::regclass, 'newt'::regclass))
		|| ' | ' || (SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'items')
		|| ' | ' || (SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 't3')
		|| ' | ' || (to_regclass('public.dropme') IS NULL)::text || (to_regclass('public.t2') IS NULL)::text`).Scan(&shape)
	if err != nil {
		t.Fatal(err)
	}
	want := "id integer -, v text -, n bigint -, c2 integer -, c3 text 'x'::text | items_n_check,items_pkey,newt_a_key,newt_b_fk,newt_pkey | items_pkey,items_v_idx | id,w | truetrue"
	if shape != want {
		t.Fatalf("destination schema:\n got %s\nwant %s", shape, want)
	}
	st, err := c.GetTask(ctx, "ddl")
	if err != nil || st.State != proto.StateRunning || st.LastError != nil {
		t.Fatalf("task after the schema changes: %+v %v", st, err)
	}

	if err := c.DeleteTask(ctx, "ddl"); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SourceLeftovers(ctx, src); err != nil {
		t.Fatal(err)
	}
	// With the trigger gone, DDL runs as before.
	testenv.MustExec(t, src, `ALTER TABLE items ADD COLUMN gone int`)
}

// DDL operations can be chosen: with only add_column and create_table,
// a dropped column stays at the destination (its rows then carry no
// value for it) and an index is not created; the rows still arrive.
func TestDDLOperationSelection(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text, old text);
		INSERT INTO items SELECT g, 'v', 'o' FROM generate_series(1, 100) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, append(taskYAML("ddlsel", p, ""), []byte("sync: { ddl: true, ddl_operations: [add_column, create_table] }\n")...))
	waitPhase(t, c, "ddlsel", proto.PhaseIncremental, time.Minute)
	testenv.MustExec(t, src, `
		ALTER TABLE items DROP COLUMN old;
		CREATE INDEX items_v ON items (v);
		ALTER TABLE items ADD COLUMN added int DEFAULT 1;
		INSERT INTO items VALUES (101, 'new', 2);
		UPDATE items SET v = 'u' WHERE id <= 10`)
	waitSame(t, p, "(SELECT id, v, NULL::text AS old, added FROM public.items WHERE id > 100 UNION ALL SELECT id, v, 'o', added FROM public.items WHERE id <= 100)", "public.items", time.Minute)
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	var idx bool
	if err := dst.QueryRow(ctx, `SELECT to_regclass('public.items_v') IS NOT NULL`).Scan(&idx); err != nil || idx {
		t.Fatalf("index created though create_index is not selected: %v %v", idx, err)
	}
	// A selection that names an unknown operation is refused up front.
	_, err := c.CreateTask(ctx, append(taskYAML("ddlbad", p, ""), []byte("sync: { ddl: true, ddl_operations: [alter_everything] }\n")...))
	if err == nil || !strings.Contains(err.Error(), "sync.ddl_operations") {
		t.Fatalf("unknown DDL operation: %v", err)
	}
}

// startWriter runs stmt(0), stmt(1), ... up to n statements at the
// source, pausing between them, until the returned stop is called; stop
// waits for it and fails the test if a statement failed.
func startWriter(t *testing.T, dsn string, n int, pause time.Duration, stmt func(i int) string) (stop func()) {
	t.Helper()
	w := testenv.Conn(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if _, err := w.Exec(context.Background(), stmt(i)); err != nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
		done <- nil
	}()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
}
