package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sluicedb/sluice/coordinator/scheduler"
	"github.com/sluicedb/sluice/proto"
)

// Scheduling on the leader: nodes heartbeat to the leader (in memory, not
// in the log), the leader records liveness changes in the log, derives the
// units every task needs, and commits the scheduler's plan. One goroutine
// does all of it, so plans are committed in order (nomad's plan-apply).

// SchedulerConfig tunes the leader's loop.
type SchedulerConfig struct {
	// FailoverTimeout: a node not heard from for this long is down and its
	// units move. Default 5 s: placing and starting a unit elsewhere takes
	// 0.5 to 5 s more in the soak (a JetStream stream or Raft election
	// after the kill), so detection plus takeover stays within 10 s.
	FailoverTimeout time.Duration
	// Interval between scheduling rounds; default 500 ms.
	Interval time.Duration
	// Groups is the number of apply groups of every task.
	Groups int
	// Logger; default none.
	Logger *slog.Logger
}

// DefaultFailoverTimeout is SchedulerConfig.FailoverTimeout's default.
const DefaultFailoverTimeout = 5 * time.Second

func (c *SchedulerConfig) setDefaults() {
	if c.FailoverTimeout <= 0 {
		c.FailoverTimeout = DefaultFailoverTimeout
	}
	if c.Interval <= 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.Groups <= 0 {
		c.Groups = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// UnitHealth is what a worker says about a unit it runs.
type UnitHealth struct {
	Unit    string    `json:"unit"`
	Epoch   uint64    `json:"epoch"`
	Running bool      `json:"running"`
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitempty"`
	// LatencyMS is an apply group's latency (nil: unknown), for the
	// leader's latency alerts.
	LatencyMS *int64 `json:"latency_ms,omitempty"`
}

// Heartbeat is a worker's periodic report to the leader.
type Heartbeat struct {
	Node  string       `json:"node"`
	Units []UnitHealth `json:"units,omitempty"`
	// Keys are the ids of the secret keys the node holds: the leader
	// seals with a key only once a majority of the voters hold it, so
	// losing one machine cannot lose the key to what it sealed.
	Keys []string `json:"keys,omitempty"`
	// Live: the node's units' volatile figures, per task (live.go).
	Live []TaskLive `json:"live,omitempty"`
}

// heartbeats is the leader's memory of who it heard from.
type heartbeats struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	units map[string][]UnitHealth
	keys  map[string][]string
	live  map[string][]TaskLive
	// gen counts the heartbeats; merged is the last merge of live.
	gen    uint64
	merged mergedLive
	// since: leadership start; every node counts as seen then, so a new
	// leader does not declare the whole cluster down on its first tick.
	since time.Time
}

// Heartbeat records a node's heartbeat. Only the leader keeps them; on a
// follower it returns ErrNotLeader so the caller sends it to the leader.
func (c *Coordinator) Heartbeat(hb Heartbeat) error {
	if !c.IsLeader() {
		return errNotLeaderNotApplied
	}
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	c.beats.seen[hb.Node] = time.Now()
	c.beats.units[hb.Node] = hb.Units
	if c.beats.keys == nil {
		c.beats.keys = map[string][]string{}
	}
	c.beats.keys[hb.Node] = hb.Keys
	if c.beats.live == nil {
		c.beats.live = map[string][]TaskLive{}
	}
	c.beats.live[hb.Node] = hb.Live
	c.beats.gen++
	return nil
}

// KeyHeldByMajority reports whether more than half of the Raft voters
// hold secret key id, by their heartbeats (this node by self, its own
// keyring's answer).
func (c *Coordinator) KeyHeldByMajority(id string, self bool) bool {
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	voters, holders := 0, 0
	for _, m := range c.Members() {
		if !m.Voter {
			continue
		}
		voters++
		if m.ID == c.NodeID() {
			if self {
				holders++
			}
			continue
		}
		if slices.Contains(c.beats.keys[m.ID], id) {
			holders++
		}
	}
	return holders*2 > voters
}

// UnitHealth returns what the nodes last reported about their units (on
// the leader; empty elsewhere).
func (c *Coordinator) UnitHealth() map[string][]UnitHealth {
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	return maps.Clone(c.beats.units)
}

// LastSeen returns when the leader last heard from each node.
func (c *Coordinator) LastSeen() map[string]time.Time {
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	return maps.Clone(c.beats.seen)
}

// RunScheduler schedules while this node is the leader, until ctx ends.
func (c *Coordinator) RunScheduler(ctx context.Context, cfg SchedulerConfig) {
	cfg.setDefaults()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	wasLeader := false
	for {
		leader := c.IsLeader()
		if leader && !wasLeader {
			c.beats.mu.Lock()
			c.beats.since = time.Now()
			c.beats.seen = map[string]time.Time{}
			c.beats.units = map[string][]UnitHealth{}
			c.beats.live = map[string][]TaskLive{}
			c.beats.gen++
			c.beats.mu.Unlock()
			cfg.Logger.Info("leading: scheduling units", "node", c.cfg.NodeID)
		}
		if leader != wasLeader {
			c.resetHistory()
		}
		wasLeader = leader
		if leader {
			c.sampleHistory(ctx, time.Now())
			if err := c.scheduleOnce(ctx, cfg); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotLeader) {
				cfg.Logger.Warn("scheduling round failed", "err", err)
			}
		}
		changed := c.Changed()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
			// React to new tasks and phase changes at once, but not more
			// than once per interval's tenth (a busy log would spin).
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.Interval / 10):
			}
		}
	}
}

