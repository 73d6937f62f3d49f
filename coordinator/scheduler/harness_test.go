package scheduler

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// harness is an in-memory cluster for the scheduler: the nodes, the wanted
// units and the committed placement, which a leader would keep in the
// replicated state. Every schedule it runs is also checked for determinism
// and for the invariants in checkPlan.
type harness struct {
	nodes     []Node // in the order they joined
	units     []Unit
	placement Placement
}

func newHarness() *harness { return &harness{placement: Placement{}} }

// command is one parsed script line: a name, positional arguments and
// key=value options.
type command struct {
	name string
	args []string
	opts map[string]string
}

func parseCommand(line string) command {
	f := strings.Fields(line)
	c := command{name: f[0], opts: map[string]string{}}
	for _, a := range f[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			c.opts[k] = v
		} else {
			c.args = append(c.args, a)
		}
	}
	return c
}

// check rejects arguments and options the command does not know, so a typo
// in a script fails instead of being ignored.
func (c command) check(nargs int, opts ...string) error {
	if len(c.args) != nargs {
		return fmt.Errorf("%s: want %d argument(s), got %q", c.name, nargs, c.args)
	}
	for k := range c.opts {
		if !slices.Contains(opts, k) {
			return fmt.Errorf("%s: unknown option %q", c.name, k)
		}
	}
	return nil
}

func (c command) intOpt(key string, def int) (int, error) {
	v, ok := c.opts[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %s=%q: %v", c.name, key, v, err)
	}
	return n, nil
}

// run executes one command and returns its output lines.
//
//	node ID [pool=P] [cap=N] [down] [draining]   add a live node, or redefine one
//	kill ID | revive ID | drain ID | undrain ID | remove-node ID
//	task T [groups=N] [copies=N] [pool=P] [load=N]  (re)define T's units: capture + copies + applies
//	remove-task T
//	schedule [max=N]   run Schedule, print the plan, commit it
//	plan [max=N]       run Schedule and print the plan without committing it
//	converge [max=N] [rounds=N]   schedule until a round makes no move
//	placement          print every node with its load and units
func (h *harness) run(c command) ([]string, error) {
	switch c.name {
	case "node":
		return nil, h.node(c)
	case "kill", "revive", "drain", "undrain":
		return nil, h.setState(c)
	case "remove-node":
		return nil, h.removeNode(c)
	case "task":
		return nil, h.task(c)
	case "remove-task":
		if err := c.check(1); err != nil {
			return nil, err
		}
		h.units = slices.DeleteFunc(h.units, func(u Unit) bool { return u.ID.Task == c.args[0] })
		return nil, nil
	case "schedule", "plan":
		return h.schedule(c)
	case "converge":
		return h.converge(c)
	case "placement":
		if err := c.check(0); err != nil {
			return nil, err
		}
		return h.describe(), nil
	}
	return nil, fmt.Errorf("unknown command %q", c.name)
}

func (h *harness) nodeIndex(id string) int {
	return slices.IndexFunc(h.nodes, func(n Node) bool { return n.ID == id })
}

func (h *harness) node(c command) error {
	if len(c.args) == 0 {
		return fmt.Errorf("node: want an ID")
	}
	if err := c.check(len(c.args), "pool", "cap"); err != nil {
		return err
	}
	capacity, err := c.intOpt("cap", 0)
	if err != nil {
		return err
	}
	n := Node{ID: c.args[0], Pool: c.opts["pool"], Capacity: capacity, Live: true}
	for _, flag := range c.args[1:] {
		switch flag {
		case "down":
			n.Live = false
		case "draining":
			n.Draining = true
		default:
			return fmt.Errorf("node: unknown flag %q", flag)
		}
	}
	if i := h.nodeIndex(n.ID); i >= 0 {
		h.nodes[i] = n
	} else {
		h.nodes = append(h.nodes, n)
	}
	return nil
}

func (h *harness) setState(c command) error {
	if err := c.check(1); err != nil {
		return err
	}
	i := h.nodeIndex(c.args[0])
	if i < 0 {
		return fmt.Errorf("%s: no node %q", c.name, c.args[0])
	}
	n := &h.nodes[i]
	switch c.name {
	case "kill":
		n.Live = false
	case "revive":
		n.Live = true
	case "drain":
		n.Draining = true
	case "undrain":
		n.Draining = false
	}
	return nil
}

func (h *harness) removeNode(c command) error {
	if err := c.check(1); err != nil {
		return err
	}
	i := h.nodeIndex(c.args[0])
	if i < 0 {
		return fmt.Errorf("remove-node: no node %q", c.args[0])
	}
	h.nodes = slices.Delete(h.nodes, i, i+1)
	return nil
}

func (h *harness) task(c command) error {
	if err := c.check(1, "groups", "copies", "pool", "load"); err != nil {
		return err
	}
	groups, err := c.intOpt("groups", 1)
	if err != nil {
		return err
	}
	load, err := c.intOpt("load", 1)
	if err != nil {
		return err
	}
	copies, err := c.intOpt("copies", 0)
	if err != nil {
		return err
	}
	name := c.args[0]
	h.units = slices.DeleteFunc(h.units, func(u Unit) bool { return u.ID.Task == name })
	h.units = append(h.units, taskUnits(name, groups, copies, c.opts["pool"], load)...)
	return nil
}

