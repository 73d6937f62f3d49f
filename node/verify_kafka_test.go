package node_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// lastMessage is the last message of a table's row in a topic (its key,
// normalised, is key): the record, and its value decoded.
func lastMessage(t *testing.T, recs []testenv.Record, table, key string) (testenv.Record, map[string]any) {
	t.Helper()
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.Key == nil || normKey(t, r.Key) != key {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		if src, _ := m["source"].(map[string]any); src["table"] == table {
			return r, m
		}
	}
	t.Fatalf("no message of %s key %s", table, key)
	return testenv.Record{}, nil
}

// sluice verify on a running PostgreSQL → Kafka task: each table's topic
// folded by key (read_committed) compares equal to the source while a
// workload updates the same keys over and over; damage done to the topics
// (a changed row, a tombstone, a row the source lacks, a keyless row
// written twice) is named by key; --repair pauses the task, writes the
// source's rows (and deletes) to the topics and resumes it: verify is
// clean after, the task runs again, and rows written after arrive.
func TestVerifyKafka(t *testing.T) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	ctx := context.Background()
	srcDSN := src.DSN(testenv.DefaultDB)
	conn := testenv.Conn(t, srcDSN)
	testenv.MustExec(t, conn, verifiedItemsAndLogs+`
		CREATE TABLE orders (id int PRIMARY KEY, amount int, region text);
		INSERT INTO orders SELECT g, g * 10, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END FROM generate_series(1, 60) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, kafkaTaskYAML("kv", srcDSN, k, "  topic: cdc\n  topic_partitions: 3\n", "    topics: { orders: orders-cdc }\n"))
	waitPhase(t, c, "kv", proto.PhaseIncremental, 3*time.Minute)

	// 1. While the same keys are updated over and over, verify reports
	// nothing.
	nothingUnderLoad(t, c, "kv", srcDSN, 3)

	// 2. Damage the topics: a row with a changed value, a tombstone, a
	// row the source lacks, a keyless row once more; each where a
	// consumer reads its key (the partition of its messages).
	producer, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produce := func(topic string, partition int32, key []byte, value map[string]any) {
		t.Helper()
		rec := &kgo.Record{Topic: topic, Partition: partition, Key: key}
		if value != nil {
			b, err := json.Marshal(value)
			if err != nil {
				t.Fatal(err)
			}
			rec.Value = b
		}
		if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cdc := k.ReadTopic(t, "cdc")
	rec, m := lastMessage(t, cdc, "items", `{"id":107}`)
	m["after"].(map[string]any)["note"] = "damaged"
	m["op"] = "u"
	produce("cdc", rec.Partition, rec.Key, m)
	rec, _ = lastMessage(t, cdc, "items", `{"id":108}`)
	produce("cdc", rec.Partition, rec.Key, nil)
	rec, m = lastMessage(t, cdc, "items", `{"id":109}`)
	m["after"].(map[string]any)["id"] = 9999
	produce("cdc", rec.Partition, []byte(`{"id":9999}`), m)
	for _, r := range cdc {
		var logRow map[string]any
		if err := json.Unmarshal(r.Value, &logRow); err != nil {
			t.Fatal(err)
		}
		if src, _ := logRow["source"].(map[string]any); src["table"] == "logs" && logRow["op"] == "r" {
			produce("cdc", r.Partition, r.Key, logRow)
			break
		}
	}
	rec, m = lastMessage(t, k.ReadTopic(t, "orders-cdc"), "orders", `{"id":10}`)
	m["after"].(map[string]any)["amount"] = -1
	produce("orders-cdc", rec.Partition, rec.Key, m)

	report, err := c.Verify(ctx, "kv", proto.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := verifyDiffs(report)
	var logsDiff string
	got = slices.DeleteFunc(got, func(s string) bool {
		if strings.HasPrefix(s, "public.logs ") {
			logsDiff = s
			return true
		}
		return false
	})
	want := []string{"public.items changed id=107 (note)", "public.items extra id=9999", "public.items missing id=108", "public.orders changed id=10 (amount)"}
	if !slices.Equal(got, want) || !strings.HasPrefix(logsDiff, "public.logs extra ") || report.Outcome() != 1 {
		t.Fatalf("differences (outcome %d):\n%s\n%s\nwant:\n%s\npublic.logs extra ...", report.Outcome(), strings.Join(got, "\n"), logsDiff, strings.Join(want, "\n"))
	}

	// 3. --repair writes the source's rows with the task paused, and
	// resumes it: every difference is repaired, none remains.
	repaired, err := c.Verify(ctx, "kv", proto.VerifyRequest{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range repaired.Tables {
		if tr.Error != "" || tr.Remaining != 0 || (tr.Differs() && tr.Repaired == 0) {
			t.Fatalf("repair of %s: %+v", tr.Table, tr)
		}
	}
	if repaired.Outcome() != 0 {
		t.Fatalf("repair outcome %d: %+v", repaired.Outcome(), repaired.Tables)
	}
	waitState(t, c, "kv", proto.StateRunning, time.Minute)
	if report, err := c.Verify(ctx, "kv", proto.VerifyRequest{}); err != nil || report.Outcome() != 0 || len(verifyDiffs(report)) > 0 {
		t.Fatalf("verify after the repair (%v): %s", err, strings.Join(verifyDiffs(report), "\n"))
	}

	// 4. The task runs again: rows written at the source after the
	// repair arrive, and verify stays clean.
	testenv.MustExec(t, conn, `UPDATE items SET note = 'after repair' WHERE id IN (107, 108);
		DELETE FROM orders WHERE id = 10; INSERT INTO orders VALUES (1000, 1, 'eu'); INSERT INTO logs VALUES ('after', 1)`)
	deadline := time.Now().Add(time.Minute)
	for {
		report, err := c.Verify(ctx, "kv", proto.VerifyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if report.Outcome() == 0 && len(verifyDiffs(report)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify after writes that followed the repair:\n%s", strings.Join(verifyDiffs(report), "\n"))
		}
		time.Sleep(time.Second)
	}
	if st := waitState(t, c, "kv", proto.StateRunning, time.Minute); st.State != proto.StateRunning {
		t.Fatalf("task state %s", st.State)
	}
	recs := k.ReadTopic(t, "cdc")
	if _, m := lastMessage(t, recs, "items", `{"id":107}`); m["after"].(map[string]any)["note"] != "after repair" {
		t.Fatalf("last message of id 107: %v", m)
	}
}
