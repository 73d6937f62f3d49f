package scheduler

import (
	"fmt"
	"reflect"
	"testing"
)

// TestDeterministic builds the same inputs twice, in different slice and map
// insertion orders, and expects identical plans.
func TestDeterministic(t *testing.T) {
	build := func(reverse bool) ([]Node, []Unit, Placement) {
		var nodes []Node
		for i := range 6 {
			nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i), Live: i != 2, Draining: i == 4, Capacity: i % 3 * 4})
		}
		var units []Unit
		for i := range 8 {
			units = append(units, taskUnits(fmt.Sprintf("t%d", i), i%4, i%2, "", i%3)...)
		}
		p := Placement{}
		for i, u := range units {
			if i%3 != 0 {
				p[u.ID] = nodes[i%len(nodes)].ID
			}
		}
		p[UnitID{Task: "gone", Kind: KindCapture}] = "n1"
		if reverse {
			nodes, units = reversed(nodes), reversed(units)
			q := Placement{}
			for _, u := range units {
				if n, ok := p[u.ID]; ok {
					q[u.ID] = n
				}
			}
			q[UnitID{Task: "gone", Kind: KindCapture}] = "n1"
			p = q
		}
		return nodes, units, p
	}
	n1, u1, p1 := build(false)
	n2, u2, p2 := build(true)
	a := Schedule(n1, u1, p1, Options{})
	b := Schedule(n2, u2, p2, Options{})
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("plans differ:\n%+v\n%+v", a, b)
	}
	if len(a.Moves) == 0 {
		t.Fatal("expected moves")
	}
	if c := Schedule(n1, u1, p1, Options{}); !reflect.DeepEqual(a, c) {
		t.Fatalf("second call differs:\n%+v\n%+v", a, c)
	}
}

// TestScheduleDoesNotModifyInputs: the caller's placement is the committed
// state; Schedule and Apply must leave it alone.
func TestScheduleDoesNotModifyInputs(t *testing.T) {
	nodes := []Node{{ID: "n1", Live: true}, {ID: "n2"}}
	units := taskUnits("t", 2, 0, "", 1)
	current := Placement{units[0].ID: "n2", UnitID{Task: "x", Kind: KindCapture}: "n1"}
	saved := clonePlacement(current)
	plan := Schedule(nodes, units, current, Options{})
	next := current.Apply(plan)
	if !reflect.DeepEqual(current, saved) {
		t.Fatalf("placement modified: %v", current)
	}
	want := Placement{units[0].ID: "n1", units[1].ID: "n1", units[2].ID: "n1"}
	if !reflect.DeepEqual(next, want) {
		t.Fatalf("Apply = %v, want %v", next, want)
	}
}

func TestLoads(t *testing.T) {
	nodes := []Node{{ID: "n1"}, {ID: "n2"}}
	units := []Unit{
		{ID: UnitID{Task: "t", Kind: KindCapture}, Load: 3},
		{ID: UnitID{Task: "t", Kind: KindApply}},
		{ID: UnitID{Task: "t", Kind: KindApply, Group: 1}, Load: -2},
	}
	p := Placement{
		units[0].ID:                            "n1",
		units[1].ID:                            "n1",
		units[2].ID:                            "n9",
		UnitID{Task: "old", Kind: KindCapture}: "n2",
	}
	want := map[string]int{"n1": 4, "n2": 0, "n9": 1}
	if got := Loads(nodes, units, p); !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads = %v, want %v", got, want)
	}
}

func ExampleSchedule() {
	nodes := []Node{
		{ID: "n1", Live: true},
		{ID: "n2", Live: true},
	}
	units := []Unit{
		{ID: UnitID{Task: "orders", Kind: KindCapture}},
		{ID: UnitID{Task: "orders", Kind: KindApply, Group: 0}},
		{ID: UnitID{Task: "orders", Kind: KindApply, Group: 1}},
	}
	plan := Schedule(nodes, units, Placement{}, Options{})
	for _, m := range plan.Moves {
		fmt.Printf("%s -> %s (%s)\n", m.Unit, m.To, m.Reason)
	}
	// n1 dies: its units go to n2, the only node left.
	nodes[0].Live = false
	plan = Schedule(nodes, units, Placement{}.Apply(plan), Options{})
	for _, m := range plan.Moves {
		fmt.Printf("%s %s -> %s (%s)\n", m.Unit, m.From, m.To, m.Reason)
	}
	// Output:
	// orders/capture -> n1 (new unit)
	// orders/apply/0 -> n2 (new unit)
	// orders/apply/1 -> n1 (new unit)
	// orders/capture n1 -> n2 (node n1 is down)
	// orders/apply/1 n1 -> n2 (node n1 is down)
}
