package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestRandomClusters drives random clusters through random events (nodes
// joining, dying, coming back, draining, leaving, changing pool; tasks
// added, resized, removed), checks every plan with checkPlan and that
// shuffled inputs give the same plan, then schedules until nothing moves and
// checks the result is stable and balanced.
func TestRandomClusters(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			c := newRandomCluster(seed)
			for step := range 40 {
				c.event()
				c.schedule(t, fmt.Sprintf("step %d", step), c.options())
			}
			c.converge(t)
		})
	}
}

// pools includes both spellings of the default pool, to exercise "" = default.
var pools = []string{"", "default", "p1", "p2"}

type randomCluster struct {
	rng       *rand.Rand
	nodes     []Node
	units     []Unit
	placement Placement
	nextNode  int
	nextTask  int
}

func newRandomCluster(seed uint64) *randomCluster {
	c := &randomCluster{rng: rand.New(rand.NewPCG(seed, 0x5c4ed)), placement: Placement{}}
	for range c.rng.IntN(6) {
		c.addNode()
	}
	for range c.rng.IntN(5) {
		c.addTask()
	}
	return c
}

func (c *randomCluster) pool() string { return pools[c.rng.IntN(len(pools))] }

func (c *randomCluster) addNode() {
	c.nextNode++
	n := Node{ID: fmt.Sprintf("n%d", c.nextNode), Pool: c.pool(), Live: c.rng.IntN(10) > 0}
	if c.rng.IntN(2) == 0 {
		n.Capacity = 1 + c.rng.IntN(10)
	}
	n.Draining = c.rng.IntN(10) == 0
	c.nodes = append(c.nodes, n)
}

func (c *randomCluster) addTask() {
	c.nextTask++
	// Loads from -1 to 3: zero and below mean 1.
	c.units = append(c.units, taskUnits(fmt.Sprintf("t%d", c.nextTask), c.rng.IntN(5), c.rng.IntN(3), c.pool(), c.rng.IntN(5)-1)...)
}

// event applies one random change to the cluster.
func (c *randomCluster) event() {
	var n *Node
	if len(c.nodes) > 0 {
		n = &c.nodes[c.rng.IntN(len(c.nodes))]
	}
	switch k := c.rng.IntN(10); {
	case k == 0 || n == nil:
		c.addNode()
	case k == 1:
		n.Live = false
	case k == 2:
		n.Live = true
	case k == 3:
		n.Draining = !n.Draining
	case k == 4:
		id := n.ID
		c.nodes = slices.DeleteFunc(c.nodes, func(m Node) bool { return m.ID == id })
	case k == 5:
		n.Pool = c.pool()
	case k == 6 || k == 7:
		c.addTask()
	case k == 8 && len(c.units) > 0:
		task := c.units[c.rng.IntN(len(c.units))].ID.Task
		c.units = slices.DeleteFunc(c.units, func(u Unit) bool { return u.ID.Task == task })
	case k == 9 && len(c.units) > 0:
		u := c.units[c.rng.IntN(len(c.units))]
		c.units = slices.DeleteFunc(c.units, func(v Unit) bool { return v.ID.Task == u.ID.Task })
		c.units = append(c.units, taskUnits(u.ID.Task, c.rng.IntN(5), c.rng.IntN(3), u.Pool, u.Load)...)
	}
}

// options picks a random rebalance bound, disabled rebalancing included.
func (c *randomCluster) options() Options {
	return Options{MaxRebalanceMoves: []int{0, 1, 3, -1}[c.rng.IntN(4)]}
}

// schedule runs Schedule, checks the plan, and commits it.
func (c *randomCluster) schedule(t *testing.T, what string, opts Options) Plan {
	t.Helper()
	plan := Schedule(c.nodes, c.units, c.placement, opts)
	nodes, units := slices.Clone(c.nodes), slices.Clone(c.units)
	c.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	c.rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
	if again := Schedule(nodes, units, clonePlacement(c.placement), opts); !reflect.DeepEqual(plan, again) {
		t.Fatalf("%s: shuffled inputs changed the plan:\n%+v\n%+v", what, plan, again)
	}
	if err := checkPlan(c.nodes, c.units, c.placement, plan, opts.rebalanceBudget()); err != nil {
		t.Fatalf("%s: %v\nnodes %+v\nunits %+v\nbefore %v\nplan %+v", what, err, c.nodes, c.units, c.placement, plan)
	}
	c.placement = c.placement.Apply(plan)
	return plan
}

// converge schedules until a call makes no move, which must come within a
// bound, then checks that another call changes nothing and that the result
// is balanced. The rebalance bound is fixed (and not disabled) for the whole
// convergence: "no moves" only means balanced if rebalancing was allowed.
func (c *randomCluster) converge(t *testing.T) {
	t.Helper()
	opts := Options{MaxRebalanceMoves: []int{0, 1, 3}[c.rng.IntN(3)]}
	for round := range 500 {
		plan := c.schedule(t, fmt.Sprintf("round %d", round), opts)
		if len(plan.Moves) > 0 {
			continue
		}
		again := c.schedule(t, "after convergence", opts)
		if len(again.Moves) > 0 || !reflect.DeepEqual(plan.Waiting, again.Waiting) {
			t.Fatalf("not idempotent after convergence: %+v then %+v", plan, again)
		}
		c.checkBalanced(t, plan)
		return
	}
	t.Fatalf("no convergence in 500 rounds: nodes %+v units %+v", c.nodes, c.units)
}

// checkBalanced checks a converged placement with rules of its own: no
// waiting unit fits on an eligible node of its pool, and in a pool without
// capacities (among its eligible nodes) no node exceeds another by more than the load of each unit it
// could give (else moving that unit would narrow the gap).
func (c *randomCluster) checkBalanced(t *testing.T, plan Plan) {
	t.Helper()
	loads := Loads(c.nodes, c.units, c.placement)
	eligible := map[string][]Node{}
	unlimited := map[string]bool{} // every eligible node of the pool is unlimited
	for _, n := range c.nodes {
		if !n.Live || n.Draining {
			continue
		}
		p := poolOf(n.Pool)
		if _, seen := unlimited[p]; !seen {
			unlimited[p] = true
		}
		unlimited[p] = unlimited[p] && n.Capacity <= 0
		eligible[p] = append(eligible[p], n)
	}
	units := map[UnitID]Unit{}
	for _, u := range c.units {
		units[u.ID] = u
	}
	for _, w := range plan.Waiting {
		u := units[w.Unit]
		for _, n := range eligible[poolOf(u.Pool)] {
			if n.Capacity <= 0 || loads[n.ID]+loadOf(u) <= n.Capacity {
				t.Fatalf("%s waits (%s) but fits on %s (load %d)", w.Unit, w.Reason, n.ID, loads[n.ID])
			}
		}
	}
	for id, node := range c.placement {
		u := units[id]
		if !unlimited[poolOf(u.Pool)] {
			continue
		}
		for _, n := range eligible[poolOf(u.Pool)] {
			if gap := loads[node] - loads[n.ID]; gap > loadOf(u) {
				t.Fatalf("unbalanced: %s (load %d) on %s (load %d) would narrow the gap to %s (load %d)",
					id, loadOf(u), node, loads[node], n.ID, loads[n.ID])
			}
		}
	}
}
