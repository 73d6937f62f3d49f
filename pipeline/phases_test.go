package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

const fullTask = "objects: [{schema: public}]\n"

// before fails unless event a happened, and before b.
func before(t *testing.T, ev *events, a, b string) {
	t.Helper()
	ia, ib := ev.index(a), ev.index(b)
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("%s (at %d) must come before %s (at %d)\nevents: %s", a, ia, b, ib, strings.Join(ev.snapshot(), ", "))
	}
}

// A new task goes through its phases in order (schema, full,
// incremental), at the consistent cut: the slot is created after the
// destination's positions are reset; the capture starts from the slot's
// consistent point, on the slot's own session, once the snapshot is held
// and before anything is loaded; each table is finished at the snapshot's
// position after its chunks; indexes come after the load.
func TestPhaseOrder(t *testing.T) {
	h := newHarness(t, fullTask, time.Minute)
	h.run()
	task := h.waitFor("incremental", func(t coordinator.Task) bool { return t.Phase == proto.PhaseIncremental })
	ev := h.ev
	for _, pair := range [][2]string{
		{"state.BumpEpoch", "state.status  running"},
		{"session.ListTables", "state.SetTaskTables"},
		{"state.SetTaskTables", "stream.Ensure"},
		{"stream.Ensure", "session.PrepareSource"},
		{"session.PrepareSource", "source.CreateSlot"},
		{"sink.ResetOffsets", "source.CreateSlot"},
		{"source.CreateSlot", "state.MarkSlotCreated"},
		{"state.MarkSlotCreated", "source.OpenSnapshot"},
		{"source.OpenSnapshot", "holder.ReadSchema"},
		{"holder.ReadSchema", "state.status schema running"},
		{"state.status schema running", "sink.ApplyPreData"},
		{"sink.ApplyPreData", "state.status full running"},
		{"state.status full running", "holder.PlanChunks"},
		{"holder.Export", "state.SetFullSyncPlan"},
		{"state.SetFullSyncPlan", "sink.BeginTable"},
		{"sink.BeginTable", "state.MarkFullSyncReady"},
		{"state.MarkChunkCopied", "sink.FinishTable"},
		{"sink.FinishTable", "state.MarkTablesCopied"},
		{"state.MarkTablesCopied", "holder.Close"},
		{"holder.Close", "sink.ApplyPostData"},
		{"sink.ApplyPostData", "sink.SyncSequences"},
		{"sink.SyncSequences", "state.MarkPostDataDone"},
		{"state.MarkPostDataDone", "state.status incremental running"},
	} {
		before(t, ev, pair[0], pair[1])
	}
	if n := ev.count("sink.FinishTable"); n != len(fakeTables) {
		t.Errorf("%d tables finished, want %d", n, len(fakeTables))
	}
	if n := ev.count("state.MarkChunkCopied"); n != len(fakeTables)*chunksPerTable {
		t.Errorf("%d chunks marked, want %d", n, len(fakeTables)*chunksPerTable)
	}
	// A new slot: no temporary snapshot, the capture on the slot's session.
	if ev.count("source.TemporarySnapshot") != 0 || ev.count("source.CreateSlot") != 1 {
		t.Errorf("snapshots: %s", strings.Join(ev.snapshot(), ", "))
	}
	if want := []string{fmt.Sprintf("%s handover=true", task.ConsistentLSN)}; !slices.Equal(h.source.captured, want) {
		t.Errorf("captures %v, want %v", h.source.captured, want)
	}
	for _, tb := range fakeTables {
		if got := h.sink.finished[tb.Key()]; got != proto.EndOf(task.ConsistentLSN) {
			t.Errorf("%s finished at %v, want the snapshot's end %v", tb, got, proto.EndOf(task.ConsistentLSN))
		}
		if task.TablesCopied[tb.Key()] != task.ConsistentLSN {
			t.Errorf("%s copied at %v", tb, task.TablesCopied[tb.Key()])
		}
	}
	if !task.SlotCreated || !task.PostDataDone || task.State != proto.StateRunning || task.RowsCopied != int64(10*chunksPerTable*len(fakeTables)) {
		t.Errorf("task %+v", task)
	}
}

