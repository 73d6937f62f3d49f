package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// heartbeatMessage is a Debezium heartbeat message as the tests read it.
type heartbeatMessage struct {
	TsMS   int64 `json:"ts_ms"`
	Source struct {
		Name string `json:"name"`
		LSN  uint64 `json:"lsn"`
		TsUS int64  `json:"ts_us"`
	} `json:"source"`
}

// heartbeatsOf decodes the heartbeat messages keyed by task, in order
// (the topic has one partition).
func heartbeatsOf(t *testing.T, recs []testenv.Record, task string) []heartbeatMessage {
	t.Helper()
	key, _ := json.Marshal(map[string]string{"task": task})
	var out []heartbeatMessage
	for _, r := range recs {
		if string(r.Key) != string(key) {
			continue
		}
		var m heartbeatMessage
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("heartbeat %s: %v", r.Value, err)
		}
		out = append(out, m)
	}
	return out
}

// topicExists asks the brokers without creating the topic (ReadTopic
// fails on a missing one).
func topicExists(ctx context.Context, k *testenv.Kafka, topic string) (bool, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.ClientOpts...)...)
	if err != nil {
		return false, err
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return false, err
	}
	return topics.Has(topic), nil
}

// An idle source with destination.heartbeat on: heartbeat messages keep
// coming, their source position and time only move forward, and one unit
// writes them (every apply group sees every source heartbeat: more
// writers would write one several times, or an older one after a newer).
// A task without heartbeat writes none.
func TestSyncToKafkaHeartbeat(t *testing.T) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	ctx := context.Background()
	conn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `CREATE TABLE quiet (id int PRIMARY KEY, v text); INSERT INTO quiet VALUES (1, 'a'), (2, 'b')`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()

	on := kafkaTaskYAML("hbon", src.DSN(testenv.DefaultDB), k, "  topic: quiet-on\n  heartbeat: true\n  heartbeat_interval: 1s\n", "    tables: [quiet]\n")
	off := kafkaTaskYAML("hboff", src.DSN(testenv.DefaultDB), k, "  topic: quiet-off\n", "    tables: [quiet]\n")
	// The precheck looks at the heartbeat topic only when it is used.
	for spec, want := range map[string]bool{string(off): false, string(on): true} {
		report, err := c.Precheck(ctx, []byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range report.Checks {
			if ch.Check == "destination.topics" && strings.Contains(ch.Message, kafka.DefaultHeartbeatTopic) != want {
				t.Errorf("precheck of a task with heartbeat %v: %s", want, ch.Message)
			}
		}
	}

	start := time.Now()
	createTask(t, c, on)
	createTask(t, c, off)
	waitPhase(t, c, "hbon", proto.PhaseIncremental, 2*time.Minute)
	waitPhase(t, c, "hboff", proto.PhaseIncremental, 2*time.Minute)
	var beats []heartbeatMessage
	testenv.CheckFor(t, 2*time.Minute, 500*time.Millisecond, func() error {
		// hboff's groups apply heartbeats too (its latency is known from
		// them): had it a writer, it would have written by now.
		st, err := c.GetTask(ctx, "hboff")
		if err != nil {
			return err
		}
		if st.LatencyMS == nil {
			return fmt.Errorf("hboff: no heartbeat applied yet")
		}
		if ok, err := topicExists(ctx, k, kafka.DefaultHeartbeatTopic); !ok || err != nil {
			return fmt.Errorf("no topic %s yet (%v)", kafka.DefaultHeartbeatTopic, err)
		}
		beats = heartbeatsOf(t, k.ReadTopic(t, kafka.DefaultHeartbeatTopic), "hbon")
		if len(beats) < 3 {
			return fmt.Errorf("%d heartbeat messages of hbon", len(beats))
		}
		return nil
	})
	elapsed := time.Since(start)
	recs := k.ReadTopic(t, kafka.DefaultHeartbeatTopic)
	if off := heartbeatsOf(t, recs, "hboff"); len(off) > 0 {
		t.Fatalf("task hboff (heartbeat off) wrote %d heartbeat messages", len(off))
	}
	beats = heartbeatsOf(t, recs, "hbon")
	// One writer at most once a second: never more than the seconds
	// since the task was created (several writers would each write).
	if limit := int(elapsed/time.Second) + 1; len(beats) > limit {
		t.Errorf("%d heartbeat messages in %s: more than one writer, or the interval ignored", len(beats), elapsed.Round(time.Millisecond))
	}
	for i, b := range beats {
		if b.Source.Name != "hbon" || b.Source.LSN == 0 || b.TsMS == 0 || b.TsMS != b.Source.TsUS/1000 {
			t.Fatalf("heartbeat %d: %+v", i, b)
		}
		if i == 0 {
			continue
		}
		// Each message a newer source heartbeat than the one before it:
		// a second writer would repeat one, or write an older one late.
		if p := beats[i-1]; b.Source.LSN <= p.Source.LSN || b.Source.TsUS <= p.Source.TsUS {
			t.Fatalf("heartbeat %d at lsn %d, time %d after lsn %d, time %d", i, b.Source.LSN, b.Source.TsUS, p.Source.LSN, p.Source.TsUS)
		}
	}
	t.Logf("%d heartbeat messages in %s, lsn %d → %d", len(beats), elapsed.Round(time.Millisecond), beats[0].Source.LSN, beats[len(beats)-1].Source.LSN)
	for _, name := range []string{"hbon", "hboff"} {
		if err := c.DeleteTask(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
}
