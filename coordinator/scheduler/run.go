package scheduler

import (
	"slices"
	"strings"
)

// nodeView is a node during one Schedule call, with the load placed on it so
// far.
type nodeView struct {
	Node
	pool string
	// size is the capacity used in fill ratios: Capacity, or for an
	// unlimited node the biggest capacity of its pool (1 when none has one).
	size int64
	load int
	// perTask counts the node's units per task, to spread a task's units.
	perTask map[string]int
}

func (n *nodeView) eligible() bool { return n.Live && !n.Draining }

// fits reports whether the node has room for a unit of the given load.
func (n *nodeView) fits(load int) bool {
	return n.Capacity <= 0 || n.load+load <= n.Capacity
}

// poolView is what one pool has to offer.
type poolView struct {
	all []*nodeView
	// eligible nodes (live, not draining), sorted by ID.
	eligible []*nodeView
}

// run is the working state of one Schedule call.
type run struct {
	nodes map[string]*nodeView
	pools map[string]*poolView
	// units are the wanted units, deduplicated, with Pool and Load resolved,
	// in unit order.
	units []Unit
	where map[UnitID]*nodeView
	// moved marks units that already moved in this call: a unit moves at
	// most once per plan, so each move is one clean handover.
	moved map[UnitID]bool
	plan  Plan
}

func newRun(nodes []Node, units []Unit) *run {
	r := &run{
		nodes: make(map[string]*nodeView, len(nodes)),
		pools: make(map[string]*poolView),
		where: make(map[UnitID]*nodeView, len(units)),
		moved: make(map[UnitID]bool),
	}
	for _, n := range nodes {
		r.addNode(n)
	}
	for _, p := range r.pools {
		p.prepare()
	}
	r.units = wantedUnits(units)
	return r
}

// addNode registers a node; nodes without an ID, which no assignment could
// name, and repeated IDs are ignored.
func (r *run) addNode(n Node) {
	if n.ID == "" || r.nodes[n.ID] != nil {
		return
	}
	nv := &nodeView{Node: n, pool: poolOf(n.Pool), perTask: map[string]int{}}
	r.nodes[n.ID] = nv
	p := r.pools[nv.pool]
	if p == nil {
		p = &poolView{}
		r.pools[nv.pool] = p
	}
	p.all = append(p.all, nv)
	if nv.eligible() {
		p.eligible = append(p.eligible, nv)
	}
}

// prepare sorts the eligible nodes and sizes the unlimited ones as the
// biggest node of the pool: "unlimited" means at least as big as any other,
// and one scale lets nodes with and without capacity be compared.
func (p *poolView) prepare() {
	slices.SortFunc(p.eligible, func(a, b *nodeView) int { return strings.Compare(a.ID, b.ID) })
	biggest := 1
	for _, n := range p.all {
		biggest = max(biggest, n.Capacity)
	}
	for _, n := range p.all {
		n.size = int64(biggest)
		if n.Capacity > 0 {
			n.size = int64(n.Capacity)
		}
	}
}

// wantedUnits deduplicates units (first wins), resolves defaults and sorts
// them in unit order.
func wantedUnits(units []Unit) []Unit {
	seen := make(map[UnitID]bool, len(units))
	out := make([]Unit, 0, len(units))
	for _, u := range units {
		if seen[u.ID] {
			continue
		}
		seen[u.ID] = true
		out = append(out, Unit{ID: u.ID, Pool: poolOf(u.Pool), Load: loadOf(u)})
	}
	slices.SortFunc(out, func(a, b Unit) int { return a.ID.compare(b.ID) })
	return out
}

// record appends a move to the plan.
func (r *run) record(m Move) {
	r.plan.Moves = append(r.plan.Moves, m)
	r.moved[m.Unit] = true
}

func (r *run) assign(u Unit, n *nodeView) {
	r.where[u.ID] = n
	n.load += u.Load
	n.perTask[u.ID.Task]++
}