// A full sync that starts over (its capture unit restarted in the middle
// of it) takes over every copy unit the earlier attempt's plan can have
// had before it records its own: one that died in a chunk's middle must
// not leave it open at the destination, where nothing would end it now
// that its plan is gone. A task's first load has nothing to take over.
func TestRestartedLoadTakesOverCopyUnits(t *testing.T) {
	const units = 3
	fresh := newHarness(t, fullTask, time.Minute)
	fresh.runner.Config.SnapshotReaders = units
	fresh.run()
	fresh.waitFor("incremental", func(t coordinator.Task) bool { return t.Phase == proto.PhaseIncremental })
	if n := fresh.ev.count("sink.Open copy 0"); n != 0 {
		t.Errorf("a task's first load took over copy unit 0 (%d times)", n)
	}

	h := newHarness(t, fullTask, time.Minute)
	h.runner.Config.SnapshotReaders = units
	h.source.slot = capture.SlotInfo{Exists: true, ConfirmedLSN: 0x5000}
	for _, cmd := range []coordinator.Command{
		coordinator.SetTaskStatus{Name: "t", Phase: proto.PhaseFull, State: proto.StateRunning},
		coordinator.MarkSlotCreated{Name: "t", ConsistentLSN: 0x5000},
		coordinator.SetTaskTables{Name: "t", Tables: []string{fakeTables[0].Key(), fakeTables[1].Key()}},
		coordinator.SetFullSyncPlan{Name: "t", Epoch: 1, Plan: coordinator.FullSyncPlan{Snapshot: "old", LSN: 0x5000, Units: units,
			Tables: []coordinator.PlannedCopy{{Table: fakeTables[0], Chunks: []coordinator.PlannedChunk{{Unit: 0}, {Unit: 1}, {Unit: 2}}}}}},
	} {
		if err := h.store.Apply(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	h.run()
	h.waitFor("incremental", func(t coordinator.Task) bool { return t.Phase == proto.PhaseIncremental })
	events := h.ev.snapshot()
	replan := -1 // the new plan's SetFullSyncPlan: the last
	for i, e := range events {
		if e == "state.SetFullSyncPlan" {
			replan = i
		}
	}
	for u := range units + 1 {
		open := fmt.Sprintf("sink.Open copy %d", u)
		i := slices.Index(events, open)
		switch {
		case u == units && i >= 0:
			t.Errorf("%s: a unit no plan can have was taken over", open)
		case u < units && (i < 0 || i > replan):
			t.Errorf("%s (at %d) must come before the new plan is recorded (at %d)\nevents: %s", open, i, replan, strings.Join(events, ", "))
		}
	}
}

// A full sync without incremental sync makes no slot of its own: it reads
// a temporary snapshot, captures nothing, and ends released.
func TestFullOnlyReleased(t *testing.T) {
	h := newHarness(t, fullTask+"sync: {incremental: false}\n", time.Minute)
	h.run()
	task := h.waitFor("released", func(t coordinator.Task) bool { return t.State == proto.StateReleased })
	if h.ev.count("source.CreateSlot") != 0 || h.ev.count("source.TemporarySnapshot") != 1 || h.ev.count("source.RunCapture") != 0 || h.ev.count("stream.Ensure") != 0 {
		t.Errorf("events: %s", strings.Join(h.ev.snapshot(), ", "))
	}
	if len(task.TablesCopied) != len(fakeTables) {
		t.Errorf("copied %v", task.TablesCopied)
	}
	if fenced, ended := h.result(); !ended || fenced {
		t.Errorf("the runner ended %v, fenced %v: a released task's runner ends, unfenced", ended, fenced)
	}
}

var (
	errRefused = fmt.Errorf("dial tcp 10.0.0.2:5432: %w", syscall.ECONNREFUSED)
	errBroken  = errors.New("permission denied for schema wh")
)

// A failure in each phase shows the task retrying in that phase, with the
// error's kind and window, and the next attempt goes on to incremental.
func TestPhaseFailureRetried(t *testing.T) {
	for _, c := range []struct {
		call  string
		err   error
		phase proto.Phase
	}{
		{"source.Session", errRefused, proto.PhasePrecheck},
		{"sink.Open", errRefused, proto.PhasePrecheck},
		{"session.ListTables", errBroken, proto.PhasePrecheck},
		{"stream.Ensure", errBroken, proto.PhasePrecheck},
		{"session.PrepareSource", errBroken, proto.PhasePrecheck},
		{"source.CreateSlot", errRefused, proto.PhasePrecheck},
		{"source.OpenSnapshot", errRefused, proto.PhasePrecheck},
		{"holder.ReadSchema", errBroken, proto.PhasePrecheck},
		{"sink.ApplyPreData", errBroken, proto.PhaseSchema},
		{"holder.PlanChunks", errBroken, proto.PhaseFull},
		{"sink.BeginTable", errRefused, proto.PhaseFull},
		{"sink.FinishTable", errBroken, proto.PhaseFull},
		{"sink.ApplyPostData", errBroken, proto.PhaseFull},
		// The capture runs beside the load: its failure stops the phase
		// it happens in.
		{"source.RunCapture", errRefused, ""},
	} {
		t.Run(c.call, func(t *testing.T) {
			h := newHarness(t, fullTask, time.Minute)
			h.ev.failOnce(c.call, c.err)
			h.run()
			h.waitFor("incremental after the retry", func(t coordinator.Task) bool {
				return t.Phase == proto.PhaseIncremental && t.State == proto.StateRunning && h.ev.count("state.status  retrying") > 0
			})
			task, _ := h.store.Task("t")
			seen := h.store.lastRetry()
			if seen == nil || seen.Error == nil {
				t.Fatalf("no retrying status recorded; events %s", strings.Join(h.ev.snapshot(), ", "))
			}
			wantKind := proto.ErrorOther
			if errors.Is(c.err, syscall.ECONNREFUSED) {
				wantKind = proto.ErrorConnection
			}
			if seen.Error.Kind != wantKind || !strings.Contains(seen.Error.Message, c.err.Error()) {
				t.Errorf("retrying with %+v, want kind %s and %q", seen.Error, wantKind, c.err)
			}
			window := proto.DefaultOtherRetry
			if wantKind == proto.ErrorConnection {
				window = proto.DefaultConnectionRetry
			}
			if d := seen.Error.RetryUntil.Sub(seen.Error.At); d < window-time.Second || d > window+time.Second {
				t.Errorf("window of %v, want %v", d, window)
			}
			if c.phase != "" && seen.phase != c.phase {
				t.Errorf("failed in phase %s, want %s", seen.phase, c.phase)
			}
			if len(task.TablesCopied) != len(fakeTables) || task.Phase != proto.PhaseIncremental {
				t.Errorf("after the retry: %+v", task)
			}
		})
	}
}

// When the window closes the task fails, with the cause and no retry
// time; the source's connection failures get the longer window.
func TestWindowClosesTaskFails(t *testing.T) {
	// A minute of the window lasts 1 ms here: the other window (10 min)
	// closes after 10 ms of failing.
	h := newHarness(t, fullTask, time.Millisecond)
	h.ev.failAlways("sink.ApplyPreData", errBroken)
	h.run()
	task := h.waitFor("failed", func(t coordinator.Task) bool { return t.State == proto.StateFailed })
	if task.LastError == nil || task.LastError.Kind != proto.ErrorOther || !task.LastError.RetryUntil.IsZero() || !strings.Contains(task.LastError.Message, errBroken.Error()) {
		t.Fatalf("failed with %+v", task.LastError)
	}
	if fenced, ended := h.result(); !ended || fenced {
		t.Fatalf("the runner ended %v, fenced %v: a failed task's runner ends, unfenced", ended, fenced)
	}
	if task.Phase != proto.PhaseSchema {
		t.Fatalf("failed in phase %s, want schema", task.Phase)
	}
}

// A Kafka outage counts against the connection window (720 minutes by
// default), not the other one: its errors are the Kafka destination's to
// classify, through the registry.
func TestKafkaOutageConnectionWindow(t *testing.T) {
	var task coordinator.Task
	task.Spec.Name = "k"
	for _, err := range []error{
		fmt.Errorf("write: %w", sarama.ErrOutOfBrokers),
		sarama.ProducerErrors{{Err: sarama.ErrNotLeaderForPartition}},
		fmt.Errorf("2 messages failed, first: %w", sarama.ErrRequestTimedOut),
	} {
		if kind := Classify(err); kind != proto.ErrorConnection {
			t.Errorf("%v: %s, want connection", err, kind)
		}
		rw := NewRetryWindow(RetryConfig{MinBackoff: time.Second, MaxBackoff: time.Second})
		terr, closed := rw.Fail(err, 0, &task, nil)
		if closed || terr.RetryUntil.Sub(terr.At) < proto.DefaultConnectionRetry-time.Second {
			t.Errorf("%v: window until %v (closed %v), want 720 minutes", err, terr.RetryUntil, closed)
		}
	}
	if kind := Classify(fmt.Errorf("write: %w", sarama.ErrTopicAuthorizationFailed)); kind != proto.ErrorOther {
		t.Errorf("a refused write is %s, want other", kind)
	}
}
