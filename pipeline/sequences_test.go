package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// seqSource is a source whose sessions read sequences from values (OID to
// last value) and whose capture has seen changes changes.
type seqSource struct {
	Source // the rest is not used
	mu     sync.Mutex
	refs   []capture.SequenceRef
	values map[uint32]int64
	denied []uint32
	// readErr fails the next reads; sessions counts the sessions opened.
	readErr  error
	sessions int
	changes  atomic.Int64
}

func (s *seqSource) Session(context.Context) (Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	return &seqSession{s: s}, nil
}

func (s *seqSource) Changes() int64 { return s.changes.Load() }

func (s *seqSource) set(oid uint32, v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[oid] = v
}

type seqSession struct {
	Session
	s *seqSource
}

func (f *seqSession) TaskSequences(context.Context, []proto.TableID) ([]capture.SequenceRef, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.s.refs, nil
}

func (f *seqSession) LastValues(_ context.Context, oids []uint32) (map[uint32]int64, []uint32, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if f.s.readErr != nil {
		return nil, nil, f.s.readErr
	}
	out := map[uint32]int64{}
	for _, oid := range oids {
		if v, ok := f.s.values[oid]; ok && !slices.Contains(f.s.denied, oid) {
			out[oid] = v
		}
	}
	return out, f.s.denied, nil
}

func (f *seqSession) Close() {}

// seqSink records what it is asked to move forward; it fails while fail
// is set, and reports missing as missing.
type seqSink struct {
	apply.TaskSink // the rest is not used
	mu             sync.Mutex
	batches        [][]proto.SequenceUpdate
	fail           error
	missing        map[proto.TableID]bool
}

func (s *seqSink) AdvanceSequences(_ context.Context, seqs []proto.SequenceUpdate) ([]proto.TableID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.batches = append(s.batches, seqs)
	var missing []proto.TableID
	for _, u := range seqs {
		if s.missing[u.Name] {
			missing = append(missing, u.Name)
		}
	}
	return missing, nil
}

func (s *seqSink) SetSequences(context.Context, []proto.SequenceUpdate) ([]proto.SequenceResult, error) {
	return nil, errors.New("not in these tests")
}

// sent is what the sink was asked, batch by batch, as "name=value".
func (s *seqSink) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		var parts string
		for i, u := range b {
			if i > 0 {
				parts += " "
			}
			parts += fmt.Sprintf("%s=%d", u.Name, u.LastValue)
		}
		out = append(out, parts)
	}
	return out
}

func (s *seqSink) setFail(err error) { s.mu.Lock(); s.fail = err; s.mu.Unlock() }

func seqSpec(t *testing.T, extra string) *proto.TaskSpec {
	t.Helper()
	spec, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://u@10.0.0.1:5432/shop'}\ndestination: {type: postgres, dsn: 'postgres://u@10.0.0.2:5432/wh'}\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func seqRunner(interval time.Duration) *Runner {
	return &Runner{Name: "t", Store: newFakeStore(newEvents()), Config: Config{SequenceInterval: interval}, Logger: discardLogger()}
}