// scheduleOnce records liveness changes, then commits a plan if it moves
// anything or changes why units wait.
func (c *Coordinator) scheduleOnce(ctx context.Context, cfg SchedulerConfig) error {
	now := time.Now()
	if verdicts := c.liveness(now, cfg.FailoverTimeout); len(verdicts) > 0 {
		for id, live := range verdicts {
			cfg.Logger.Warn("node liveness changed", "node", id, "live", live)
		}
		if err := c.Apply(ctx, SetNodesLive{Live: verdicts, At: now}); err != nil {
			return err
		}
	}
	nodes, units, current := c.schedulerInput(cfg.Groups)
	plan := scheduler.Schedule(nodes, units, current, scheduler.Options{})
	waiting := waitingByTask(plan.Waiting)
	c.store.mu.RLock()
	sameWaiting := maps.Equal(waiting, c.store.data.Waiting) || (len(waiting) == 0 && len(c.store.data.Waiting) == 0)
	c.store.mu.RUnlock()
	if len(plan.Moves) == 0 && sameWaiting {
		return nil
	}
	cmd := ApplyPlan{Waiting: waiting, At: now}
	for _, m := range plan.Moves {
		cmd.Moves = append(cmd.Moves, PlanMove{Unit: m.Unit.String(), From: m.From, To: m.To, Reason: m.Reason})
		cfg.Logger.Info("placing unit", "unit", m.Unit.String(), "from", m.From, "to", m.To, "reason", m.Reason)
	}
	return c.Apply(ctx, cmd)
}

// liveness compares heartbeats with the recorded verdicts.
func (c *Coordinator) liveness(now time.Time, timeout time.Duration) map[string]bool {
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	out := map[string]bool{}
	for _, n := range c.store.Nodes() {
		last, ok := c.beats.seen[n.ID]
		if !ok || last.Before(c.beats.since) {
			last = c.beats.since
		}
		live := now.Sub(last) < timeout
		if live != n.Live {
			out[n.ID] = live
		}
	}
	return out
}

// schedulerInput turns the state into the scheduler's view: worker nodes,
// the units every runnable task needs, and the current placement.
func (c *Coordinator) schedulerInput(groups int) ([]scheduler.Node, []scheduler.Unit, scheduler.Placement) {
	var nodes []scheduler.Node
	for _, n := range c.store.Nodes() {
		if !n.HasRole(RoleWorker) {
			continue
		}
		nodes = append(nodes, scheduler.Node{ID: n.ID, Pool: n.Pool, Capacity: n.Capacity, Live: n.Live, Draining: n.Draining})
	}
	var units []scheduler.Unit
	for _, t := range c.store.Tasks() {
		if ReverseWaits(&t, c.store.Task) {
			continue // the forward copy is not in yet
		}
		units = append(units, TaskUnits(&t, groups)...)
	}
	current := scheduler.Placement{}
	for _, a := range c.store.Assignments() {
		current[a.UnitID()] = a.Node
	}
	return nodes, units, current
}

// TaskUnits are the units a task needs now: none unless it should run; its
// capture (which also drives the schema and full-sync phases) while it
// runs; the copy units of its full-sync plan that have chunks left; and
// one apply unit per table group once it is incremental (a table's
// changes apply only after its full sync, DESIGN invariant 4).
func TaskUnits(t *Task, groups int) []scheduler.Unit {
	if !Runnable(t) {
		return nil
	}
	pool := t.Spec.Cluster
	if pool == "" {
		pool = DefaultPool
	}
	units := []scheduler.Unit{{ID: scheduler.UnitID{Task: t.Spec.Name, Kind: scheduler.KindCapture}, Pool: pool}}
	if p := t.FullSync; p != nil && p.Ready {
		for _, c := range p.UnitsWithWork() {
			units = append(units, scheduler.Unit{ID: scheduler.UnitID{Task: t.Spec.Name, Kind: scheduler.KindCopy, Group: c}, Pool: pool})
		}
	}
	if t.Phase == proto.PhaseIncremental && t.Spec.Sync.IncrementalEnabled() {
		for g := 0; g < groups; g++ {
			units = append(units, scheduler.Unit{ID: scheduler.UnitID{Task: t.Spec.Name, Kind: scheduler.KindApply, Group: g}, Pool: pool})
		}
	}
	return units
}

// Runnable: the task has work to do (not deleted, paused, failed or
// finished).
func Runnable(t *Task) bool {
	if t.Deleting {
		return false
	}
	switch t.State {
	case proto.StateFailed, proto.StateReleased, proto.StatePaused:
		return false
	}
	return true
}

// waitingByTask joins the reasons of a task's waiting units.
func waitingByTask(ws []scheduler.Waiting) map[string]string {
	if len(ws) == 0 {
		return nil
	}
	reasons := map[string][]string{}
	for _, w := range ws {
		r := reasons[w.Unit.Task]
		if len(r) == 0 || r[len(r)-1] != w.Reason {
			reasons[w.Unit.Task] = append(r, w.Reason)
		}
	}
	out := make(map[string]string, len(reasons))
	for task, rs := range reasons {
		sort.Strings(rs)
		s := rs[0]
		for _, r := range rs[1:] {
			if r != s {
				s += "; " + r
			}
		}
		out[task] = s
	}
	return out
}
