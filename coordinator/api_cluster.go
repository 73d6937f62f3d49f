package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"time"
)

// forwardedHeader marks a request a follower passed to the leader, so a
// leadership change in between cannot bounce it around.
const forwardedHeader = "X-Sluice-Forwarded-By"

// forwardToLeader sends writes (and the reads only the leader can answer:
// leaderReads) to the leader's API when this node is a follower;
// writes wait for a leader when there is none yet (writeViaLeader). Reads
// of tasks are served from local state, at once.
func (a *api) forwardToLeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(forwardedHeader) != "" {
			next.ServeHTTP(w, r) // a follower sent it here: no second hop
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.writeViaLeader(w, r, next)
			return
		}
		target := a.leaderAPI()
		if !leaderReads(r.URL.Path) || a.c.IsLeader() || target == "" {
			next.ServeHTTP(w, r) // the status from local state, without health
			return
		}
		a.proxyTo(w, r, target)
	})
}

// proxyTo passes a request to the leader's API at target. A leader that
// cannot be dialed did nothing: that answer is marked as not applied.
func (a *api) proxyTo(w http.ResponseWriter, r *http.Request, target string) {
	u := &url.URL{Scheme: a.c.nodeScheme(), Host: target}
	proxy := &httputil.ReverseProxy{
		Transport: a.c.nodeHTTP.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set(forwardedHeader, a.c.NodeID())
			if from := peerNode(r); from != "" {
				pr.Out.Header.Set(forwardedForHeader, from)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			msg := fmt.Sprintf("cannot reach the leader %s at %s: %v", a.c.Leader(), target, err)
			if dialFailed(err) {
				a.failNotApplied(w, codeNoLeader, msg)
				return
			}
			a.fail(w, http.StatusServiceUnavailable, msg, nil)
		},
	}
	proxy.ServeHTTP(w, r)
}

// leaderAPI is the leader's API address from the state, "" when unknown.
func (a *api) leaderAPI() string {
	id := a.c.Leader()
	if id == "" {
		return ""
	}
	n, ok := a.c.Node(id)
	if !ok {
		return ""
	}
	return n.API
}

func (a *api) clusterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/cluster", a.clusterStatus)
	mux.HandleFunc("POST /api/v1/cluster/nodes/{id}/drain", a.drainNode)
	mux.HandleFunc("POST /api/v1/cluster/nodes/{id}/undrain", a.undrainNode)
	mux.HandleFunc("DELETE /api/v1/cluster/nodes/{id}", a.removeNode)
}

// internalRoutes are the node-to-node endpoints (requireNode guards them).
func (a *api) internalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+applyPath, a.applyForwarded)
	mux.HandleFunc("POST "+RegisterPath, a.registerNode)
	mux.HandleFunc("POST "+HeartbeatPath, a.heartbeat)
	mux.HandleFunc("GET "+KeyringPath, a.keyring)
	mux.HandleFunc("GET "+LivePath, a.serveLive)
}

// registerNode adds a node to the state and its Raft follower to the
// Raft configuration (a voter when it has the coordinator role).
func (a *api) registerNode(w http.ResponseWriter, r *http.Request) {
	var n Node
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&n); err != nil || n.ID == "" || n.API == "" {
		a.fail(w, http.StatusBadRequest, "a node needs at least an id and an api address", nil)
		return
	}
	if from := peerNode(r); n.ID != from {
		a.fail(w, http.StatusForbidden, fmt.Sprintf("node %s cannot register node %s: a node registers itself, with its own certificate", from, n.ID), nil)
		return
	}
	if n.Raft != "" {
		if err := a.c.Join(r.Context(), n.ID, n.Raft, n.HasRole(RoleCoordinator)); err != nil {
			a.applyFailed(w, fmt.Errorf("add %s to Raft: %w", n.ID, err))
			return
		}
	}
	if err := a.c.Apply(r.Context(), RegisterNode{Node: n, At: a.now()}); err != nil {
		a.applyFailed(w, err)
		return
	}
	a.reply(w, http.StatusOK, map[string]string{"registered": n.ID})
}

// maxHeartbeatBytes bounds a heartbeat: it carries a line of figures per
// table of the node's apply groups (thousands of tables fit).
const maxHeartbeatBytes = 64 << 20

