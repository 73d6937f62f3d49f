package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// etlSchema is the source table of the ETL tests: doc is stored out of
// line uncompressed, so a row's doc is TOASTed and an update that leaves
// it alone carries it as "unchanged".
const etlSchema = `CREATE TABLE customers (id int PRIMARY KEY, email text, region text, doc text);
	ALTER TABLE customers ALTER doc SET STORAGE EXTERNAL;
	INSERT INTO customers SELECT g, 'user' || g || '@example.com', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,
		CASE WHEN g % 10 = 0 THEN (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) ELSE 'd' || g END
	FROM generate_series(1, 300) g`

// etlObjects are the objects entry's transform keys of the ETL tests.
const etlObjects = `    tables: [customers]
    transform: { customers: { email: "md5(email)", region: "upper(region)" } }
    add_columns: { customers: { synced_at: "now()", id10: "id * 10", doc_md5: "md5(doc)" } }
`

// etlExpected is the source's rows as the transforms make them, the
// volatile synced_at left out (it is the time the row was computed).
const etlExpected = `(SELECT id, md5(email) AS email, upper(region) AS region, doc, md5(doc) AS doc_md5, id * 10 AS id10 FROM customers)`

// etlWorkload writes inserts, updates of transformed columns, updates
// that leave the TOASTed doc unchanged (so md5(doc) reads it from the
// source's row) and deletes: a bounded number of transactions.
func etlWorkload(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for i := range 40 {
		testenv.MustExec(t, conn, fmt.Sprintf(`
			INSERT INTO customers VALUES (%[1]d, 'new%[1]d@example.com', 'apac', repeat('x', %[1]d));
			UPDATE customers SET email = email || '.org' WHERE id = %[2]d;
			UPDATE customers SET region = 'latam' WHERE id = %[3]d;
			DELETE FROM customers WHERE id = %[4]d`,
			1000+i, 1+(i*7)%300, 10*(1+i%30), 3+i*5))
	}
	// A doc changed after an update that left it alone, in one batch.
	testenv.MustExec(t, conn, `BEGIN; UPDATE customers SET region = 'mena' WHERE id = 20; UPDATE customers SET doc = doc || 'z' WHERE id = 20; COMMIT`)
}

