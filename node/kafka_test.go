package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

func kafkaTaskYAML(name, srcDSN string, k *testenv.Kafka, dest, objects string) []byte {
	return []byte(fmt.Sprintf(`name: %s
source: { dsn: "%s" }
destination:
  type: kafka
  brokers: [%s]
%sobjects:
  - schema: public
%s`, name, srcDSN, strings.Join(k.Brokers, ", "), dest, objects))
}

// debeziumEvent decodes the Debezium messages of one table's topic for
// foldEvents: snapshot rows count as inserts, and a before image is
// taken only from a table under REPLICA IDENTITY FULL (full), where it
// is the whole row.
func debeziumEvent(t *testing.T, table string, full bool) func(testenv.Record) fmtEvent {
	return func(r testenv.Record) fmtEvent {
		t.Helper()
		m := decodeDebezium(t, r)
		if m.Source.Table != table {
			t.Fatalf("message of table %s in the topic of %s", m.Source.Table, table)
		}
		ev := fmtEvent{op: m.Op, lsn: m.Source.LSN, row: m.After, snapshot: m.Op == "r"}
		if m.Transaction != nil {
			ev.order = m.Transaction.TotalOrder
		}
		if ev.snapshot {
			ev.op = "c"
		}
		if m.Op != "t" {
			ev.key = normKey(t, r.Key)
		}
		if full {
			ev.before = m.Before
		}
		return ev
	}
}

// debeziumMessage is the part of a Debezium envelope the tests read.
type debeziumMessage struct {
	Op     string         `json:"op"`
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source struct {
		Table string `json:"table"`
		LSN   uint64 `json:"lsn"`
	} `json:"source"`
	Transaction *struct {
		TotalOrder uint64 `json:"total_order"`
	} `json:"transaction"`
}

func decodeDebezium(t *testing.T, r testenv.Record) debeziumMessage {
	t.Helper()
	var m debeziumMessage
	if err := json.Unmarshal(r.Value, &m); err != nil {
		t.Fatalf("message %s: %v", r.Value, err)
	}
	return m
}

// sourceState is what a table's rows look like as Debezium after images
// of (id int, v text, n int): keyed like the messages.
func sourceState(t *testing.T, conn *pgx.Conn, table string) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf(`SELECT json_build_object('id', id)::text, to_jsonb(t)::text FROM %s t`, table))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		var row map[string]any
		_ = json.Unmarshal([]byte(v), &row)
		b, _ := json.Marshal(row)
		var key map[string]any
		_ = json.Unmarshal([]byte(k), &key)
		kb, _ := json.Marshal(key)
		out[string(kb)] = string(b)
	}
	return out
}

func compareStates(src, dst map[string]string) error {
	for k, v := range src {
		if dst[k] != v {
			return fmt.Errorf("key %s: source %s, kafka %s", k, v, dst[k])
		}
	}
	for k := range dst {
		if _, ok := src[k]; !ok {
			return fmt.Errorf("key %s in kafka only (%d keys in kafka, %d in source)", k, len(dst), len(src))
		}
	}
	return nil
}

// PostgreSQL → Kafka: precheck, topics, full sync as snapshot messages,
// then changes under load; the topic folded by key ends equal to the
// source table, every change once and in per-key order.
func TestSyncToKafka(t *testing.T) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	ctx := context.Background()
	conn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `
		CREATE TABLE orders (id int PRIMARY KEY, v text, n int);
		INSERT INTO orders SELECT g, 'v' || g, g FROM generate_series(1, 3000) g;
		CREATE TABLE events (id int PRIMARY KEY, v text, n int);
		INSERT INTO events SELECT g, 'e', g FROM generate_series(1, 100) g`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 8}})
	c := n.Client()

	// Bad input is named before anything starts.
	if _, err := c.CreateTask(ctx, kafkaTaskYAML("bad", src.DSN(testenv.DefaultDB), k, "  format: xml\n  acks: \"0\"\n", "")); err == nil ||
		!strings.Contains(err.Error(), "destination.format") || !strings.Contains(err.Error(), "destination.acks") {
		t.Fatalf("bad kafka settings: %v", err)
	}
	unreachable := []byte(strings.Replace(string(kafkaTaskYAML("down", src.DSN(testenv.DefaultDB), k, "", "")), k.Brokers[0], "127.0.0.1:1", 1))
	if _, err := c.CreateTask(ctx, unreachable); err == nil || !strings.Contains(err.Error(), "destination.connect") {
		t.Fatalf("unreachable brokers: %v", err)
	}

	spec := kafkaTaskYAML("tok", src.DSN(testenv.DefaultDB), k, "  topic: cdc\n  partitioning: primary-key\n  topic_partitions: 3\n",
		"    tables: [orders, events]\n    topics: { events: events-cdc }\n")
	createTask(t, c, spec)
	waitPhase(t, c, "tok", proto.PhaseIncremental, 2*time.Minute)
	// (The pipeline suite, pipeline/pipelinetest, syncs a load into Kafka;
	// here: the topics a table is routed to, and their partitions.)
	for i := range 50 {
		testenv.MustExec(t, conn, fmt.Sprintf(`INSERT INTO orders VALUES (%d, 'new', 0); UPDATE orders SET v = v || '+', n = n + 1 WHERE id = %d; DELETE FROM orders WHERE id = %d; UPDATE events SET n = n + 1 WHERE id = %d`,
			10000+i, 1+(i*13)%3000, 2+(i*7)%2900, 1+i%100))
	}
	testenv.MustExec(t, conn, `UPDATE orders SET id = -id WHERE id = 5`) // a key change: delete + insert for readers
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		for table, topic := range map[string]string{"orders": "cdc", "events": "events-cdc"} {
			if err := compareStates(sourceState(t, conn, table), foldEvents(t, k.ReadTopic(t, topic), debeziumEvent(t, table, false))); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})
	// Snapshot rows came once each.
	snap := map[string]int{}
	for _, r := range k.ReadTopic(t, "cdc") {
		if strings.Contains(string(r.Value), `"op":"r"`) {
			snap[string(r.Key)]++
		}
	}
	if len(snap) != 3000 || slices.Max(slices.Collect(maps.Values(snap))) != 1 {
		t.Fatalf("snapshot messages: %d keys, max per key %d", len(snap), slices.Max(slices.Collect(maps.Values(snap))))
	}
	st, err := c.GetTask(ctx, "tok")
	if err != nil || st.State != proto.StateRunning || st.Spec.Destination.Config.(*kafka.Config).Brokers[0] != k.Brokers[0] {
		t.Fatalf("task: %+v %v", st, err)
	}
	if err := c.DeleteTask(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
}