func (a *api) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb Heartbeat
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxHeartbeatBytes)).Decode(&hb); err != nil || hb.Node == "" {
		a.fail(w, http.StatusBadRequest, "a heartbeat needs the node's id", nil)
		return
	}
	if from := peerNode(r); hb.Node != from {
		a.fail(w, http.StatusForbidden, fmt.Sprintf("node %s cannot heartbeat for node %s", from, hb.Node), nil)
		return
	}
	if _, ok := a.c.Node(hb.Node); !ok {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("node %s is not registered", hb.Node), nil)
		return
	}
	if err := a.c.Heartbeat(hb); err != nil {
		a.applyFailed(w, err)
		return
	}
	// The leader's index tells the node how far its own state must have
	// caught up before it trusts its assignments (after a partition it
	// may still hold old ones).
	a.reply(w, http.StatusOK, HeartbeatReply{Index: a.c.Index()})
}

func (a *api) drainNode(w http.ResponseWriter, r *http.Request) {
	a.setDraining(w, r, r.URL.Query().Get("undo") != "true")
}

// undrainNode lets a drained node take units again: the same as
// drain?undo=true, under its own name for the console and the CLI.
func (a *api) undrainNode(w http.ResponseWriter, r *http.Request) {
	a.setDraining(w, r, false)
}

func (a *api) setDraining(w http.ResponseWriter, r *http.Request, drain bool) {
	id := r.PathValue("id")
	undo := !drain
	if err := a.c.Apply(r.Context(), DrainNode{ID: id, Undo: undo}); err != nil {
		a.nodeFailed(w, err)
		return
	}
	a.reply(w, http.StatusOK, map[string]any{"node": id, "draining": !undo})
}

// removeNode forgets a node and takes it out of Raft. Removing a live
// node is refused unless it was drained first: its units would run on
// while the scheduler moves them.
func (a *api) removeNode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, ok := a.c.Node(id)
	if !ok {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("node %s not found", id), nil)
		return
	}
	if n.Live && !n.Draining && r.URL.Query().Get("force") != "true" {
		a.fail(w, http.StatusConflict, fmt.Sprintf("node %s is live and not drained: drain it first (sluice node drain %s), or stop it", id, id), nil)
		return
	}
	if id == a.c.NodeID() {
		a.fail(w, http.StatusConflict, fmt.Sprintf("node %s is the leader: stop it or let another node lead, then remove it from there", id), nil)
		return
	}
	if msg := a.c.quorumAfterRemoving(id); msg != "" {
		a.fail(w, http.StatusConflict, msg, nil)
		return
	}
	if err := a.c.Leave(r.Context(), id); err != nil {
		a.applyFailed(w, fmt.Errorf("remove %s from Raft: %w", id, err))
		return
	}
	if err := a.c.Apply(r.Context(), RemoveNode{ID: id}); err != nil {
		a.nodeFailed(w, err)
		return
	}
	a.reply(w, http.StatusOK, map[string]string{"removed": id})
}

func (a *api) nodeFailed(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNodeNotFound) {
		a.fail(w, http.StatusNotFound, err.Error(), nil)
		return
	}
	a.applyFailed(w, err)
}

// HeartbeatReply is the leader's answer to a heartbeat.
type HeartbeatReply struct {
	Index uint64 `json:"index"`
}

// ClusterStatus is what `sluice cluster status` shows.
type ClusterStatus struct {
	// Leader is the Raft leader's id ("" when none is known); ServedBy
	// answered, at Raft index Index.
	Leader   string `json:"leader"`
	ServedBy string `json:"served_by"`
	Index    uint64 `json:"index"`
	// HealthKnown: served by the leader, which alone hears heartbeats.
	HealthKnown bool           `json:"health_known"`
	Nodes       []NodeStatus   `json:"nodes"`
	Pools       []PoolStatus   `json:"pools"`
	Waiting     []TaskWaiting  `json:"waiting,omitempty"`
	Unhealthy   []string       `json:"unhealthy,omitempty"`
	Members     []RaftMember   `json:"raft_members,omitempty"`
	Units       map[string]int `json:"units_by_kind,omitempty"`
}

// NodeStatus is one node in ClusterStatus.
type NodeStatus struct {
	Node
	Leader   bool         `json:"leader"`
	Voter    bool         `json:"voter"`
	LastSeen *time.Time   `json:"last_seen,omitempty"`
	Units    []UnitStatus `json:"units"`
}

// UnitStatus is one unit placed on a node.
type UnitStatus struct {
	Unit    string `json:"unit"`
	Epoch   uint64 `json:"epoch"`
	Running *bool  `json:"running,omitempty"` // nil: not reported (yet)
	Error   string `json:"error,omitempty"`
}

