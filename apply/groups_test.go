package apply_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// EnsureStream only ever adds a group consumer's subjects, and leaves a
// consumer that already has them alone (the server's check of a new
// config costs CPU by the square of the subjects).
func TestEnsureStreamAddsSubjectsOnly(t *testing.T) {
	ctx := context.Background()
	_, nc := testenv.NewJetStream(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const task = "g"
	a, b, c := proto.TableID{Schema: "public", Name: "a"}, proto.TableID{Schema: "public", Name: "b"}, proto.TableID{Schema: "public", Name: "c"}
	subjects := func() []string {
		t.Helper()
		cons, err := js.Consumer(ctx, proto.StreamName(task), apply.ConsumerName(0))
		if err != nil {
			t.Fatal(err)
		}
		return cons.CachedInfo().Config.FilterSubjects
	}
	ensure := func(tables ...proto.TableID) {
		t.Helper()
		if err := apply.EnsureStream(ctx, js, task, 1, 1, tables, nil); err != nil {
			t.Fatal(err)
		}
	}
	ensure(a, b)
	ensure(b, c) // a renamed away: its subject stays
	got := subjects()
	for _, tbl := range []proto.TableID{a, b, c} {
		if !slices.Contains(got, proto.Subject(task, tbl)) {
			t.Fatalf("consumer subjects %v lack %s", got, proto.Subject(task, tbl))
		}
	}

	// Mark the consumer: an update from EnsureStream would clear the mark.
	marked := apply.ConsumerConfig(task, 0, 1, []proto.TableID{a, b, c}, nil)
	marked.Description = "left alone"
	if _, err := js.CreateOrUpdateConsumer(ctx, proto.StreamName(task), marked); err != nil {
		t.Fatal(err)
	}
	ensure(c, a)
	cons, err := js.Consumer(ctx, proto.StreamName(task), apply.ConsumerName(0))
	if err != nil {
		t.Fatal(err)
	}
	if d := cons.CachedInfo().Config.Description; d != "left alone" {
		t.Fatalf("a consumer with every subject was updated (description %q)", d)
	}
	d := proto.TableID{Schema: "public", Name: "d"}
	ensure(d)
	got = subjects()
	if !slices.Contains(got, proto.Subject(task, d)) || len(got) != len(marked.FilterSubjects)+1 {
		t.Fatalf("after adding d: subjects %v", got)
	}
}