// taskUnits returns the units of a task: its capture, the copy units of a
// full sync in progress, and one apply per table group.
func taskUnits(task string, groups, copies int, pool string, load int) []Unit {
	out := []Unit{{ID: UnitID{Task: task, Kind: KindCapture}, Pool: pool, Load: load}}
	for c := range copies {
		out = append(out, Unit{ID: UnitID{Task: task, Kind: KindCopy, Group: c}, Pool: pool, Load: load})
	}
	for g := range groups {
		out = append(out, Unit{ID: UnitID{Task: task, Kind: KindApply, Group: g}, Pool: pool, Load: load})
	}
	return out
}

func (h *harness) options(c command) (Options, error) {
	moves, err := c.intOpt("max", 0)
	return Options{MaxRebalanceMoves: moves}, err
}

// step runs Schedule once, checks the plan and, if commit, commits it.
func (h *harness) step(opts Options, commit bool) (Plan, error) {
	plan := Schedule(h.nodes, h.units, h.placement, opts)
	again := Schedule(reversed(h.nodes), reversed(h.units), clonePlacement(h.placement), opts)
	if !reflect.DeepEqual(plan, again) {
		return plan, fmt.Errorf("not deterministic:\n%v\n%v", plan, again)
	}
	if err := checkPlan(h.nodes, h.units, h.placement, plan, opts.rebalanceBudget()); err != nil {
		return plan, err
	}
	if commit {
		h.placement = h.placement.Apply(plan)
	}
	return plan, nil
}

func (h *harness) schedule(c command) ([]string, error) {
	if err := c.check(0, "max"); err != nil {
		return nil, err
	}
	opts, err := h.options(c)
	if err != nil {
		return nil, err
	}
	plan, err := h.step(opts, c.name == "schedule")
	return formatPlan(plan), err
}

// converge schedules until a round makes no move and prints each round's
// moves; the waiting units are printed once, from the last round.
func (h *harness) converge(c command) ([]string, error) {
	if err := c.check(0, "max", "rounds"); err != nil {
		return nil, err
	}
	opts, err := h.options(c)
	if err != nil {
		return nil, err
	}
	rounds, err := c.intOpt("rounds", 20)
	if err != nil {
		return nil, err
	}
	var out []string
	for round := 1; round <= rounds; round++ {
		plan, err := h.step(opts, true)
		if err != nil {
			return out, err
		}
		if len(plan.Moves) == 0 {
			out = append(out, fmt.Sprintf("stable after %d round(s) with moves", round-1))
			return append(out, formatWaiting(plan.Waiting)...), nil
		}
		for _, m := range plan.Moves {
			out = append(out, fmt.Sprintf("round %d: %s", round, formatMove(m)))
		}
	}
	return out, fmt.Errorf("converge: still moving after %d rounds", rounds)
}

func formatMove(m Move) string {
	to := m.To
	if to == "" {
		to = "-"
	}
	if m.From == "" {
		return fmt.Sprintf("%s -> %s (%s)", m.Unit, to, m.Reason)
	}
	return fmt.Sprintf("%s %s -> %s (%s)", m.Unit, m.From, to, m.Reason)
}

func formatWaiting(ws []Waiting) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("waiting %s: %s", w.Unit, w.Reason))
	}
	return out
}

func formatPlan(p Plan) []string {
	if len(p.Moves) == 0 && len(p.Waiting) == 0 {
		return []string{"no moves"}
	}
	var out []string
	for _, m := range p.Moves {
		out = append(out, formatMove(m))
	}
	return append(out, formatWaiting(p.Waiting)...)
}

// describe prints every node, sorted by ID, with its pool, load (/capacity),
// state and units; then nodes the placement names but the cluster lacks, and
// wanted units that are not placed.
func (h *harness) describe() []string {
	loads := Loads(h.nodes, h.units, h.placement)
	onNode := map[string][]string{}
	var unplaced []string
	for _, u := range sortedUnits(h.units) {
		if n := h.placement[u.ID]; n != "" {
			onNode[n] = append(onNode[n], u.ID.String())
		} else {
			unplaced = append(unplaced, u.ID.String())
		}
	}
	nodes := slices.Clone(h.nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	var out []string
	for _, n := range nodes {
		line := fmt.Sprintf("%s pool=%s load=%d", n.ID, poolOf(n.Pool), loads[n.ID])
		if n.Capacity > 0 {
			line += fmt.Sprintf("/%d", n.Capacity)
		}
		line += " " + nodeState(n)
		out = append(out, withUnits(line, onNode[n.ID]))
		delete(onNode, n.ID)
	}
	var unknown []string
	for id := range onNode {
		unknown = append(unknown, id)
	}
	slices.Sort(unknown)
	for _, id := range unknown {
		out = append(out, withUnits(id+" (not in cluster)", onNode[id]))
	}
	if len(unplaced) > 0 {
		out = append(out, withUnits("unplaced", unplaced))
	}
	return out
}

func withUnits(line string, units []string) string {
	if len(units) == 0 {
		return line
	}
	return line + ": " + strings.Join(units, " ")
}

func nodeState(n Node) string {
	switch {
	case !n.Live && n.Draining:
		return "down+draining"
	case !n.Live:
		return "down"
	case n.Draining:
		return "draining"
	}
	return "live"
}

func sortedUnits(units []Unit) []Unit {
	out := slices.Clone(units)
	slices.SortStableFunc(out, func(a, b Unit) int { return a.ID.compare(b.ID) })
	return out
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func clonePlacement(p Placement) Placement {
	out := make(Placement, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}