// DDL sync to Kafka: schema changes are messages in the DDL topic, once
// each, and only those of the operations ddl_operations selects; rows
// after a change carry the new shape, and a table created at the source
// joins the task's topic.
func TestSyncToKafkaDDL(t *testing.T) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	conn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `
		CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 200) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	spec := kafkaTaskYAML("kddl", src.DSN(testenv.DefaultDB), k, "  topic: cdc\n  ddl_topic: cdc-ddl\n", "")
	createTask(t, c, append(spec, "sync: { ddl: true, ddl_operations: [create_table, add_column] }\n"...))
	waitPhase(t, c, "kddl", proto.PhaseIncremental, 2*time.Minute)

	testenv.MustExec(t, conn, `ALTER TABLE items ADD COLUMN note text`)
	testenv.MustExec(t, conn, `UPDATE items SET note = 'n' || id`)
	testenv.MustExec(t, conn, `CREATE INDEX items_note_idx ON items (note)`)  // create_index: not selected
	testenv.MustExec(t, conn, `UPDATE items SET v = v || '+' WHERE id <= 10`) // after the index, in its subject
	testenv.MustExec(t, conn, `CREATE TABLE extra (id int PRIMARY KEY, w int)`)
	testenv.MustExec(t, conn, `INSERT INTO extra SELECT g, g * 2 FROM generate_series(1, 20) g`)

	// The data topic holds both tables' rows; each folds to its source.
	byTable := func() map[string][]testenv.Record {
		out := map[string][]testenv.Record{}
		for _, r := range k.ReadTopic(t, "cdc") {
			m := decodeDebezium(t, r)
			out[m.Source.Table] = append(out[m.Source.Table], r)
		}
		return out
	}
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		recs := byTable()
		for _, table := range []string{"items", "extra"} {
			if err := compareStates(sourceState(t, conn, table), foldEvents(t, recs[table], debeziumEvent(t, table, false))); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		return nil
	})

	type schemaChange struct {
		DDL          string `json:"ddl"`
		TableChanges []struct {
			Type  string `json:"type"`
			ID    string `json:"id"`
			Table struct {
				PrimaryKeyColumnNames []string `json:"primaryKeyColumnNames"`
				Columns               []struct {
					Name string `json:"name"`
				} `json:"columns"`
			} `json:"table"`
		} `json:"tableChanges"`
	}
	// Tables in other apply groups write their changes independently:
	// compared as a set.
	var got []string
	for _, r := range k.ReadTopic(t, "cdc-ddl") {
		var m schemaChange
		if err := json.Unmarshal(r.Value, &m); err != nil || len(m.TableChanges) != 1 {
			t.Fatalf("not a schema change: %s (%v)", r.Value, err)
		}
		tc := m.TableChanges[0]
		var cols []string
		for _, col := range tc.Table.Columns {
			cols = append(cols, col.Name)
		}
		got = append(got, fmt.Sprintf("%s %s %v key %v: %s", tc.Type, tc.ID, cols, tc.Table.PrimaryKeyColumnNames, m.DDL))
	}
	slices.Sort(got)
	want := []string{
		`ALTER "public"."items" [id v note] key [id]: ALTER TABLE items ADD COLUMN note text`,
		`CREATE "public"."extra" [id w] key [id]: CREATE TABLE extra (id int PRIMARY KEY, w int)`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("schema changes in cdc-ddl:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
