package kafka

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The sink contract's conformance suite, read back by folding the topic
// as a consumer would. Each task writes to a topic of its own name (the
// default of destination.topic), schema changes included, so a table's
// place is its task's topic.
func TestConformance(t *testing.T) {
	k := testenv.NewKafka(t)
	open := func(t *testing.T, unit string, mod func(*Options)) *Sink {
		task, _, _ := strings.Cut(unit, ".")
		return openSink(t, k, unit, func(o *Options) {
			o.Task, o.Config.Topic = task, ""
			if mod != nil {
				mod(o)
			}
		})
	}
	sinktest.Run(t, sinktest.Destination{
		Capabilities: Destination.Capabilities(),
		Open:         func(t *testing.T, unit string) sinktest.Sink { return open(t, unit, nil) },
		Create:       func(*testing.T, *proto.TableDef) {}, // topics are created on first write
		Read: func(t *testing.T, task string, tb proto.TableID, cols []proto.Column) []sinktest.Row {
			return foldTopic(t, k, task).read(t, tb, cols)
		},
		Unavailable: toastPlaceholder,
		Exists:      func(t *testing.T, task string, _ proto.TableID) bool { return topicExists(t, k, task) },
		Columns: func(t *testing.T, task string, tb proto.TableID) []string {
			return foldTopic(t, k, task).columns[tb]
		},
		OpenHeartbeats: func(t *testing.T, unit string, writer bool, every time.Duration, now func() time.Time) sinktest.Sink {
			s := open(t, unit, func(o *Options) {
				o.Config.Heartbeat, o.Config.HeartbeatInterval, o.Heartbeats = true, proto.Duration(every), writer
			})
			s.now = now
			return s
		},
		Heartbeats: func(t *testing.T, task string) []proto.Position { return readHeartbeats(t, k, task) },
	})
}

func topicExists(t *testing.T, k *testenv.Kafka, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.ClientOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := topics[topic]
	return ok && d.Err == nil
}

// folded is what a consumer that folds a topic's Debezium messages knows:
// each table's rows, keyed by partition and message key (a keyless
// table's key is the whole row, so equal rows share a key and are
// counted, and a message written twice shows as a doubled row), and each
// table's columns from its latest schema-change message.
type folded struct {
	rows    map[proto.TableID]map[slot][]map[string]json.RawMessage
	columns map[proto.TableID][]string
}

type slot struct {
	partition int32
	key       string
}

// message is the part of a Debezium message the fold reads: a row
// change, or a schema change (tableChanges).
type message struct {
	Op     string                     `json:"op"`
	After  map[string]json.RawMessage `json:"after"`
	Source struct {
		Schema   string `json:"schema"`
		Table    string `json:"table"`
		Sequence string `json:"sequence"`
	} `json:"source"`
	TableChanges []struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Table struct {
			Columns []struct {
				Name                   string  `json:"name"`
				TypeName               string  `json:"typeName"`
				Optional               bool    `json:"optional"`
				DefaultValueExpression *string `json:"defaultValueExpression"`
			} `json:"columns"`
		} `json:"table"`
	} `json:"tableChanges"`
}

// foldTopic replays a topic's messages in order. A schema change names
// the table as it is after the change (as Debezium's tableChanges id
// does); one whose id is not its source table renames that table, and
// the table's rows go with it.
func foldTopic(t *testing.T, k *testenv.Kafka, topic string) *folded {
	t.Helper()
	f := &folded{rows: map[proto.TableID]map[slot][]map[string]json.RawMessage{}, columns: map[proto.TableID][]string{}}
	if !topicExists(t, k, topic) {
		return f
	}
	seen := map[string]bool{} // schema changes by table and position
	for _, r := range k.ReadTopic(t, topic) {
		var m message
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("message %s: %v", r.Value, err)
		}
		src := proto.TableID{Schema: m.Source.Schema, Name: m.Source.Table}
		if m.TableChanges != nil {
			if at := src.String() + " at " + m.Source.Sequence; seen[at] {
				t.Errorf("the schema change of %s is written twice", at)
			} else {
				seen[at] = true
			}
			f.schemaChange(t, src, &m)
			continue
		}
		state := f.rows[src]
		if state == nil {
			state = map[slot][]map[string]json.RawMessage{}
			f.rows[src] = state
		}
		key := slot{r.Partition, string(r.Key)}
		switch m.Op {
		case "c", "r":
			state[key] = append(state[key], m.After)
		case "u":
			if n := len(state[key]); n > 0 {
				state[key][n-1] = m.After
			} else {
				t.Fatalf("update of key %s, which %s does not hold", key.key, src)
			}
		case "d":
			if n := len(state[key]); n > 0 {
				state[key] = state[key][:n-1]
			} else {
				t.Fatalf("delete of key %s, which %s does not hold", key.key, src)
			}
		case "t": // written to every partition, in order with its changes
			for held := range state {
				if held.partition == r.Partition {
					delete(state, held)
				}
			}
		default:
			t.Fatalf("op %q", m.Op)
		}
	}
	return f
}

