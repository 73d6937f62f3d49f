package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Cluster-wide live figures. A unit's volatile figures (latency,
// throughput, per-table counters) are measured on the node that runs it.
// Each node sends its units' figures, per task, in its heartbeat to the
// leader (no Raft write); the leader keeps the latest from every node in
// memory and merges them per task. A follower asks the leader for the
// merged figures (GET LivePath, node certificates only) and keeps the
// answer for a second, so `task get`, `/tables` and `/metrics` show the
// same figures on every node. When the leader cannot be asked, a node
// shows its own units' figures.

// LivePath is where a follower reads the leader's merged live figures.
const LivePath = internalPrefix + "live"

// liveFresh bounds the age of a node's heartbeat whose figures count: a
// node that stopped beating no longer runs its units.
const liveFresh = 10 * time.Second

// liveCacheFor is how long a follower keeps the leader's figures.
const liveCacheFor = time.Second

// TaskLive is one task's live figures: one node's in a heartbeat, or the
// cluster's once the leader merged them.
type TaskLive struct {
	Task string `json:"task"`
	// LatencyMS: the slowest apply group's (nil: unknown).
	LatencyMS          *int64  `json:"latency_ms,omitempty"`
	RowsPerSecond      float64 `json:"rows_per_second,omitempty"`
	BytesPerSecond     float64 `json:"bytes_per_second,omitempty"`
	FullRowsPerSecond  float64 `json:"full_rows_per_second,omitempty"`
	FullBytesPerSecond float64 `json:"full_bytes_per_second,omitempty"`
	// RowsApplied: since the units here started (the task's total is in
	// the replicated state: Task.RowsApplied).
	RowsApplied   int64  `json:"rows_applied,omitempty"`
	ConfirmedLSN  string `json:"confirmed_lsn,omitempty"`
	PeerTxDropped int64  `json:"peer_tx_dropped,omitempty"`
	// Slot: the leader's last measurement of the task's slot (nil: none).
	Slot   *SlotLive   `json:"slot,omitempty"`
	Tables []TableLive `json:"tables,omitempty"`
	// Running: a unit of the task runs on the node (merged: on some node).
	Running bool `json:"running,omitempty"`
}

// SlotLive is the leader's measurement of a task's replication slot.
type SlotLive struct {
	RetainedWALBytes int64 `json:"retained_wal_bytes"`
	Active           bool  `json:"active"`
}

// TableLive is one table's apply counters, from the apply group that
// applies it (counted since the group started on its node).
type TableLive struct {
	Table    string `json:"table"` // source name, schema.table
	Insert   int64  `json:"insert,omitempty"`
	Update   int64  `json:"update,omitempty"`
	Delete   int64  `json:"delete,omitempty"`
	Truncate int64  `json:"truncate,omitempty"`
	// Last: the last applied change's position (zero before one).
	Last proto.Position `json:"last"`
	// LagMS: the table's apply group's latency (nil: unknown).
	LagMS *int64 `json:"lag_ms,omitempty"`
}

// Live returns the figures as the API's Live.
func (t TaskLive) Live() Live {
	return Live{LatencyMS: t.LatencyMS, RowsApplied: t.RowsApplied, ThroughputRPS: t.RowsPerSecond, ThroughputBPS: t.BytesPerSecond,
		FullRowsPerSecond: t.FullRowsPerSecond, FullBytesPerSecond: t.FullBytesPerSecond, ConfirmedLSN: t.ConfirmedLSN, PeerTxDropped: t.PeerTxDropped}
}

// MergeLive sums the nodes' figures of each task: rates and counters add
// up, the latency is the worst known one, and the slot's and the
// capture's figures come from whichever node has them.
func MergeLive(perNode ...[]TaskLive) map[string]TaskLive {
	out := map[string]TaskLive{}
	tables := map[string]map[string]*TableLive{}
	for _, list := range perNode {
		for _, l := range list {
			m := out[l.Task]
			m.Task = l.Task
			m.Running = m.Running || l.Running
			m.LatencyMS = worstLatency(m.LatencyMS, l.LatencyMS)
			m.RowsPerSecond += l.RowsPerSecond
			m.BytesPerSecond += l.BytesPerSecond
			m.FullRowsPerSecond += l.FullRowsPerSecond
			m.FullBytesPerSecond += l.FullBytesPerSecond
			m.RowsApplied += l.RowsApplied
			m.PeerTxDropped += l.PeerTxDropped
			if l.ConfirmedLSN != "" {
				m.ConfirmedLSN = l.ConfirmedLSN
			}
			if l.Slot != nil {
				m.Slot = l.Slot
			}
			out[l.Task] = m
			if tables[l.Task] == nil {
				tables[l.Task] = map[string]*TableLive{}
			}
			for _, t := range l.Tables {
				mergeTable(tables[l.Task], t)
			}
		}
	}
	for name, byTable := range tables {
		m := out[name]
		m.Tables = make([]TableLive, 0, len(byTable))
		for _, t := range byTable {
			m.Tables = append(m.Tables, *t)
		}
		sort.Slice(m.Tables, func(i, j int) bool { return m.Tables[i].Table < m.Tables[j].Table })
		out[name] = m
	}
	return out
}