// A round moves forward what changed since the last, under the
// destination's names (an owned sequence follows its table's renamed
// schema); unchanged, uncalled and unreadable sequences are not written.
func TestSequenceKeeperRounds(t *testing.T) {
	ctx := context.Background()
	orders := proto.TableID{Schema: "public", Name: "orders"}
	src := &seqSource{
		refs: []capture.SequenceRef{
			{ID: proto.TableID{Schema: "public", Name: "orders_id_seq"}, OID: 1, Owner: &orders},
			{ID: proto.TableID{Schema: "public", Name: "invoice_no"}, OID: 2},
			{ID: proto.TableID{Schema: "public", Name: "unused"}, OID: 3},
			{ID: proto.TableID{Schema: "public", Name: "secret"}, OID: 4},
		},
		values: map[uint32]int64{1: 10, 2: 5, 4: 99},
		denied: []uint32{4},
	}
	sink := &seqSink{missing: map[proto.TableID]bool{}}
	spec := seqSpec(t, "objects: [{schema: public, rename_schema: copy}]\n")
	k := seqRunner(time.Hour).newSequenceKeeper(spec, src, sink, []proto.TableID{orders})
	if k == nil {
		t.Fatal("no keeper")
	}
	round := func() {
		t.Helper()
		if err := k.round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	round()
	round() // nothing changed
	src.set(2, 6)
	round()
	// A failed write is sent again at the next round.
	src.set(1, 11)
	sink.setFail(errors.New("destination down"))
	if err := k.round(ctx); err == nil {
		t.Fatal("the sink's failure was lost")
	}
	sink.setFail(nil)
	round()
	want := []string{"copy.orders_id_seq=10 public.invoice_no=5", "public.invoice_no=6", "copy.orders_id_seq=11"}
	if got := sink.sent(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	// A failed read at the source takes a new session.
	if src.sessions != 1 {
		t.Fatalf("%d source sessions, want 1", src.sessions)
	}
	src.readErr = errors.New("connection reset")
	if err := k.round(ctx); err == nil {
		t.Fatal("the source's failure was lost")
	}
	src.readErr = nil
	round()
	if src.sessions != 2 {
		t.Fatalf("%d source sessions: one, and a new one after the failure", src.sessions)
	}

	// Nothing to keep: two-way tasks, tasks without schema sync, and
	// destinations without sequences.
	r := seqRunner(time.Hour)
	for _, extra := range []string{
		"objects: [{schema: public}]\nsync: {schema: false}\n",
		"objects: [{schema: public}]\ntwo_way: {}\n",
	} {
		if r.newSequenceKeeper(seqSpec(t, extra), src, sink, nil) != nil {
			t.Errorf("%q: a keeper", extra)
		}
	}
	if r.newSequenceKeeper(spec, src, &fakeSink{}, nil) != nil {
		t.Error("a keeper for a sink without sequences")
	}
}

// The loop: a quiet source brings sequences in step at once (the interval
// is an hour here); failures are retried and end it only once they last.
func TestSequenceKeeperRun(t *testing.T) {
	defer func(q, l time.Duration) { quietCheck, sequenceFailureLimit = q, l }(quietCheck, sequenceFailureLimit)
	quietCheck, sequenceFailureLimit = 10*time.Millisecond, time.Hour
	src := &seqSource{refs: []capture.SequenceRef{{ID: proto.TableID{Schema: "public", Name: "s"}, OID: 1}}, values: map[uint32]int64{1: 1}}
	sink := &seqSink{}
	k := seqRunner(time.Hour).newSequenceKeeper(seqSpec(t, "objects: [{schema: public}]\n"), src, sink, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.run(ctx) }()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if fmt.Sprint(sink.sent()) != "[public.s=1]" {
			return fmt.Errorf("sent %q", sink.sent())
		}
		return nil
	})
	// Changes at the source, then quiet: the new value follows.
	src.set(1, 7)
	src.changes.Add(3)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if fmt.Sprint(sink.sent()) != "[public.s=1 public.s=7]" {
			return fmt.Errorf("sent %q", sink.sent())
		}
		return nil
	})
	// A failing source is retried without ending the loop.
	src.mu.Lock()
	src.readErr = errors.New("source restarting")
	src.mu.Unlock()
	src.set(1, 8)
	src.changes.Add(1)
	time.Sleep(100 * time.Millisecond) // several failed rounds
	src.mu.Lock()
	src.readErr = nil
	src.mu.Unlock()
	src.changes.Add(1)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if fmt.Sprint(sink.sent()) != "[public.s=1 public.s=7 public.s=8]" {
			return fmt.Errorf("sent %q", sink.sent())
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("the loop ended: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}

	// Failures that last end it, with their cause.
	sequenceFailureLimit = 50 * time.Millisecond
	k = seqRunner(10*time.Millisecond).newSequenceKeeper(seqSpec(t, "objects: [{schema: public}]\n"), src, sink, nil)
	src.set(1, 9)
	sink.setFail(errors.New("permission denied for sequence s"))
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.run(ctx); err == nil || ctx.Err() != nil || !errors.Is(err, sink.fail) {
		t.Fatalf("lasting failures: %v", err)
	}
}