// Column transforms through the real process, into PostgreSQL: the full
// sync computes them in the snapshot's query, the incremental sync at
// apply; the destination ends equal to the source's rows as the
// expressions make them, with the destination columns of the
// expressions' types and synced_at set on every row. Bad transforms are
// refused at task create, naming the field.
func TestTransformsFullAndIncremental(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, etlSchema)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "4")
	c := proc.Client()

	// An expression that does not compile against the table.
	bad := taskYAML("etl-bad", p, "    tables: [customers]\n    transform: { customers: { email: \"md5(nosuch)\" } }\n")
	if _, err := c.CreateTask(ctx, bad); err == nil || !strings.Contains(err.Error(), "objects[0].transform.customers.email") || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("a transform that does not compile: %v", err)
	}
	// One that reads a column the changes do not carry (not synced).
	unsynced := taskYAML("etl-cols", p, "    tables: [customers]\n    columns: { customers: [id, email] }\n    add_columns: { customers: { r: \"upper(region)\" } }\n")
	if _, err := c.CreateTask(ctx, unsynced); err == nil || !strings.Contains(err.Error(), "objects[0].add_columns.customers.r") || !strings.Contains(err.Error(), "region") {
		t.Fatalf("a transform of a column not synced: %v", err)
	}
	// One whose type does not fit the destination's existing column.
	testenv.MustExec(t, dst, `CREATE TABLE customers (id int PRIMARY KEY, email text, region text, doc text, doc_md5 text, id10 int, synced_at timestamptz)`)
	misfit := taskYAML("etl-misfit", p, "    tables: [customers]\n    add_columns: { customers: { id10: \"now()\" } }\nconflicting_tables: ignore\n")
	if _, err := c.CreateTask(ctx, misfit); err == nil || !strings.Contains(err.Error(), "objects[0].add_columns.customers.id10") || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("a transform whose type does not fit: %v", err)
	}
	// A key column cannot be transformed (deletes carry only the key).
	keyed := taskYAML("etl-key", p, "    tables: [customers]\n    transform: { customers: { id: \"id + 1\" } }\n")
	if _, err := c.CreateTask(ctx, keyed); err == nil || !strings.Contains(err.Error(), "objects[0].transform.customers.id") {
		t.Fatalf("a transformed key: %v", err)
	}
	testenv.MustExec(t, dst, `DROP TABLE customers`)

	createTask(t, c, taskYAML("etl", p, etlObjects))
	waitPhase(t, c, "etl", proto.PhaseIncremental, 2*time.Minute)
	checkFor := func(what string) {
		t.Helper()
		testenv.CheckFor(t, 2*time.Minute, 250*time.Millisecond, func() error {
			if err := testenv.CompareTable(ctx, src, dst, etlExpected, `(SELECT id, email, region, doc, doc_md5, id10 FROM customers)`); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
	}
	checkFor("after the full sync")
	etlWorkload(t, src)
	checkFor("after the changes")

	var unset int
	var types string
	if err := dst.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers WHERE synced_at IS NULL),
		(SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
		 WHERE attrelid = 'customers'::regclass AND attnum > 0 AND NOT attisdropped)`).Scan(&unset, &types); err != nil {
		t.Fatal(err)
	}
	if unset != 0 {
		t.Fatalf("%d rows without synced_at", unset)
	}
	if want := "id integer, email text, region text, doc text, doc_md5 text, id10 integer, synced_at timestamp with time zone"; types != want {
		t.Fatalf("destination columns: %s, want %s", types, want)
	}
	// verify compares the columns the transforms leave alone: equal now,
	// and a difference in one of them is found.
	report, err := c.Verify(ctx, "etl", proto.VerifyRequest{})
	if err != nil || report.Outcome() != 0 {
		t.Fatalf("verify: %v %v", report, err)
	}
	testenv.MustExec(t, dst, `UPDATE customers SET doc = 'changed' WHERE id = 1`)
	if report, err = c.Verify(ctx, "etl", proto.VerifyRequest{}); err != nil || report.Outcome() != 1 {
		t.Fatalf("verify after a change at the destination: %v %v", report, err)
	}
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// The same transforms into Kafka: the messages carry the computed values
// (JSON), synced_at on every row.
func TestTransformsToKafka(t *testing.T) {
	srcPG := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	src := testenv.Conn(t, srcPG.DSN(testenv.DefaultDB))
	// Without large documents: the Kafka readers here check whole rows.
	testenv.MustExec(t, src, strings.Replace(etlSchema, "g % 10 = 0", "false", 1))
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "4")
	c := proc.Client()
	createTask(t, c, kafkaTaskYAML("etlk", srcPG.DSN(testenv.DefaultDB), k, "  topic: etl\n  partitioning: primary-key\n", etlObjects))
	waitPhase(t, c, "etlk", proto.PhaseIncremental, 2*time.Minute)
	for i := range 30 {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO customers VALUES (%[1]d, 'k%[1]d@example.com', 'apac', 'd');
			UPDATE customers SET email = email || '.org', region = 'latam' WHERE id = %[2]d; DELETE FROM customers WHERE id = %[3]d`, 1000+i, 1+i*9, 2+i*9))
	}
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		got := foldEvents(t, k.ReadTopic(t, "etl"), debeziumEvent(t, "customers", false))
		for key, v := range got {
			var row map[string]any
			if err := json.Unmarshal([]byte(v), &row); err != nil {
				return err
			}
			if row["synced_at"] == nil {
				return fmt.Errorf("key %s: no synced_at: %s", key, v)
			}
			delete(row, "synced_at")
			b, _ := json.Marshal(row)
			got[key] = string(b)
		}
		return compareStates(sourceState(t, src, etlExpected), got)
	})
	if t.Failed() {
		t.Log(proc.Log())
	}
}

