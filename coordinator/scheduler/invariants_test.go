package scheduler

import (
	"errors"
	"fmt"
	"strings"
)

// checkPlan checks what every plan must satisfy, whatever the inputs, from
// the outside (it shares no code with Schedule but Placement.Apply and
// Loads):
//   - each unit moves at most once, from where it was, with a reason;
//   - every unit no longer wanted is unassigned ("unit removed");
//   - after the plan, every placed unit is wanted and sits on a known, live,
//     not draining node of its own pool;
//   - every wanted unit is either placed or waiting, never both, and the
//     waiting list is sorted;
//   - a node that received units is within its capacity;
//   - a unit that could stay is moved only by a rebalance, and there are at
//     most budget rebalance moves.
func checkPlan(nodes []Node, units []Unit, before Placement, plan Plan, budget int) error {
	byID := map[string]Node{}
	for _, n := range nodes {
		if _, dup := byID[n.ID]; !dup {
			byID[n.ID] = n
		}
	}
	wanted := map[UnitID]Unit{}
	for _, u := range units {
		if _, dup := wanted[u.ID]; !dup {
			wanted[u.ID] = u
		}
	}
	home := func(u Unit, node string) bool {
		n, ok := byID[node]
		return ok && n.Live && !n.Draining && poolOf(n.Pool) == poolOf(u.Pool)
	}
	waiting := map[UnitID]bool{}
	var errs []error
	for i, w := range plan.Waiting {
		if i > 0 && plan.Waiting[i-1].Unit.compare(w.Unit) >= 0 {
			errs = append(errs, fmt.Errorf("waiting not sorted at %s", w.Unit))
		}
		if w.Reason == "" {
			errs = append(errs, fmt.Errorf("waiting %s without a reason", w.Unit))
		}
		waiting[w.Unit] = true
	}
	moved := map[UnitID]bool{}
	received := map[string]bool{}
	rebalances := 0
	for _, m := range plan.Moves {
		errs = append(errs, checkMove(m, before, moved, wanted, waiting))
		moved[m.Unit] = true
		received[m.To] = true
		if u, ok := wanted[m.Unit]; ok && home(u, before[m.Unit]) {
			if m.Reason != "rebalance onto "+m.To {
				errs = append(errs, fmt.Errorf("%s moved off a good node: %+v", m.Unit, m))
			}
			rebalances++
		}
	}
	if rebalances > budget {
		errs = append(errs, fmt.Errorf("%d rebalance moves, budget %d", rebalances, budget))
	}
	for id, node := range before {
		if _, ok := wanted[id]; !ok && node != "" && !moved[id] {
			errs = append(errs, fmt.Errorf("unwanted %s left on %s", id, node))
		}
	}
	after := before.Apply(plan)
	for id, u := range wanted {
		node := after[id]
		placed := node != ""
		switch {
		case placed && waiting[id]:
			errs = append(errs, fmt.Errorf("%s both placed on %s and waiting", id, node))
		case !placed && !waiting[id]:
			errs = append(errs, fmt.Errorf("%s neither placed nor waiting", id))
		case placed && !home(u, node):
			errs = append(errs, fmt.Errorf("%s (pool %s) placed on bad node %s %+v", id, poolOf(u.Pool), node, byID[node]))
		}
	}
	for id, node := range after {
		if _, ok := wanted[id]; !ok && node != "" {
			errs = append(errs, fmt.Errorf("unwanted %s still placed", id))
		}
	}
	loads := Loads(nodes, units, after)
	for id := range received {
		if n, ok := byID[id]; ok && n.Capacity > 0 && loads[id] > n.Capacity {
			errs = append(errs, fmt.Errorf("node %s got units beyond capacity: %d > %d", id, loads[id], n.Capacity))
		}
	}
	return errors.Join(errs...)
}

// checkMove checks one move against the placement before the plan and the
// moves seen so far.
func checkMove(m Move, before Placement, moved map[UnitID]bool, wanted map[UnitID]Unit, waiting map[UnitID]bool) error {
	_, isWanted := wanted[m.Unit]
	switch {
	case moved[m.Unit]:
		return fmt.Errorf("%s moved twice", m.Unit)
	case m.From != before[m.Unit]:
		return fmt.Errorf("move %+v: unit was on %q", m, before[m.Unit])
	case m.From == m.To:
		return fmt.Errorf("move %+v goes nowhere", m)
	case m.Reason == "":
		return fmt.Errorf("move %+v without a reason", m)
	case !isWanted && (m.To != "" || m.Reason != "unit removed"):
		return fmt.Errorf("unwanted unit: %+v", m)
	case isWanted && m.To == "" && !waiting[m.Unit]:
		return fmt.Errorf("wanted unit unassigned but not waiting: %+v", m)
	case isWanted && strings.HasPrefix(m.Reason, "rebalance") && m.Reason != "rebalance onto "+m.To:
		return fmt.Errorf("bad rebalance reason: %+v", m)
	}
	return nil
}
