package coordinator

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// progressStore is a store with task "a" (created at index 1), and the
// next free index.
func progressStore(t *testing.T) (*Store, *uint64) {
	t.Helper()
	s := NewStore()
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	next := uint64(1)
	return s, &next
}

func applyNext(t *testing.T, s *Store, next *uint64, cmd Command) {
	t.Helper()
	*next++
	mustApply(t, s, *next, cmd)
}

func rowsApplied(t *testing.T, s *Store) int64 {
	t.Helper()
	task, _ := s.Task("a")
	return task.RowsApplied()
}

// Each run of a unit reports its whole count; the total folds runs that
// ended, counts a repeated report once, ignores an older run's late
// report, and never goes down (a pause, a restart, a move).
func TestRowsAppliedFolding(t *testing.T) {
	s, next := progressStore(t)
	report := func(unit string, epoch uint64, start, rows int64, want int64) {
		t.Helper()
		applyNext(t, s, next, ReportRowsApplied{Name: "a", Unit: unit, Epoch: epoch, Start: start, Rows: rows})
		if got := rowsApplied(t, s); got != want {
			t.Fatalf("after %s epoch %d run %d rows %d: total %d, want %d", unit, epoch, start, rows, got, want)
		}
	}
	report("apply/0", 5, 100, 10, 10)
	report("apply/0", 5, 100, 25, 25)  // the same run, further on
	report("apply/0", 5, 100, 25, 25)  // repeated
	report("apply/0", 5, 100, 20, 25)  // late, out of order
	report("apply/1", 5, 100, 7, 32)   // another unit
	report("apply/0", 5, 200, 3, 35)   // restarted here: 25 folded, 3 new
	report("apply/0", 5, 100, 30, 35)  // the old run's late report: ignored
	report("apply/0", 9, 50, 4, 39)    // moved to a node with an earlier clock: a higher epoch wins
	report("apply/0", 5, 300, 100, 39) // a run of the previous owner: ignored
	report("apply/1", 9, 60, 1, 40)    // apply/1 moved too: its 7 folded

	// Through a snapshot (a process restart), the total stays.
	snap := s.snapshot()
	r := NewStore()
	r.restore(snap)
	if task, _ := r.Task("a"); task.RowsApplied() != 40 {
		t.Fatalf("restored total %d, want 40", task.RowsApplied())
	}
	// Pausing and resuming keeps it.
	applyNext(t, s, next, PauseTask{Name: "a"})
	applyNext(t, s, next, ResumeTask{Name: "a"})
	if got := rowsApplied(t, s); got != 40 {
		t.Fatalf("after pause and resume: %d, want 40", got)
	}
	if err := s.Apply(*next+1, ReportRowsApplied{Name: "a", Unit: "", Rows: 1}); err == nil {
		t.Fatal("a report without a unit was taken")
	}
}

// An error is current until the task's units run well after it: then it
// is history, the task runs, and a newer error is current again.
func TestResolveError(t *testing.T) {
	s, next := progressStore(t)
	failedAt := t0.Add(time.Minute)
	terr := &proto.TaskError{Kind: proto.ErrorConnection, Message: "connection refused", At: failedAt, RetryUntil: failedAt.Add(time.Hour)}
	applyNext(t, s, next, SetTaskStatus{Name: "a", State: proto.StateRetrying, Error: terr, IfRunnable: true})

	// A unit healthy since before the failure says nothing of it.
	applyNext(t, s, next, ResolveError{Name: "a", At: failedAt.Add(time.Minute), HealthySince: failedAt.Add(-time.Second)})
	task, _ := s.Task("a")
	if task.State != proto.StateRetrying || task.CurrentError() == nil {
		t.Fatalf("resolved by a unit that ran through the failure: %s %+v", task.State, task.CurrentError())
	}
	// One healthy since after it resolves it.
	resolved := failedAt.Add(2 * time.Minute)
	applyNext(t, s, next, ResolveError{Name: "a", At: resolved, HealthySince: failedAt.Add(time.Second)})
	task, _ = s.Task("a")
	hist, at := task.ResolvedError()
	if task.State != proto.StateRunning || task.CurrentError() != nil || hist == nil || !at.Equal(resolved) ||
		hist.Message != terr.Message || !hist.RetryUntil.IsZero() {
		t.Fatalf("after recovery: state %s, current %+v, resolved %+v at %v", task.State, task.CurrentError(), hist, at)
	}
	// A state change that keeps the error keeps it resolved.
	applyNext(t, s, next, SetTaskStatus{Name: "a", State: proto.StateRunning, KeepError: true})
	if task, _ = s.Task("a"); task.CurrentError() != nil {
		t.Fatalf("a kept error became current again: %+v", task.CurrentError())
	}
	// A new error is current.
	applyNext(t, s, next, SetTaskStatus{Name: "a", State: proto.StateRetrying, Error: &proto.TaskError{Kind: proto.ErrorOther, Message: "boom", At: resolved.Add(time.Minute)}})
	if task, _ = s.Task("a"); task.CurrentError() == nil || task.CurrentError().Message != "boom" {
		t.Fatalf("a new error is not current: %+v", task.CurrentError())
	}
	if e, _ := task.ResolvedError(); e != nil {
		t.Fatalf("a current error shows as resolved: %+v", e)
	}
	// A paused task is not resolved (its units do not run).
	applyNext(t, s, next, PauseTask{Name: "a"})
	if err := s.Apply(*next+1, ResolveError{Name: "a", At: resolved.Add(time.Hour), HealthySince: resolved.Add(30 * time.Minute)}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("resolving a paused task: %v", err)
	}
}