// mergeTable adds t's counters to its table's (a table moving between
// nodes may be reported by both for a heartbeat or two).
func mergeTable(into map[string]*TableLive, t TableLive) {
	m := into[t.Table]
	if m == nil {
		c := t
		into[t.Table] = &c
		return
	}
	m.Insert += t.Insert
	m.Update += t.Update
	m.Delete += t.Delete
	m.Truncate += t.Truncate
	if m.Last.Less(t.Last) {
		m.Last = t.Last
	}
	m.LagMS = worstLatency(m.LagMS, t.LagMS)
}

// PositionText is a position as the API shows it: "0/16B3F28:3" (the
// commit LSN, then the change's index in its transaction); "" for none.
func PositionText(p proto.Position) string {
	if p.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s:%d", p.LSN, p.Idx)
}

func worstLatency(a, b *int64) *int64 {
	switch {
	case a == nil:
		return b
	case b == nil || *a >= *b:
		return a
	}
	return b
}

// liveCache is a follower's copy of the leader's merged figures.
type liveCache struct {
	mu   sync.Mutex
	at   time.Time
	data map[string]TaskLive
	ok   bool
}

// ClusterLive returns every task's live figures across the cluster: on
// the leader, merged from the nodes' heartbeats; on a follower, the
// leader's, asked at most once a second. ok is false when they are not
// known (no leader, or it cannot be asked): the caller then falls back to
// this node's own figures.
func (c *Coordinator) ClusterLive(ctx context.Context) (map[string]TaskLive, bool) {
	if c.IsLeader() {
		return c.leaderLive(time.Now()), true
	}
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	if time.Since(c.live.at) < liveCacheFor {
		return c.live.data, c.live.ok
	}
	data, err := c.fetchLeaderLive(ctx)
	c.live.at, c.live.data, c.live.ok = time.Now(), data, err == nil
	return data, err == nil
}

// leaderLive merges the figures of the nodes heard from lately; the
// merge is kept until the next heartbeat (or a second: a silent node's
// figures age out), as a task list asks once per task.
func (c *Coordinator) leaderLive(now time.Time) map[string]TaskLive {
	c.beats.mu.Lock()
	defer c.beats.mu.Unlock()
	if m := &c.beats.merged; m.data != nil && m.gen == c.beats.gen && now.Sub(m.at) < liveCacheFor {
		return m.data
	}
	var lists [][]TaskLive
	for node, l := range c.beats.live {
		if now.Sub(c.beats.seen[node]) <= liveFresh {
			lists = append(lists, l)
		}
	}
	data := MergeLive(lists...)
	c.beats.merged = mergedLive{data: data, gen: c.beats.gen, at: now}
	return data
}

// mergedLive is the leader's last merge of the nodes' figures.
type mergedLive struct {
	data map[string]TaskLive
	gen  uint64 // of the heartbeats it merged
	at   time.Time
}

// fetchLeaderLive asks the leader's internal API for its figures.
func (c *Coordinator) fetchLeaderLive(ctx context.Context) (map[string]TaskLive, error) {
	id := c.Leader()
	n, ok := c.Node(id)
	if id == "" || !ok || n.API == "" {
		return nil, errors.New("no leader known")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.nodeScheme()+"://"+n.API+LivePath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(forwardedHeader, c.NodeID()) // answered there, never passed on
	resp, err := c.nodeHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("leader %s answered %s", id, resp.Status)
	}
	var out map[string]TaskLive
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("leader %s's live figures: %w", id, err)
	}
	return out, nil
}

// serveLive answers a follower's GET LivePath with the merged figures;
// a node that is not the leader (any more) says so.
func (a *api) serveLive(w http.ResponseWriter, _ *http.Request) {
	if !a.c.IsLeader() {
		a.failNotLeader(w)
		return
	}
	a.reply(w, http.StatusOK, a.c.leaderLive(time.Now()))
}
