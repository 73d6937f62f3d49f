package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// A broker outage is a connection failure (the 720-minute window), both
// for a sink that was writing when the brokers went away and for one
// that opens while they are away; the brokers' refusals are not.
func TestOutageIsConnectionFailure(t *testing.T) {
	k := testenv.NewKafka(t)
	s := openSink(t, k, "t.apply.0", func(o *Options) { o.Config.ExactlyOnce = new(bool) })
	if err := s.Apply(context.Background(), changes(1, insert(pos(10, 0), "1", "a"))); err != nil {
		t.Fatal(err)
	}
	k.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := s.Apply(ctx, changes(1, insert(pos(11, 0), "2", "b")))
	if err == nil {
		t.Fatal("a write to stopped brokers succeeded")
	}
	if kind := Destination.Classify(err); kind != proto.ErrorConnection {
		t.Errorf("write during the outage: %q is %q, want connection", err, kind)
	}
	_, err = Open(ctx, Options{Task: "t", Config: Config{Brokers: k.Brokers}, TransactionalID: "t.apply.1"})
	if err == nil {
		t.Fatal("a sink opened on stopped brokers")
	}
	if kind := Destination.Classify(err); kind != proto.ErrorConnection {
		t.Errorf("open during the outage: %q is %q, want connection", err, kind)
	}
	for _, c := range []struct {
		err  error
		want proto.ErrorKind
	}{
		{fmt.Errorf("write: %w", sarama.ErrTopicAuthorizationFailed), proto.ErrorOther},
		{fmt.Errorf("write: %w", sarama.ErrMessageSizeTooLarge), proto.ErrorOther},
		{fmt.Errorf("write: %w", sarama.ErrNotLeaderForPartition), proto.ErrorConnection},
		{sarama.ProducerErrors{{Err: sarama.ErrOutOfBrokers}}, proto.ErrorConnection},
		{fmt.Errorf("%w: x", apply.ErrFenced), ""},
		{errors.New("some other library's error"), ""},
	} {
		if got := Destination.Classify(c.err); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}