// With DDL sync, renaming a transformed column at the source stops the
// apply with an error that names the transform; the rows before the
// change are at the destination, transformed.
func TestTransformsStopAtDDL(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, etlSchema)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, taskYAML("etlddl", p, etlObjects+"sync: { ddl: true }\n"))
	waitPhase(t, c, "etlddl", proto.PhaseIncremental, 2*time.Minute)
	testenv.MustExec(t, src, `INSERT INTO customers VALUES (5000, 'before@x', 'eu', 'd')`)
	testenv.CheckFor(t, time.Minute, 250*time.Millisecond, func() error {
		return testenv.CompareTable(ctx, src, dst, etlExpected, `(SELECT id, email, region, doc, doc_md5, id10 FROM customers)`)
	})
	testenv.MustExec(t, src, `ALTER TABLE customers RENAME COLUMN email TO mail; INSERT INTO customers VALUES (5001, 'after@x', 'eu', 'd')`)
	testenv.CheckFor(t, 2*time.Minute, 250*time.Millisecond, func() error {
		st, err := c.GetTask(ctx, "etlddl")
		if err != nil {
			return err
		}
		if st.LastError == nil || !strings.Contains(st.LastError.Message, `objects[0].transform.customers.email: the source renamed column "email"`) {
			return fmt.Errorf("state %s, last error %+v", st.State, st.LastError)
		}
		return nil
	})
	var after int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM customers WHERE id = 5001`).Scan(&after); err != nil || after != 0 {
		t.Fatalf("a row after the change was applied: %d %v", after, err)
	}
}

// The same transforms into Doris (the emulator): the table's computed
// columns are of the expressions' types, and its rows end equal to the
// source's as the expressions make them, synced_at set on each.
func TestTransformsToDoris(t *testing.T) {
	srcPG := testenv.NewPostgres(t)
	e := testenv.NewDoris(t)
	ctx := context.Background()
	srcDSN := srcPG.DSN(testenv.DefaultDB)
	src := testenv.Conn(t, srcDSN)
	testenv.MustExec(t, src, strings.Replace(etlSchema, "g % 10 = 0", "false", 1))
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, []byte(fmt.Sprintf(`name: etld
source: { dsn: "%s" }
destination: { type: doris, url: "%s", user: root, database: dw, batch_interval: 1s }
objects:
  - schema: public
%s`, srcDSN, e.FEURL(), etlObjects)))
	waitPhase(t, c, "etld", proto.PhaseIncremental, 3*time.Minute)
	for i := range 20 {
		testenv.MustExec(t, src, fmt.Sprintf(`INSERT INTO customers VALUES (%[1]d, 'd%[1]d@example.com', 'apac', 'd');
			UPDATE customers SET email = email || '.org', region = 'latam' WHERE id = %[2]d; DELETE FROM customers WHERE id = %[3]d`, 1000+i, 1+i*9, 2+i*9))
	}
	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "dw"}
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		rows, err := src.Query(ctx, `SELECT concat_ws('|', id, md5(email), upper(region), doc, md5(doc), id * 10) FROM customers`)
		if err != nil {
			return err
		}
		want, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		_, got := srv.Query(t, "SELECT `id`, `email`, `region`, `doc`, `doc_md5`, `id10`, `synced_at` FROM `customers`")
		var have []string
		for _, r := range got {
			if r[6] == nil {
				return fmt.Errorf("row %s without synced_at", *r[0])
			}
			var vals []string
			for _, v := range r[:6] {
				vals = append(vals, *v)
			}
			have = append(have, strings.Join(vals, "|"))
		}
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(want, have) {
			return fmt.Errorf("Doris has %d rows, the source %d; first of each: %v / %v", len(have), len(want), first(have), first(want))
		}
		return nil
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[0]
}
