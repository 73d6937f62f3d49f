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

	"github.com/sluicedb/sluice/coordinator"
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

// debeziumState folds a topic's Debezium messages into the rows they
// leave, keyed by the message key, checking that positions never go back
// for a key (each change once, in order).
func debeziumState(t *testing.T, recs []testenv.Record, table string) map[string]string {
	t.Helper()
	// A truncate is written to every partition, in order with that
	// partition's changes: each partition folds on its own.
	parts := map[int32]map[string]string{}
	lastLSN := map[string]uint64{}
	for _, r := range recs {
		var m struct {
			Op     string          `json:"op"`
			After  json.RawMessage `json:"after"`
			Source struct {
				Table string `json:"table"`
				LSN   uint64 `json:"lsn"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("message %s: %v", r.Value, err)
		}
		if m.Source.Table != table {
			continue
		}
		k := string(r.Key)
		state := parts[r.Partition]
		if state == nil {
			state = map[string]string{}
			parts[r.Partition] = state
		}
		if m.Op != "r" {
			if m.Source.LSN < lastLSN[k] {
				t.Fatalf("key %s: lsn %d after %d", k, m.Source.LSN, lastLSN[k])
			}
			lastLSN[k] = m.Source.LSN
		}
		switch m.Op {
		case "c", "u", "r":
			var row map[string]any
			if err := json.Unmarshal(m.After, &row); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(row) // sorted keys
			state[k] = string(b)
		case "d":
			delete(state, k)
		case "t":
			clear(state)
		default:
			t.Fatalf("op %q", m.Op)
		}
	}
	out := map[string]string{}
	for _, state := range parts {
		maps.Copy(out, state)
	}
	return out
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
	conn := testenv.Conn(t, src.DSN("postgres"))
	testenv.MustExec(t, conn, `
		CREATE TABLE orders (id int PRIMARY KEY, v text, n int);
		INSERT INTO orders SELECT g, 'v' || g, g FROM generate_series(1, 3000) g;
		CREATE TABLE events (id int PRIMARY KEY, v text, n int);
		INSERT INTO events SELECT g, 'e', g FROM generate_series(1, 100) g`)
	n := sluicetest.StartNode(t, node.Config{Runner: node.RunnerConfig{PagesPerChunk: 8}})
	c := &coordinator.Client{BaseURL: n.URL}

	// Bad input is named before anything starts.
	if _, err := c.CreateTask(ctx, kafkaTaskYAML("bad", src.DSN("postgres"), k, "  format: xml\n  acks: \"0\"\n", "")); err == nil ||
		!strings.Contains(err.Error(), "destination.format") || !strings.Contains(err.Error(), "destination.acks") {
		t.Fatalf("bad kafka settings: %v", err)
	}
	unreachable := []byte(strings.Replace(string(kafkaTaskYAML("down", src.DSN("postgres"), k, "", "")), k.Brokers[0], "127.0.0.1:1", 1))
	if _, err := c.CreateTask(ctx, unreachable); err == nil || !strings.Contains(err.Error(), "destination.connect") {
		t.Fatalf("unreachable brokers: %v", err)
	}

	spec := kafkaTaskYAML("tok", src.DSN("postgres"), k, "  topic: cdc\n  partitioning: primary-key\n  topic_partitions: 3\n",
		"    tables: [orders, events]\n    topics: { events: events-cdc }\n")
	createTask(t, c, spec)
	waitPhase(t, c, "tok", proto.PhaseIncremental, 2*time.Minute)
	for i := range 600 {
		testenv.MustExec(t, conn, fmt.Sprintf(`INSERT INTO orders VALUES (%d, 'new', 0); UPDATE orders SET v = v || '+', n = n + 1 WHERE id = %d; DELETE FROM orders WHERE id = %d; UPDATE events SET n = n + 1 WHERE id = %d`,
			10000+i, 1+(i*13)%3000, 2+(i*7)%2900, 1+i%100))
	}
	testenv.MustExec(t, conn, `UPDATE orders SET id = -id WHERE id = 5`) // a key change: delete + insert for readers
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		for table, topic := range map[string]string{"orders": "cdc", "events": "events-cdc"} {
			if err := compareStates(sourceState(t, conn, table), debeziumState(t, k.ReadTopic(t, topic), table)); err != nil {
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
	if err != nil || st.State != proto.StateRunning || st.Spec.Destination.Brokers[0] != k.Brokers[0] {
		t.Fatalf("task: %+v %v", st, err)
	}
	if err := c.DeleteTask(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
}