func (r *run) unassign(u Unit, n *nodeView) {
	delete(r.where, u.ID)
	n.load -= u.Load
	n.perTask[u.ID.Task]--
}

// dropUnwanted unassigns every assigned unit that is no longer wanted, in
// unit order.
func (r *run) dropUnwanted(current Placement) {
	wanted := make(map[UnitID]bool, len(r.units))
	for _, u := range r.units {
		wanted[u.ID] = true
	}
	var gone []UnitID
	for id, node := range current {
		if !wanted[id] && node != "" {
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, UnitID.compare)
	for _, id := range gone {
		r.record(Move{Unit: id, From: current[id], Reason: "unit removed"})
	}
}

// place keeps every unit whose node can keep it, then places the others in
// unit order. Kept units are counted first so that the loads new units see
// are the real ones.
func (r *run) place(current Placement) {
	var homeless []Unit
	for _, u := range r.units {
		if from := current[u.ID]; r.leaveReason(u, from) == "" {
			r.assign(u, r.nodes[from])
		} else {
			homeless = append(homeless, u)
		}
	}
	for _, u := range homeless {
		r.rehome(u, current[u.ID])
	}
}

// rehome moves a unit that cannot stay where it is (from, "" if unassigned)
// to the best node, or unassigns it and lists it as waiting.
func (r *run) rehome(u Unit, from string) {
	reason := r.leaveReason(u, from)
	if to := r.bestNode(u, nil); to != nil {
		r.assign(u, to)
		r.record(Move{Unit: u.ID, From: from, To: to.ID, Reason: reason})
		return
	}
	if from != "" {
		r.record(Move{Unit: u.ID, From: from, Reason: reason})
	}
	r.plan.Waiting = append(r.plan.Waiting, Waiting{Unit: u.ID, Reason: r.waitReason(u.Pool)})
}

// leaveReason says why a unit cannot stay on node from, or "" if it can.
func (r *run) leaveReason(u Unit, from string) string {
	if from == "" {
		return "new unit"
	}
	n := r.nodes[from]
	switch {
	case n == nil:
		return "node " + from + " was removed"
	case !n.Live:
		return "node " + from + " is down"
	case n.Draining:
		return "node " + from + " is draining"
	case n.pool != u.Pool:
		return "node " + from + " left pool " + u.Pool
	}
	return ""
}

// bestNode returns the eligible node of the unit's pool, other than exclude,
// with room for the unit and whose fill it raises least; ties go to the node
// with fewer units of the same task, then to the lowest ID. Nil if none.
func (r *run) bestNode(u Unit, exclude *nodeView) *nodeView {
	p := r.pools[u.Pool]
	if p == nil {
		return nil
	}
	var best *nodeView
	for _, n := range p.eligible {
		if n == exclude || !n.fits(u.Load) {
			continue
		}
		if best == nil || betterTarget(n, best, u) {
			best = n
		}
	}
	return best
}

// betterTarget reports whether a is a better home than b for unit u.
func betterTarget(a, b *nodeView, u Unit) bool {
	// Compare (2La+u)/Sa with (2Lb+u)/Sb, the growth of Σ L²/S, without
	// division.
	ca := (2*int64(a.load) + int64(u.Load)) * b.size
	cb := (2*int64(b.load) + int64(u.Load)) * a.size
	if ca != cb {
		return ca < cb
	}
	if ta, tb := a.perTask[u.ID.Task], b.perTask[u.ID.Task]; ta != tb {
		return ta < tb
	}
	return a.ID < b.ID
}

// waitReason says why a unit of the named pool found no node.
func (r *run) waitReason(pool string) string {
	p := r.pools[pool]
	if p == nil {
		return "pool " + pool + " has no nodes"
	}
	live := 0
	for _, n := range p.all {
		if n.Live {
			live++
		}
	}
	switch {
	case live == 0:
		return "no live worker in pool " + pool
	case len(p.eligible) == 0:
		return "all live workers of pool " + pool + " are draining"
	}
	return "all live workers of pool " + pool + " are at capacity"
}
