package apply_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

var kv = proto.TableID{Schema: "public", Name: "kv"}

// heartbeatSink records what the worker writes, in order: "rows <last
// LSN>" for an Apply, "hb <LSN>" for a heartbeat. failHeartbeat makes the
// next heartbeat write fail once.
type heartbeatSink struct {
	mu            sync.Mutex
	log           []string
	failHeartbeat bool
}

func (s *heartbeatSink) Close(context.Context) error { return nil }

func (s *heartbeatSink) Offsets(context.Context, string) (map[string]proto.Position, error) {
	return map[string]proto.Position{}, nil
}

func (s *heartbeatSink) Apply(_ context.Context, ch *apply.Changes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, fmt.Sprintf("rows %d", ch.Positions[kv.Key()].LSN))
	return nil
}

var errHeartbeat = errors.New("heartbeat refused")

func (s *heartbeatSink) WriteHeartbeat(_ context.Context, task string, epoch uint64, hb proto.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failHeartbeat {
		s.failHeartbeat = false
		return errHeartbeat
	}
	s.log = append(s.log, fmt.Sprintf("hb %d at %d", hb.Pos.LSN, hb.CommitTimeUS))
	return nil
}

func (s *heartbeatSink) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// kvStream starts a JetStream server with task's stream and one apply
// group over kv.
func kvStream(t *testing.T, task string) jetstream.JetStream {
	t.Helper()
	_, nc := testenv.NewJetStream(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply.EnsureStream(context.Background(), js, task, 1, 1, []proto.TableID{kv}, nil); err != nil {
		t.Fatal(err)
	}
	return js
}

func publish(t *testing.T, js jetstream.JetStream, task string, b *proto.Batch) {
	t.Helper()
	if _, err := js.Publish(context.Background(), proto.Subject(task, b.Table), b.Encode(nil), jetstream.WithMsgID(b.MsgID())); err != nil {
		t.Fatal(err)
	}
}

func heartbeatBatch(lsn proto.LSN) *proto.Batch {
	return &proto.Batch{Table: proto.HeartbeatTable, Columns: []proto.Column{{Name: "task", TypeOID: 25, Key: true}, {Name: "ts", TypeOID: 1184}},
		Rows: []proto.Row{{Op: proto.OpUpdate, Pos: proto.Position{LSN: lsn}, CommitTimeUS: int64(lsn) * 10,
			New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte("w"), []byte("2024-05-01 10:00:00+00")}}}}}
}

func rowsBatch(lsn proto.LSN, n int) *proto.Batch {
	b := &proto.Batch{Table: kv, ReplicaIdentity: proto.IdentityDefault,
		Columns: []proto.Column{{Name: "k", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}}
	for i := range n {
		b.Rows = append(b.Rows, proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: lsn, Idx: uint32(i)},
			New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(strconv.Itoa(i)), []byte("v")}}})
	}
	return b
}

// The worker hands a sink that writes heartbeats the newest heartbeat of
// each batch, after the batch's rows, also when a batch holds only a
// heartbeat; a failed heartbeat write fails the batch, which is not
// acknowledged and comes again to the next worker.
func TestWorkerWritesHeartbeats(t *testing.T) {
	ctx := context.Background()
	const task = "w"
	js := kvStream(t, task)
	sink := &heartbeatSink{}
	run := func() (stop func() error) {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			// A long MaxWait puts what is published together into one batch.
			done <- apply.RunWorker(wctx, apply.WorkerConfig{Task: task, Group: 0, JetStream: js, Sink: sink, Epoch: 1, MaxWait: time.Second})
		}()
		return func() error {
			cancel()
			return <-done
		}
	}
	waitFor := func(want ...string) {
		t.Helper()
		testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if got := sink.written(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("written %q, want %q", got, want)
			}
			return nil
		})
	}

	stop := run()
	publish(t, js, task, heartbeatBatch(100)) // a batch of a heartbeat alone
	waitFor("hb 100 at 1000")
	publish(t, js, task, heartbeatBatch(150))
	publish(t, js, task, rowsBatch(200, 3))
	publish(t, js, task, heartbeatBatch(300))
	// Rows first; of the heartbeats of the batch only the newest.
	waitFor("hb 100 at 1000", "rows 200", "hb 300 at 3000")
	// Everything acknowledged before the worker stops: nothing comes again.
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		c, err := js.Consumer(ctx, proto.StreamName(task), apply.ConsumerName(0))
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending > 0 || info.NumPending > 0 {
			return fmt.Errorf("%d messages unacknowledged, %d not delivered", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("worker: %v", err)
	}

	sink.mu.Lock()
	sink.failHeartbeat = true
	sink.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	publish(t, js, task, heartbeatBatch(400))
	err := apply.RunWorker(wctx, apply.WorkerConfig{Task: task, Group: 0, JetStream: js, Sink: sink, Epoch: 1})
	if !errors.Is(err, errHeartbeat) {
		t.Fatalf("worker after a failed heartbeat: %v", err)
	}
	// Not acknowledged: the next worker gets the heartbeat again.
	stop = run()
	defer stop()
	waitFor("hb 100 at 1000", "rows 200", "hb 300 at 3000", "hb 400 at 4000")
}

// In a failover the old owner of a group can still have a pull open on
// the group's consumer when the new owner resets it to its ack floor: a
// delivery can go to the old owner's pull. The new owner must not apply
// what comes after it (its positions would pass the missing change,
// which would then be skipped as applied when it came back): it stops
// with ErrDeliveryGap, to reset and start again.
func TestWorkerStopsWhenAnOldPullTookADelivery(t *testing.T) {
	ctx := context.Background()
	const task = "w"
	js := kvStream(t, task)
	cons, err := js.Consumer(ctx, proto.StreamName(task), apply.ConsumerName(0))
	if err != nil {
		t.Fatal(err)
	}
	waiting := func(n int) {
		t.Helper()
		testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			info, err := cons.Info(ctx)
			if err != nil {
				return err
			}
			if info.NumWaiting != n {
				return fmt.Errorf("%d pull requests waiting, want %d", info.NumWaiting, n)
			}
			return nil
		})
	}
	// The old owner's pull, open before the new owner starts.
	old, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waiting(1)
	sink := &heartbeatSink{}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- apply.RunWorker(wctx, apply.WorkerConfig{Task: task, Group: 0, JetStream: js, Sink: sink, Epoch: 2})
	}()
	waiting(2)
	publish(t, js, task, rowsBatch(100, 1)) // to the old pull, the first in line
	publish(t, js, task, rowsBatch(200, 1))
	var taken int
	for range old.Messages() {
		taken++
	}
	if taken != 1 {
		t.Fatalf("the old pull took %d messages, want 1", taken)
	}
	if err := <-done; !errors.Is(err, apply.ErrDeliveryGap) {
		t.Fatalf("worker: %v, want ErrDeliveryGap", err)
	}
	if got := sink.written(); len(got) != 0 {
		t.Fatalf("the worker applied %q past a delivery it never had", got)
	}
}
