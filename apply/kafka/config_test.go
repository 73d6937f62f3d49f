package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
)

// acks 1 and 0 (with exactly_once off): the producer is not idempotent,
// waits for the leader or for nothing, and every message arrives.
func TestSinkAcks(t *testing.T) {
	k := testenv.NewKafka(t)
	ctx := context.Background()
	for _, acks := range []string{"1", "0"} {
		t.Run("acks="+acks, func(t *testing.T) {
			topic := "acks-" + acks
			s := openSink(t, k, "t.apply.acks"+acks, func(o *Options) {
				o.Config.Acks, o.Config.ExactlyOnce = acks, ptr(false)
				o.Config.OffsetsTopic = "offsets-" + topic // positions of its own
				o.DefaultTopic = topic
			})
			cfg, err := s.opts.saramaConfig("")
			if err != nil || cfg.Producer.Idempotent || int(cfg.Producer.RequiredAcks) != map[string]int{"1": 1, "0": 0}[acks] {
				t.Fatalf("producer settings: idempotent %v, acks %d, %v", cfg.Producer.Idempotent, cfg.Producer.RequiredAcks, err)
			}
			if _, err := s.opts.saramaConfig("t.txn"); err == nil {
				t.Fatal("a transactional producer with acks " + acks + " was configured")
			}
			if err := s.Apply(ctx, changes(1, insert(pos(10, 0), "1", "one"), insert(pos(10, 1), "2", "two"))); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(ctx, changes(1, insert(pos(20, 0), "3", "three"))); err != nil {
				t.Fatal(err)
			}
			got := afters(t, k.ReadTopic(t, topic))
			if want := "c:1:one c:2:two c:3:three"; strings.Join(got, " ") != want {
				t.Fatalf("messages %q, want %q", strings.Join(got, " "), want)
			}
			// The positions went through the same producer.
			s2 := openSink(t, k, "t.apply.acks"+acks, func(o *Options) {
				o.Config.Acks, o.Config.ExactlyOnce, o.Config.OffsetsTopic = acks, ptr(false), "offsets-"+topic
			})
			if offs, err := s2.Offsets(ctx, "t"); err != nil || offs[tableA.Key()] != pos(20, 0) {
				t.Fatalf("offsets: %v %v", offs, err)
			}
		})
	}
}
