package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// kcatFormat prints one message a line: key, a tab, value. The sink's
// JSON keys and values escape control characters, so neither holds a tab
// or a newline of its own. (kcat expands the \t and \n itself.)
const kcatFormat = `%k\t%s\n`

// runKcat reads topic from its beginning to its end as kcat does, with
// the isolation level given, and returns the lines it printed. -e makes
// kcat exit once every partition is read to its end (for read_committed:
// to the last stable offset), so no clock decides when reading stops; the
// timeout only bounds a kcat that hangs.
func runKcat(t *testing.T, k *testenv.Kafka, topic, isolation string) []string {
	t.Helper()
	bin, err := exec.LookPath("kcat")
	if err != nil {
		// A failure, not a skip: a missing tool must not pass unnoticed.
		t.Fatalf("kcat is not installed (%v): run `make deps`", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-b", strings.Join(k.Brokers, ","), "-C", "-t", topic, "-o", "beginning", "-e",
		"-X", "isolation.level="+isolation, "-f", kcatFormat)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v (ctx: %v)\nstderr:\n%s", cmd, err, ctx.Err(), stderr.String())
	}
	out := strings.TrimSuffix(stdout.String(), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// kcatMessages decodes kcat's lines of Debezium messages as
// "key op:id:v" (v of the after image, or of the before image for a
// delete), checking that the key and the image agree on the id.
func kcatMessages(t *testing.T, lines []string) []string {
	t.Helper()
	var out []string
	for _, line := range lines {
		key, value, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("kcat line without a tab: %q", line)
		}
		var k struct {
			ID json.Number `json:"id"`
		}
		if err := json.Unmarshal([]byte(key), &k); err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		var m struct {
			Op     string         `json:"op"`
			Before map[string]any `json:"before"`
			After  map[string]any `json:"after"`
		}
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("value %q: %v", value, err)
		}
		img := m.After
		if m.Op == "d" {
			img = m.Before
		}
		if img == nil || fmt.Sprint(img["id"]) != k.ID.String() {
			t.Fatalf("message %q: key and image disagree", line)
		}
		out = append(out, fmt.Sprintf("%s %s:%v:%v", key, m.Op, img["id"], img["v"]))
	}
	return out
}

// abortTxn writes a message of table a in a Kafka transaction that it
// then aborts: the message stays in the log, and a read_committed reader
// must skip it.
func abortTxn(t *testing.T, k *testenv.Kafka, topic string, row proto.Row) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	enc, err := NewEncoder(FormatConfig{Format: FormatDebezium, TaskName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	key, value, err := enc.Encode(ctx, topic, &Event{Database: "db", Table: tableA, Columns: colsA, Row: &row})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.TransactionalID("kcat-test-aborter"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

// kcat, the usual outside reader, reads the sink's topic and sees exactly
// the committed changes: not a fenced writer's, not an aborted
// transaction's. This is the command the README shows for checking a
// topic by hand.
func TestKcatReadsCommittedChanges(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	s := openSink(t, k, "t.apply.0", nil)
	if _, err := s.Offsets(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	upd := proto.Row{Op: proto.OpUpdate, Pos: pos(20, 0), New: text("1", "one+"), Old: text("1", "one")}
	del := proto.Row{Op: proto.OpDelete, Pos: pos(20, 1), Old: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindNull}, Values: [][]byte{[]byte("2"), nil}}}
	if err := s.Apply(ctx, changes(1, insert(pos(10, 0), "1", "one"), insert(pos(10, 1), "2", "two"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, changes(1, upd, del)); err != nil {
		t.Fatal(err)
	}
	// A new owner of the unit fences s: s's write fails and nothing of it
	// may become readable.
	cur := openSink(t, k, "t.apply.0", nil)
	if _, err := cur.Offsets(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, changes(1, insert(pos(30, 0), "3", "zombie"))); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("fenced writer's apply: %v", err)
	}
	// An aborted transaction sits between committed messages: a reader
	// has to skip it, not merely stop before it.
	abortTxn(t, k, "cdc", insert(pos(35, 0), "99", "aborted"))
	if err := cur.Apply(ctx, changes(2, insert(pos(40, 0), "4", "after abort"))); err != nil {
		t.Fatal(err)
	}

	got := kcatMessages(t, runKcat(t, k, "cdc", "read_committed"))
	want := []string{
		`{"id":1} c:1:one`,
		`{"id":2} c:2:two`,
		`{"id":1} u:1:one+`,
		`{"id":2} d:2:<nil>`,
		`{"id":4} c:4:after abort`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("kcat read_committed printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The aborted message is in the log (a read_uncommitted reader sees
	// it), so the check above proves kcat skipped it.
	uncommitted := kcatMessages(t, runKcat(t, k, "cdc", "read_uncommitted"))
	if !strings.Contains(strings.Join(uncommitted, "\n"), `{"id":99} c:99:aborted`) {
		t.Fatalf("the aborted message is not in the log; read_uncommitted printed:\n%s", strings.Join(uncommitted, "\n"))
	}
}
