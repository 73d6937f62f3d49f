package kafka

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The sink contract's conformance suite, read back by folding the topic
// as a consumer would.
func TestConformance(t *testing.T) {
	k := testenv.NewKafka(t)
	sinktest.Run(t, sinktest.Destination{
		Open:   func(t *testing.T, unit string) sinktest.Sink { return openSink(t, k, unit, nil) },
		Create: func(*testing.T, proto.TableID, bool) {}, // topics are created on first write
		Rows: func(t *testing.T, tb proto.TableID) []string {
			return foldTopic(t, k.ReadTopic(t, "cdc"), tb)
		},
	})
}

// foldTopic replays a topic's Debezium messages of one table into the
// rows they leave, keyed by partition and message key: "id=v", or "v" for a keyless
// table (whose key is the whole row, so equal rows share a key and are
// counted). A message written twice shows as a doubled row.
func foldTopic(t *testing.T, recs []testenv.Record, tb proto.TableID) []string {
	t.Helper()
	type slot struct {
		partition int32
		key       string
	}
	state := map[slot][]string{}
	for _, r := range recs {
		var m struct {
			Op     string         `json:"op"`
			After  map[string]any `json:"after"`
			Source struct {
				Schema string `json:"schema"`
				Table  string `json:"table"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("message %s: %v", r.Value, err)
		}
		if m.Source.Schema != tb.Schema || m.Source.Table != tb.Name {
			continue
		}
		key := slot{r.Partition, string(r.Key)}
		switch m.Op {
		case "c", "r":
			state[key] = append(state[key], render(m.After))
		case "u":
			if n := len(state[key]); n > 0 {
				state[key][n-1] = render(m.After)
			} else {
				t.Fatalf("update of key %s, which %s does not hold", key.key, tb)
			}
		case "d":
			if n := len(state[key]); n > 0 {
				state[key] = state[key][:n-1]
			} else {
				t.Fatalf("delete of key %s, which %s does not hold", key.key, tb)
			}
		case "t": // written to every partition, in order with its changes
			for k := range state {
				if k.partition == r.Partition {
					delete(state, k)
				}
			}
		default:
			t.Fatalf("op %q", m.Op)
		}
	}
	var out []string
	for _, rows := range state {
		out = append(out, rows...)
	}
	slices.Sort(out)
	return out
}

func render(row map[string]any) string {
	v := fmt.Sprint(row["v"])
	if id, ok := row["id"]; ok {
		return fmt.Sprintf("%v=%s", id, v)
	}
	return v
}
