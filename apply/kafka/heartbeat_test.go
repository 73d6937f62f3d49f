package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// A heartbeat writer writes the format's heartbeat message, keyed by the
// task, with the heartbeat's position and commit time, at most once per
// interval (the clock is the sink's, moved by hand).
func TestSinkHeartbeat(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	const commitUS = 1714557600999000
	hb := func(lsn uint64, after time.Duration) proto.Row {
		return proto.Row{Op: proto.OpUpdate, Pos: pos(lsn, 0), CommitTimeUS: commitUS + after.Microseconds(), New: text("t", "now")}
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			topic := "hb-" + format
			s := openSink(t, k, "t.apply.hb."+format, func(o *Options) {
				o.Config.Format = format
				o.Config.Heartbeat, o.Config.HeartbeatTopic = true, topic
				o.Heartbeats = true
			})
			clock := time.Unix(1714557600, 0)
			s.now = func() time.Time { return clock }
			write := func(row proto.Row) {
				t.Helper()
				if err := s.WriteHeartbeat(ctx, "t", 1, row); err != nil {
					t.Fatal(err)
				}
			}
			write(hb(0x3000000, 0))
			clock = clock.Add(5 * time.Second) // within the default 10s: skipped
			write(hb(0x3000100, 5*time.Second))
			clock = clock.Add(5 * time.Second)
			write(hb(0x3000200, 10*time.Second))

			recs := k.ReadTopic(t, topic)
			if len(recs) != 2 {
				t.Fatalf("%d heartbeat messages, want 2 (one per 10s)", len(recs))
			}
			want := []struct {
				lsn      uint64
				commitUS int64
			}{{0x3000000, commitUS}, {0x3000200, commitUS + 10e6}}
			for i, r := range recs {
				if string(r.Key) != `{"task":"t"}` {
					t.Errorf("key %s", r.Key)
				}
				w := want[i]
				switch format {
				case FormatDebezium:
					m := decodeJSON(t, r.Value).(map[string]any)
					src := m["source"].(map[string]any)
					if _, ok := m["op"]; ok || m["ts_ms"] != num(w.commitUS/1000) || src["lsn"] != num(int64(w.lsn)) || src["name"] != "t" || src["db"] != "db" {
						t.Errorf("debezium heartbeat %d: %s", i, r.Value)
					}
				case FormatCanal:
					m := decodeJSON(t, r.Value).(map[string]any)
					if m["type"] != "HEARTBEAT" || m["es"] != num(w.commitUS/1000) || m["id"] != num(int64(w.lsn)) || m["database"] != "db" {
						t.Errorf("canal heartbeat %d: %s", i, r.Value)
					}
				case FormatAvro:
					m := decodeAvro(t, r.Value)
					if m["operation"] != "HEARTBEAT" || m["sourceTimestamp"] != w.commitUS/1e6 || m["id"] != int64(w.lsn) {
						t.Errorf("avro heartbeat %d: %v", i, m)
					}
				}
			}
		})
	}

	// The interval set in the spec counts, not the default.
	t.Run("interval", func(t *testing.T) {
		s := openSink(t, k, "t.apply.hb.interval", func(o *Options) {
			o.Config.Heartbeat, o.Config.HeartbeatTopic, o.Config.HeartbeatInterval = true, "hb-interval", proto.Duration(2*time.Second)
			o.Heartbeats = true
		})
		clock := time.Unix(1714557600, 0)
		s.now = func() time.Time { return clock }
		for i := range 6 { // every second for 6s: written at 0, 2 and 4s
			if err := s.WriteHeartbeat(ctx, "t", 1, hb(uint64(0x3000000+i), time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
			clock = clock.Add(time.Second)
		}
		if recs := k.ReadTopic(t, "hb-interval"); len(recs) != 3 {
			t.Fatalf("%d heartbeat messages in 6s at a 2s interval, want 3", len(recs))
		}
	})

	// Off, or on for the task but not this unit's to write: nothing is
	// written, and the topic is not even created.
	for name, mod := range map[string]func(*Options){
		"off":        func(o *Options) { o.Heartbeats = true },
		"other unit": func(o *Options) { o.Config.Heartbeat = true },
	} {
		t.Run(name, func(t *testing.T) {
			topic := "hb-none-" + map[string]string{"off": "off", "other unit": "other"}[name]
			s := openSink(t, k, "t.apply.hb."+topic, func(o *Options) {
				o.Config.HeartbeatTopic = topic
				mod(o)
			})
			for i := range 3 {
				if err := s.WriteHeartbeat(ctx, "t", 1, hb(uint64(0x3000000+i), 0)); err != nil {
					t.Fatal(err)
				}
			}
			admin, err := s.clusterAdmin()
			if err != nil {
				t.Fatal(err)
			}
			if n, err := describePartitions(admin, topic); err != nil || n != 0 {
				t.Fatalf("topic %s: %d partitions, %v; want none", topic, n, err)
			}
		})
	}
}
