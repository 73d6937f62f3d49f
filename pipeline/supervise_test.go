package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// A recovered panic is a failure of kind other, whatever its value: even
// a panic with a connection error, and wrapped.
func TestPanicClassifiedOther(t *testing.T) {
	for _, v := range []any{"boom", context.DeadlineExceeded, fmt.Errorf("wrapped: %w", context.DeadlineExceeded)} {
		err := safe.Run("test", func() error { panic(v) })
		if got := Classify(err); got != proto.ErrorOther {
			t.Errorf("panic(%v): kind %q, want other", v, got)
		}
		if got := Classify(fmt.Errorf("apply: %w", err)); got != proto.ErrorOther {
			t.Errorf("wrapped panic(%v): kind %q, want other", v, got)
		}
	}
}

// statusStore is a TaskStore of one task that records the statuses set.
type statusStore struct {
	mu       sync.Mutex
	task     coordinator.Task
	statuses []coordinator.SetTaskStatus
	resolves []coordinator.ResolveError
	onStatus func() // called with each status set
}

func (s *statusStore) Task(string) (coordinator.Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.task, true
}

func (s *statusStore) Tasks() []coordinator.Task {
	t, _ := s.Task("")
	return []coordinator.Task{t}
}

func (s *statusStore) Apply(_ context.Context, cmd coordinator.Command) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := cmd.(coordinator.ResolveError); ok {
		s.resolves = append(s.resolves, r)
		s.task.State = proto.StateRunning
		return nil
	}
	if st, ok := cmd.(coordinator.SetTaskStatus); ok {
		s.statuses = append(s.statuses, st)
		if s.onStatus != nil {
			s.onStatus()
		}
		s.task.State = st.State
		if st.Error != nil {
			s.task.LastError = st.Error
		}
	}
	return nil
}

// A panicking attempt is retried under the other window: the task shows
// retrying with the panic's message (not its stack), the unit's health
// has it, and the next attempt runs.
func TestPanicInAttemptRetried(t *testing.T) {
	store := &statusStore{task: retryTask("a", "postgres://u@h:1/d", "postgres://u@h:2/d", time.Minute)}
	health := &unitHealth{}
	var healthErr string // the unit's health while it retried
	store.onStatus = func() {
		health.mu.Lock()
		defer health.mu.Unlock()
		healthErr = health.err
	}
	before := safe.Panics("attempt/test")
	attempts := 0
	cfg := RetryConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, RetryMinute: time.Minute}
	fenced := Supervise(context.Background(), Unit{Task: "a", What: "test unit", Where: "attempt/test", Store: store, Retry: cfg, Log: discardLogger(), Health: health.set},
		func(context.Context) error {
			if attempts++; attempts == 1 {
				var m map[string]int
				m["x"]++ // a nil map write: a runtime error
			}
			return nil
		})
	if fenced || attempts != 2 {
		t.Fatalf("fenced %v after %d attempts, want a retry that succeeds", fenced, attempts)
	}
	if got := safe.Panics("attempt/test"); got != before+1 {
		t.Fatalf("%d panics counted, want %d", got, before+1)
	}
	if len(store.statuses) != 1 {
		t.Fatalf("statuses %+v, want one (retrying)", store.statuses)
	}
	st := store.statuses[0]
	if st.State != proto.StateRetrying || st.Error == nil || st.Error.Kind != proto.ErrorOther || st.Error.RetryUntil.IsZero() {
		t.Fatalf("status %+v, error %+v", st, st.Error)
	}
	if msg := st.Error.Message; !strings.HasPrefix(msg, "panic in attempt/test: ") || !strings.Contains(msg, "nil map") || strings.Contains(msg, "goroutine") {
		t.Fatalf("message %q", msg)
	}
	if !strings.Contains(healthErr, "panic in attempt/test") {
		t.Fatalf("unit health error %q while retrying", healthErr)
	}
}

// A unit that fails and then finishes its work sooner than HealthyAfter
// (a copy unit whose retried chunk loads in seconds) resolves its error:
// the task does not stay retrying with nothing left to retry. A unit
// that never failed resolves nothing (another unit's error stays).
func TestUnitDoneAfterFailureResolves(t *testing.T) {
	store := &statusStore{task: retryTask("a", "postgres://u@h:1/d", "postgres://u@h:2/d", time.Minute)}
	cfg := RetryConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, RetryMinute: time.Minute}
	unit := Unit{Task: "a", What: "copy unit", Store: store, Retry: cfg, Log: discardLogger()}
	attempts := 0
	Supervise(context.Background(), unit, func(context.Context) error {
		if attempts++; attempts == 1 {
			return fmt.Errorf("doris: Put: %w", io.ErrClosedPipe)
		}
		return nil
	})
	if attempts != 2 || len(store.statuses) != 1 || store.statuses[0].State != proto.StateRetrying {
		t.Fatalf("%d attempts, statuses %+v: want one failure recorded, then a retry", attempts, store.statuses)
	}
	if len(store.resolves) != 1 {
		t.Fatalf("resolves %+v, want the failure resolved once the retry finished", store.resolves)
	}
	if failedAt := store.statuses[0].Error.At; !failedAt.Before(store.resolves[0].HealthySince) {
		t.Fatalf("resolved as healthy since %v, not after the failure at %v", store.resolves[0].HealthySince, failedAt)
	}
	if store.task.State != proto.StateRunning {
		t.Fatalf("task state %s after the unit finished", store.task.State)
	}

	// Another unit's failure is current; a unit that simply finishes
	// leaves it so.
	store.task.State = proto.StateRetrying
	Supervise(context.Background(), unit, func(context.Context) error { return nil })
	if len(store.resolves) != 1 || store.task.State != proto.StateRetrying {
		t.Fatalf("a unit that never failed resolved %+v (state %s)", store.resolves[1:], store.task.State)
	}
}

// unitHealth records a unit's health, as node's does.
type unitHealth struct {
	mu  sync.Mutex
	err string
}

func (h *unitHealth) set(_ bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.err = err.Error()
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
