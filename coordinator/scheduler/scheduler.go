// Package scheduler decides which worker node runs each unit of work of a
// Sluice cluster: the capture of a task, the copy units of its full sync
// and the apply of each of its table groups (DESIGN "Units of work").
//
// It is pure: Schedule reads the nodes, the wanted units and the current
// placement and returns a Plan. It does no I/O, keeps no state, imports no
// Raft and never iterates over a map where order could leak into the result,
// so the coordinator leader can run it after every change and tests can
// replay it without a cluster. Committing a plan, and giving every moved unit
// a new epoch that fences its previous owner (DESIGN invariant 3), is the
// caller's job.
package scheduler

// DefaultPool is the pool of a node or unit whose Pool is empty.
const DefaultPool = "default"

// defaultMaxRebalanceMoves is Options.MaxRebalanceMoves when left at 0.
const defaultMaxRebalanceMoves = 2

// Unit is a unit of work the cluster wants running.
type Unit struct {
	ID UnitID
	// Pool is the task's node pool ("cluster" in the task spec); "" means
	// DefaultPool. A unit only ever runs on a node of its pool.
	Pool string
	// Load is the unit's relative weight; <= 0 means 1.
	Load int
}

// Node is a worker node as the scheduler sees it.
type Node struct {
	ID string
	// Pool is the node's pool; "" means DefaultPool.
	Pool string
	// Capacity is the most total Load the node takes; <= 0 means unlimited.
	Capacity int
	// Live: the node heartbeats. A node that is not live keeps no units.
	Live bool
	// Draining: the node takes no new units and gives its units away, so an
	// operator can empty it before maintenance.
	Draining bool
}

// Placement maps a unit to the ID of the node it is assigned to.
type Placement map[UnitID]string

// Move changes the assignment of one unit.
type Move struct {
	Unit UnitID
	// From is "" when the unit was unassigned.
	From string
	// To is "" when the unit ends up unassigned: it is no longer wanted, or
	// its node cannot keep it and no other node can take it (then it is also
	// in Plan.Waiting).
	To string
	// Reason is short and human, for logs and the API: "new unit",
	// "node n2 is down", "node n3 is draining", "node n1 was removed",
	// "node n1 left pool p1", "unit removed", "rebalance onto n4".
	Reason string
}

// Waiting is a wanted unit that no node can take now.
type Waiting struct {
	Unit UnitID
	// Reason says what is missing: "pool p1 has no nodes", "no live worker
	// in pool p1", "all live workers of pool p1 are draining", "all live
	// workers of pool default are at capacity".
	Reason string
}

// Plan is what Schedule decided.
type Plan struct {
	// Moves in the order they were made; applying them in order to the
	// current placement gives the new placement (see Placement.Apply).
	Moves []Move
	// Waiting units, sorted by unit (task, capture, copies, applies, group).
	Waiting []Waiting
}

// Options tune Schedule.
type Options struct {
	// MaxRebalanceMoves bounds the moves made only for balance in one call
	// (0 means 2, negative disables rebalancing), so a joining node fills up
	// over a few rounds rather than in one burst of slot reconnects and
	// consumer restarts. Moves that are needed (dead, draining or removed
	// nodes, new units) are never bounded.
	MaxRebalanceMoves int
}

// rebalanceBudget resolves MaxRebalanceMoves' default.
func (o Options) rebalanceBudget() int {
	switch {
	case o.MaxRebalanceMoves == 0:
		return defaultMaxRebalanceMoves
	case o.MaxRebalanceMoves < 0:
		return 0
	}
	return o.MaxRebalanceMoves
}

// Schedule decides where the wanted units run. It is pure and deterministic:
// the same nodes, units and placement give the same plan whatever the order
// of the slices. (IDs should be distinct; of duplicates the first wins.)
//
// In order:
//  1. An assignment of a unit that is not wanted is dropped ("unit removed").
//  2. A unit stays on its node if the node is known, live, not draining and
//     of the unit's pool: moving a unit costs a restart, so only needed or
//     bounded moves happen.
//  3. Every other unit, in unit order, goes to the eligible node of its pool
//     (live, not draining, with room) that it fills least, spreading a
//     task's units on ties; with none it is unassigned and waits.
//  4. Each pool is rebalanced, at most Options.MaxRebalanceMoves moves in
//     all, each strictly narrowing the fill gap between the two nodes it
//     touches, so calling Schedule again on the result converges and then
//     makes no moves.
//
// "Fill" compares nodes of different capacities. A node of capacity C holding
// load L has fill L/C; an unlimited node counts as big as the biggest node of
// its pool, so in a pool without capacities fill is plain load. Placement
// picks the node whose Σ L²/C grows least (the lowest (2L+u)/C for a unit of
// load u: for equal capacities, the least loaded node) and a rebalance move
// must lower Σ L²/C. That one measure is why rebalancing never undoes a
// placement and never oscillates: every move strictly lowers it.
func Schedule(nodes []Node, units []Unit, current Placement, opts Options) Plan {
	r := newRun(nodes, units)
	r.dropUnwanted(current)
	r.place(current)
	r.rebalance(opts.rebalanceBudget())
	return r.plan
}

// Apply returns a copy of p with the plan's moves applied in order. p is not
// modified, so a caller keeps the committed placement until the plan is
// committed too.
func (p Placement) Apply(plan Plan) Placement {
	out := make(Placement, len(p)+len(plan.Moves))
	for u, n := range p {
		out[u] = n
	}
	for _, m := range plan.Moves {
		if m.To == "" {
			delete(out, m.Unit)
		} else {
			out[m.Unit] = m.To
		}
	}
	return out
}

// Loads returns the total load of the wanted units placed on each node, as
// Schedule counts it. Every node in nodes has an entry, 0 when idle, and so
// does a node that p names but nodes lacks, so stale assignments stay
// visible. Units of p that are not in units are not counted: they are no
// longer wanted.
func Loads(nodes []Node, units []Unit, p Placement) map[string]int {
	out := make(map[string]int, len(nodes))
	for _, n := range nodes {
		out[n.ID] += 0
	}
	seen := make(map[UnitID]bool, len(units))
	for _, u := range units {
		if seen[u.ID] {
			continue
		}
		seen[u.ID] = true
		if n := p[u.ID]; n != "" {
			out[n] += loadOf(u)
		}
	}
	return out
}

// loadOf is a unit's Load with its default applied.
func loadOf(u Unit) int {
	if u.Load <= 0 {
		return 1
	}
	return u.Load
}

// poolOf resolves the empty pool name.
func poolOf(pool string) string {
	if pool == "" {
		return DefaultPool
	}
	return pool
}
