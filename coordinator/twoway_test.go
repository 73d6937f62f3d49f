package coordinator

import (
	"errors"
	"testing"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

// A two-way task is created, paused, resumed, re-derived and deleted
// with its reverse direction, which waits for the forward copy.
func TestTwoWayTaskHasItsReverseDirection(t *testing.T) {
	s := NewStore()
	spec := testSpec("ab")
	spec.TwoWay = &proto.TwoWaySpec{Conflicts: proto.ConflictOverwrite}
	mustApply(t, s, 5, NewCreateTask(spec, t0))
	rev, ok := s.Task("ab__r")
	if !ok {
		t.Fatal("no reverse direction")
	}
	if rev.ReverseOf != "ab" || !rev.Spec.IsReverse() || rev.Spec.Source.DSN != "postgres://app:hunter2@127.0.0.1:5433/wh" ||
		prototest.ConfigOf(&rev.Spec).DSN != spec.Source.DSN || rev.Epoch != 5 || rev.Spec.TwoWay.Conflicts != proto.ConflictOverwrite {
		t.Fatalf("reverse %+v", rev)
	}
	if !ReverseWaits(&rev, s.Task) {
		t.Fatal("the reverse direction must wait for the forward copy")
	}
	mustApply(t, s, 6, SetTaskStatus{Name: "ab", Phase: proto.PhaseIncremental, State: proto.StateRunning})
	if rev, _ = s.Task("ab__r"); ReverseWaits(&rev, s.Task) {
		t.Fatal("the reverse direction still waits once the forward task is incremental")
	}

	// Settings follow the forward task.
	mustApply(t, s, 7, SetThrottle{Name: "ab", Throttle: &ThrottleV1{Incremental: &RateV1{RPS: 9}}})
	if rev, _ = s.Task("ab__r"); rev.Spec.Throttle == nil || rev.Spec.Throttle.Incremental.RPS != 9 {
		t.Fatalf("throttle not derived: %+v", rev.Spec.Throttle)
	}

	// A failed reverse direction (a task_failed conflict) resumes with
	// the task; pause stops both and fences both.
	mustApply(t, s, 8, SetTaskStatus{Name: "ab__r", State: proto.StateFailed})
	mustApply(t, s, 9, ResumeTask{Name: "ab"})
	if rev, _ = s.Task("ab__r"); rev.State != proto.StatePending {
		t.Fatalf("reverse after resume: %s", rev.State)
	}
	mustApply(t, s, 10, PauseTask{Name: "ab"})
	fwd, _ := s.Task("ab")
	rev, _ = s.Task("ab__r")
	if fwd.State != proto.StatePaused || rev.State != proto.StatePaused || rev.Epoch != 10 {
		t.Fatalf("pause: forward %s, reverse %s epoch %d", fwd.State, rev.State, rev.Epoch)
	}
	mustApply(t, s, 11, ResumeTask{Name: "ab"})
	if rev, _ = s.Task("ab__r"); rev.State != proto.StatePending {
		t.Fatalf("reverse after resume: %s", rev.State)
	}

	// Delete marks and removes both.
	mustApply(t, s, 12, MarkDeleting{Name: "ab"})
	if rev, _ = s.Task("ab__r"); !rev.Deleting {
		t.Fatal("reverse not marked for deletion")
	}
	mustApply(t, s, 13, RemoveTask{Name: "ab"})
	if len(s.Tasks()) != 0 {
		t.Fatalf("left: %+v", s.Tasks())
	}

	// A reverse spec cannot be created on its own, and a taken reverse
	// name refuses the two-way task.
	revSpec, _ := spec.ReverseSpec()
	if err := s.Apply(14, NewCreateTask(revSpec, t0)); err == nil {
		t.Fatal("created a reverse direction alone")
	}
	mustApply(t, s, 15, NewCreateTask(testSpec("ab__r"), t0))
	if err := s.Apply(16, NewCreateTask(spec, t0)); !errors.Is(err, ErrTaskExists) {
		t.Fatalf("reverse name taken: %v", err)
	}
	if _, ok := s.Task("ab"); ok {
		t.Fatal("the forward task was created without its reverse direction")
	}
}