// Full-sync progress never passes 100%: a table's estimate (stale
// statistics) is corrected by its chunks' counts, finished tables count
// exactly, and rows of chunks still copying show.
func TestFullProgressCorrected(t *testing.T) {
	s, next := progressStore(t)
	task, _ := s.Task("a")
	plan := FullSyncPlan{Units: 1, TablesTotal: 2, RowsEstimated: 1100, Tables: []PlannedCopy{
		{Table: proto.TableID{Schema: "public", Name: "big"}, Estimated: 1000, Chunks: []PlannedChunk{{ToPage: 10}, {FromPage: 10, ToPage: -1}}},
		{Table: proto.TableID{Schema: "public", Name: "small"}, Estimated: 100, Chunks: []PlannedChunk{{ToPage: -1}}},
	}}
	applyNext(t, s, next, SetFullSyncPlan{Name: "a", Epoch: task.Epoch, Plan: plan})
	id := *next
	applyNext(t, s, next, SetTaskStatus{Name: "a", Phase: proto.PhaseFull, State: proto.StateRunning})
	check := func(what string, done, estimated int64) {
		t.Helper()
		task, _ := s.Task("a")
		f := task.FullProgress()
		if f.RowsDone != done || f.RowsEstimated != estimated {
			t.Fatalf("%s: %d/%d rows, want %d/%d", what, f.RowsDone, f.RowsEstimated, done, estimated)
		}
		if f.RowsDone > f.RowsEstimated {
			t.Fatalf("%s: more than 100%%: %d/%d", what, f.RowsDone, f.RowsEstimated)
		}
	}
	check("planned", 0, 1100)
	// Rows show while the first chunk copies.
	applyNext(t, s, next, MarkChunkProgress{Name: "a", Plan: id, Table: 0, Chunk: 0, Rows: 400})
	check("copying", 400, 1100)
	applyNext(t, s, next, MarkChunkProgress{Name: "a", Plan: id, Table: 0, Chunk: 0, Rows: 300}) // a retry starts over: the most shows
	check("copying again", 400, 1100)
	// The statistics were stale: the table holds far more.
	applyNext(t, s, next, MarkChunkCopied{Name: "a", Plan: id, Table: 0, Chunk: 0, Rows: 1500})
	check("first chunk done", 1500, 1600)
	applyNext(t, s, next, MarkChunkProgress{Name: "a", Plan: id, Table: 0, Chunk: 1, Rows: 700})
	check("second chunk copying", 2200, 2300)
	applyNext(t, s, next, MarkChunkCopied{Name: "a", Plan: id, Table: 0, Chunk: 1, Rows: 800})
	check("big done", 2300, 2400)
	applyNext(t, s, next, MarkTablesCopied{Name: "a", Tables: map[string]proto.LSN{"public\x00big": 1}, Rows: 2300})
	check("big finished", 2300, 2400)
	applyNext(t, s, next, MarkChunkCopied{Name: "a", Plan: id, Table: 1, Chunk: 0, Rows: 90})
	check("small done", 2390, 2390)
	// A progress report of a plan that is over records nothing, and is
	// no error.
	applyNext(t, s, next, MarkChunkProgress{Name: "a", Plan: id + 1000, Table: 0, Chunk: 0, Rows: 1})
}

// Once incremental, the tables count is the task's tables: those DDL
// sync added count, those dropped do not.
func TestTablesProgressFollowsDDL(t *testing.T) {
	s, next := progressStore(t)
	task, _ := s.Task("a")
	keys := []string{"public\x00a", "public\x00b"}
	applyNext(t, s, next, SetTaskTables{Name: "a", Tables: keys, Epoch: task.Epoch})
	applyNext(t, s, next, MarkTablesCopied{Name: "a", Tables: map[string]proto.LSN{keys[0]: 1, keys[1]: 1}, Rows: 10, Epoch: task.Epoch})
	applyNext(t, s, next, SetTaskStatus{Name: "a", Phase: proto.PhaseIncremental, State: proto.StateRunning})
	count := func() (int, int) {
		task, _ := s.Task("a")
		f := task.FullProgress()
		return f.TablesDone, f.TablesTotal
	}
	if d, n := count(); d != 2 || n != 2 {
		t.Fatalf("tables %d/%d, want 2/2", d, n)
	}
	applyNext(t, s, next, SetTaskTables{Name: "a", Tables: append(keys, "public\x00c"), Epoch: task.Epoch})
	if d, n := count(); d != 3 || n != 3 {
		t.Fatalf("after DDL sync created a table: %d/%d, want 3/3", d, n)
	}
	applyNext(t, s, next, SetTaskTables{Name: "a", Tables: []string{keys[0], "public\x00c"}, Epoch: task.Epoch})
	if d, n := count(); d != 2 || n != 2 {
		t.Fatalf("after DDL sync dropped a table: %d/%d, want 2/2", d, n)
	}
}
