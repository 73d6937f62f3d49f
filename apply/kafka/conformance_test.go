package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply/kafka/kafkatest"
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
			return kafkatest.FoldTopic(t, k, task).Read(t, tb, cols)
		},
		Unavailable: kafkatest.ToastPlaceholder,
		Exists:      func(t *testing.T, task string, _ proto.TableID) bool { return kafkatest.TopicExists(t, k, task) },
		Columns: func(t *testing.T, task string, tb proto.TableID) []string {
			return kafkatest.FoldTopic(t, k, task).Columns[tb]
		},
		OpenHeartbeats: func(t *testing.T, unit string, writer bool, every time.Duration, now func() time.Time) sinktest.Sink {
			s := open(t, unit, func(o *Options) {
				o.Config.Heartbeat, o.Config.HeartbeatInterval, o.Heartbeats = true, proto.Duration(every), writer
			})
			s.now = now
			return s
		},
		Heartbeats: func(t *testing.T, task string) []proto.Position {
			return kafkatest.ReadHeartbeats(t, k, DefaultHeartbeatTopic, task)
		},
	})
}