// PoolStatus counts a pool's nodes and units.
type PoolStatus struct {
	Name      string `json:"name"`
	Nodes     int    `json:"nodes"`
	LiveNodes int    `json:"live_nodes"`
	Units     int    `json:"units"`
}

// TaskWaiting says why a task's units are not placed.
type TaskWaiting struct {
	Task   string `json:"task"`
	Reason string `json:"reason"`
}

func (a *api) clusterStatus(w http.ResponseWriter, _ *http.Request) {
	a.reply(w, http.StatusOK, a.c.Status())
}

// Status assembles the cluster's status from local state (plus the
// heartbeats, on the leader).
func (c *Coordinator) Status() ClusterStatus {
	leader := c.Leader()
	st := ClusterStatus{Leader: leader, ServedBy: c.NodeID(), Index: c.Index(), HealthKnown: c.IsLeader(), Members: c.Members(), Units: map[string]int{}}
	voters := map[string]bool{}
	for _, m := range st.Members {
		voters[m.ID] = m.Voter
	}
	health := map[string]UnitHealth{}
	for _, hs := range c.UnitHealth() {
		for _, h := range hs {
			health[h.Unit] = h
		}
	}
	seen := c.LastSeen()
	byNode := map[string][]UnitStatus{}
	for _, as := range c.Assignments() {
		us := UnitStatus{Unit: as.Unit, Epoch: as.Epoch}
		if h, ok := health[as.Unit]; ok && st.HealthKnown && h.Epoch == as.Epoch {
			running := h.Running
			us.Running, us.Error = &running, h.Error
		}
		byNode[as.Node] = append(byNode[as.Node], us)
		st.Units[string(as.UnitID().Kind)]++
	}
	pools := map[string]*PoolStatus{}
	for _, n := range c.Nodes() {
		ns := NodeStatus{Node: n, Leader: n.ID == leader, Voter: voters[n.ID], Units: byNode[n.ID]}
		if ns.Units == nil {
			ns.Units = []UnitStatus{}
		}
		if t, ok := seen[n.ID]; ok {
			ns.LastSeen = &t
		}
		st.Nodes = append(st.Nodes, ns)
		p := pools[n.Pool]
		if p == nil {
			p = &PoolStatus{Name: n.Pool}
			pools[n.Pool] = p
		}
		p.Nodes++
		if n.Live {
			p.LiveNodes++
		}
		p.Units += len(ns.Units)
		if !n.Live {
			st.Unhealthy = append(st.Unhealthy, fmt.Sprintf("node %s is down since %s", n.ID, n.Since.Format(time.RFC3339)))
		}
		for _, u := range ns.Units {
			if u.Running != nil && !*u.Running {
				msg := fmt.Sprintf("unit %s on %s is not running", u.Unit, n.ID)
				if u.Error != "" {
					msg += ": " + u.Error
				}
				st.Unhealthy = append(st.Unhealthy, msg)
			}
		}
	}
	for _, p := range pools {
		st.Pools = append(st.Pools, *p)
	}
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].Name < st.Pools[j].Name })
	c.store.mu.RLock()
	for task, reason := range c.store.data.Waiting {
		st.Waiting = append(st.Waiting, TaskWaiting{Task: task, Reason: reason})
	}
	c.store.mu.RUnlock()
	sort.Slice(st.Waiting, func(i, j int) bool { return st.Waiting[i].Task < st.Waiting[j].Task })
	for _, wt := range st.Waiting {
		st.Unhealthy = append(st.Unhealthy, fmt.Sprintf("task %s waits: %s", wt.Task, wt.Reason))
	}
	if leader == "" {
		st.Unhealthy = append(st.Unhealthy, "no Raft leader")
	}
	return st
}

// quorumAfterRemoving explains why removing a voter would leave the
// remaining voters without a live majority ("" when it would not): Raft
// would then lose its leader and the cluster would stop.
func (c *Coordinator) quorumAfterRemoving(id string) string {
	var voters, live int
	var down []string
	isVoter := false
	for _, m := range c.Members() {
		if !m.Voter {
			continue
		}
		if m.ID == id {
			isVoter = true
			continue
		}
		voters++
		if n, ok := c.Node(m.ID); ok && n.Live {
			live++
		} else {
			down = append(down, m.ID)
		}
	}
	if !isVoter || live > voters/2 {
		return ""
	}
	return fmt.Sprintf("removing %s would leave %d of %d remaining voters up, no majority: Raft would stop; bring %v back or remove them first", id, live, voters, down)
}
