package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/sluicedb/sluice/coordinator/scheduler"
)

// Node is a cluster member as the replicated state holds it. Liveness is
// decided by the leader from heartbeats (kept in the leader's memory, not
// in the log) and recorded here only when it changes.
type Node struct {
	ID       string   `json:"id"`
	API      string   `json:"api"`  // host:port of its HTTP API
	Raft     string   `json:"raft"` // its Raft address, empty without the coordinator role
	Roles    []string `json:"roles"`
	Pool     string   `json:"pool"`
	Capacity int      `json:"capacity,omitempty"`
	// Live: the leader hears its heartbeats. A node is registered live.
	Live bool `json:"live"`
	// Draining: it takes no new units and its units are moved away.
	Draining bool `json:"draining,omitempty"`
	// Since is when Live last changed (the proposer's clock).
	Since time.Time `json:"since"`
	// RegisterIndex is the Raft index of its latest registration.
	RegisterIndex uint64 `json:"register_index"`
}

// HasRole reports whether the node runs a role (coordinator, broker, worker).
func (n *Node) HasRole(role string) bool { return slices.Contains(n.Roles, role) }

// Roles a node can run.
const (
	RoleCoordinator = "coordinator"
	RoleBroker      = "broker"
	RoleWorker      = "worker"
)

// Assignment places a unit on a node. Epoch is the Raft index of the entry
// that made it: it grows with every move, so a sink can refuse the writes
// of every earlier owner (DESIGN invariant 3).
type Assignment struct {
	Unit  string    `json:"unit"` // scheduler.UnitID.String()
	Node  string    `json:"node"`
	Epoch uint64    `json:"epoch"`
	Since time.Time `json:"since"`
}

// Unit parses the assignment's unit.
func (a *Assignment) UnitID() scheduler.UnitID {
	u, _ := scheduler.ParseUnitID(a.Unit)
	return u
}

// Cluster command types.
const (
	CmdRegisterNode CommandType = 32
	CmdSetNodesLive CommandType = 33
	CmdDrainNode    CommandType = 34
	CmdRemoveNode   CommandType = 35
	CmdApplyPlan    CommandType = 36
)

// RegisterNode adds a node or updates its addresses, roles, pool and
// capacity; it keeps Draining and marks it live.
type RegisterNode struct {
	Node Node      `json:"node"`
	At   time.Time `json:"at"`
}

// SetNodesLive records the leader's liveness verdicts.
type SetNodesLive struct {
	Live map[string]bool `json:"live"`
	At   time.Time       `json:"at"`
}

// DrainNode stops placing units on a node and moves its units away
// (Undo: false sets it back to taking units).
type DrainNode struct {
	ID   string `json:"id"`
	Undo bool   `json:"undo,omitempty"`
}

// RemoveNode forgets a node. Its units are moved by the next plan. A
// coordinator's Raft membership is changed by the leader separately.
type RemoveNode struct {
	ID string `json:"id"`
}

// ApplyPlan records a scheduler plan: the moves (To "" drops the
// assignment) and, per task, why some of its units wait (replacing the
// previous reasons).
type ApplyPlan struct {
	Moves   []PlanMove        `json:"moves,omitempty"`
	Waiting map[string]string `json:"waiting,omitempty"`
	At      time.Time         `json:"at"`
}

// PlanMove is one move of a plan.
type PlanMove struct {
	Unit string `json:"unit"`
	// From is where the plan saw the unit; a move whose From no longer
	// matches the state is dropped (the plan was computed on old state).
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (RegisterNode) Type() CommandType { return CmdRegisterNode }
func (SetNodesLive) Type() CommandType { return CmdSetNodesLive }
func (DrainNode) Type() CommandType    { return CmdDrainNode }
func (RemoveNode) Type() CommandType   { return CmdRemoveNode }
func (ApplyPlan) Type() CommandType    { return CmdApplyPlan }

// ErrNodeNotFound: no node of that id.
var ErrNodeNotFound = errors.New("node not found")

func init() {
	register(applyRegisterNode)
	register(applySetNodesLive)
	register(applyDrainNode)
	register(applyRemoveNode)
	register(applyApplyPlan)
}

func applyRegisterNode(d *data, index uint64, cmd *RegisterNode) error {
	if cmd.Node.ID == "" {
		return errors.New("register node: empty id")
	}
	n := cmd.Node
	n.Roles = slices.Clone(n.Roles)
	if n.Pool == "" {
		n.Pool = DefaultPool
	}
	if old, ok := d.Nodes[n.ID]; ok {
		n.Draining = old.Draining
		n.Since = old.Since
		if !old.Live {
			n.Since = cmd.At
		}
	} else {
		n.Since = cmd.At
	}
	n.Live = true
	n.RegisterIndex = index
	d.Nodes[n.ID] = &n
	return nil
}

func applySetNodesLive(d *data, _ uint64, cmd *SetNodesLive) error {
	for id, live := range cmd.Live {
		if n, ok := d.Nodes[id]; ok && n.Live != live {
			n.Live = live
			n.Since = cmd.At
		}
	}
	return nil
}

func applyDrainNode(d *data, _ uint64, cmd *DrainNode) error {
	n, ok := d.Nodes[cmd.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNodeNotFound, cmd.ID)
	}
	n.Draining = !cmd.Undo
	return nil
}

func applyRemoveNode(d *data, _ uint64, cmd *RemoveNode) error {
	if _, ok := d.Nodes[cmd.ID]; !ok {
		return fmt.Errorf("%w: %s", ErrNodeNotFound, cmd.ID)
	}
	delete(d.Nodes, cmd.ID)
	return nil
}

func applyApplyPlan(d *data, index uint64, cmd *ApplyPlan) error {
	for _, m := range cmd.Moves {
		cur := d.Assignments[m.Unit]
		from := ""
		if cur != nil {
			from = cur.Node
		}
		if from != m.From {
			continue // computed on older state; the next plan redoes it
		}
		if m.To == "" {
			delete(d.Assignments, m.Unit)
			continue
		}
		d.Assignments[m.Unit] = &Assignment{Unit: m.Unit, Node: m.To, Epoch: index, Since: cmd.At}
	}
	d.Waiting = maps.Clone(cmd.Waiting)
	return nil
}

// DefaultPool is the pool of nodes and tasks that name none.
const DefaultPool = "default"

// Nodes returns copies of all nodes, sorted by id.
func (s *Store) Nodes() []Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Node, 0, len(s.data.Nodes))
	for _, n := range s.data.Nodes {
		c := *n
		c.Roles = slices.Clone(n.Roles)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Node returns a copy of one node.
func (s *Store) Node(id string) (Node, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.data.Nodes[id]
	if !ok {
		return Node{}, false
	}
	c := *n
	c.Roles = slices.Clone(n.Roles)
	return c, true
}

// Assignments returns copies of all assignments, sorted by unit.
func (s *Store) Assignments() []Assignment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Assignment, 0, len(s.data.Assignments))
	for _, a := range s.data.Assignments {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	return out
}

// Waiting returns why units of a task wait ("" when none do).
func (s *Store) Waiting(task string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Waiting[task]
}

// Nodes, Node, Assignments and Waiting read the coordinator's local state.
func (c *Coordinator) Nodes() []Node               { return c.store.Nodes() }
func (c *Coordinator) Node(id string) (Node, bool) { return c.store.Node(id) }
func (c *Coordinator) Assignments() []Assignment   { return c.store.Assignments() }
func (c *Coordinator) Waiting(task string) string  { return c.store.Waiting(task) }

// Index is the Raft index of the last entry applied locally.
func (c *Coordinator) Index() uint64 { return c.store.Index() }
