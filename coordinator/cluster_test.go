package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// Nodes, liveness, drains and plans through the FSM: an assignment's
// epoch is the index of the plan that made it, a move computed on older
// state is dropped, and all of it survives a snapshot.
func TestClusterState(t *testing.T) {
	s := NewStore()
	mustApply(t, s, 1, RegisterNode{Node: Node{ID: "n1", API: "a1", Roles: []string{RoleWorker}}, At: t0})
	mustApply(t, s, 2, RegisterNode{Node: Node{ID: "n2", API: "a2", Roles: []string{RoleWorker}, Pool: "p1", Capacity: 4}, At: t0})
	if n, _ := s.Node("n1"); !n.Live || n.Pool != DefaultPool || n.RegisterIndex != 1 {
		t.Fatalf("n1 = %+v", n)
	}
	mustApply(t, s, 3, ApplyPlan{Moves: []PlanMove{{Unit: "t/capture", To: "n1"}, {Unit: "t/apply/0", To: "n1"}}, Waiting: map[string]string{"u": "no live worker in pool p9"}, At: t0})
	as := s.Assignments()
	if len(as) != 2 || as[0].Epoch != 3 || as[0].Node != "n1" || s.Waiting("u") == "" {
		t.Fatalf("after plan: %+v, waiting %q", as, s.Waiting("u"))
	}
	// A stale move (From no longer matches) is dropped; a fresh one moves
	// the unit and raises its epoch.
	mustApply(t, s, 4, ApplyPlan{Moves: []PlanMove{{Unit: "t/capture", From: "n2", To: "n1"}, {Unit: "t/apply/0", From: "n1", To: "n2"}}, At: t0})
	as = s.Assignments()
	if as[0].Unit != "t/apply/0" || as[0].Node != "n2" || as[0].Epoch != 4 || as[1].Epoch != 3 {
		t.Fatalf("after move: %+v", as)
	}
	if s.Waiting("u") != "" {
		t.Fatal("a plan replaces the waiting reasons")
	}
	mustApply(t, s, 5, SetNodesLive{Live: map[string]bool{"n1": false}, At: t0})
	mustApply(t, s, 6, DrainNode{ID: "n2"})
	if n, _ := s.Node("n1"); n.Live {
		t.Fatal("n1 still live")
	}
	// Re-registering keeps the drain and makes the node live.
	mustApply(t, s, 7, RegisterNode{Node: Node{ID: "n2", API: "a2b", Roles: []string{RoleWorker}}, At: t0})
	if n, _ := s.Node("n2"); !n.Draining || !n.Live || n.API != "a2b" {
		t.Fatalf("n2 = %+v", n)
	}
	if err := s.Apply(8, DrainNode{ID: "n9"}); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("drain of an unknown node: %v", err)
	}
	mustApply(t, s, 9, ApplyPlan{Moves: []PlanMove{{Unit: "t/apply/0", From: "n2", To: ""}}, At: t0})
	if len(s.Assignments()) != 1 {
		t.Fatalf("unassign: %+v", s.Assignments())
	}

	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(s.snapshot()); err != nil {
		t.Fatal(err)
	}
	var snap snapshotData
	if err := json.NewDecoder(&buf).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	r := NewStore()
	r.restore(snap)
	if len(r.Nodes()) != 2 || len(r.Assignments()) != 1 || r.Index() != 9 {
		t.Fatalf("restored: %+v %+v", r.Nodes(), r.Assignments())
	}
	mustApply(t, r, 10, RemoveNode{ID: "n1"})
	if _, ok := r.Node("n1"); ok {
		t.Fatal("n1 not removed")
	}
}

// Units a task needs: capture while it runs, apply groups once it is
// incremental, nothing while paused; its pool from the spec.
func TestTaskUnits(t *testing.T) {
	task := &Task{Spec: testSpec("t"), State: proto.StateRunning, Phase: proto.PhaseFull}
	task.Spec.Cluster = "p1"
	if us := TaskUnits(task, 4); len(us) != 1 || us[0].ID.String() != "t/capture" || us[0].Pool != "p1" {
		t.Fatalf("full phase: %+v", us)
	}
	task.Phase = proto.PhaseIncremental
	if us := TaskUnits(task, 4); len(us) != 5 || us[4].ID.String() != "t/apply/3" {
		t.Fatalf("incremental: %+v", us)
	}
	task.State = proto.StatePaused
	if us := TaskUnits(task, 4); len(us) != 0 {
		t.Fatalf("paused: %+v", us)
	}
}

// An apply group's report cannot undo a pause.
func TestIfRunnable(t *testing.T) {
	s := NewStore()
	mustApply(t, s, 1, NewCreateTask(testSpec("a"), t0))
	mustApply(t, s, 2, PauseTask{Name: "a"})
	if err := s.Apply(3, SetTaskStatus{Name: "a", State: proto.StateRetrying, IfRunnable: true}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("report on a paused task: %v", err)
	}
	if got, _ := s.Task("a"); got.State != proto.StatePaused {
		t.Fatalf("state %s", got.State)
	}
}