func (f *folded) schemaChange(t *testing.T, src proto.TableID, m *message) {
	t.Helper()
	if len(m.TableChanges) != 1 {
		t.Fatalf("schema change of %s with %d table changes", src, len(m.TableChanges))
	}
	tc := m.TableChanges[0]
	id, ok := parseTableID(tc.ID)
	if !ok {
		t.Fatalf("schema change of %s names table %q", src, tc.ID)
	}
	if tc.Type == "DROP" {
		delete(f.columns, id)
		return
	}
	if id != src {
		f.rows[id], f.columns[id] = f.rows[src], f.columns[src]
		delete(f.rows, src)
		delete(f.columns, src)
	}
	cols := []string{}
	for _, c := range tc.Table.Columns {
		line := c.Name + " " + c.TypeName
		if !c.Optional {
			line += " not null"
		}
		if c.DefaultValueExpression != nil {
			line += " default " + *c.DefaultValueExpression
		}
		cols = append(cols, line)
	}
	f.columns[id] = cols
}

// parseTableID reads a tableChanges id: `"schema"."table"`, quotes
// doubled inside a name.
func parseTableID(id string) (proto.TableID, bool) {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c == '"' && quoted && i+1 < len(id) && id[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	if len(parts) != 2 {
		return proto.TableID{}, false
	}
	return proto.TableID{Schema: parts[0], Name: parts[1]}, true
}

// read is what the fold holds of a table: each row's cols in canonical
// form. A column a row's message does not have (it was added after the
// message) is NULL, as for a consumer whose schema evolves.
func (f *folded) read(t *testing.T, tb proto.TableID, cols []proto.Column) []sinktest.Row {
	t.Helper()
	var out []sinktest.Row
	for _, rows := range f.rows[tb] {
		for _, img := range rows {
			r := sinktest.Row{}
			for _, c := range cols {
				r[c.Name] = sinktest.Null
				if raw, ok := img[c.Name]; ok {
					v, err := canonical(c.TypeOID, raw)
					if err != nil {
						t.Errorf("%s.%s: %v", tb, c.Name, err)
					}
					r[c.Name] = v
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// readHeartbeats reads the task's heartbeat messages (keyed by the task)
// from the heartbeat topic: the positions their source blocks carry.
func readHeartbeats(t *testing.T, k *testenv.Kafka, task string) []proto.Position {
	t.Helper()
	if !topicExists(t, k, DefaultHeartbeatTopic) {
		return nil
	}
	key, err := json.Marshal(heartbeatKey{Task: task})
	if err != nil {
		t.Fatal(err)
	}
	var out []proto.Position
	for _, r := range k.ReadTopic(t, DefaultHeartbeatTopic) {
		if string(r.Key) != string(key) {
			continue
		}
		var m struct {
			Source struct {
				LSN      uint64 `json:"lsn"`
				Sequence string `json:"sequence"`
			} `json:"source"`
		}
		var seq []string
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("heartbeat %s: %v", r.Value, err)
		}
		if err := json.Unmarshal([]byte(m.Source.Sequence), &seq); err != nil || len(seq) != 2 {
			t.Fatalf("heartbeat %s: sequence %q", r.Value, m.Source.Sequence)
		}
		idx, err := strconv.ParseUint(seq[1], 10, 32)
		if err != nil {
			t.Fatalf("heartbeat %s: %v", r.Value, err)
		}
		out = append(out, proto.Position{LSN: proto.LSN(m.Source.LSN), Idx: uint32(idx)})
	}
	return out
}
