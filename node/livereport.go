package node

import (
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
)

// LiveReport is the heartbeat's report of the live figures of the tasks
// whose units run here (coordinator/live.go merges them on the leader).
func (w *Worker) LiveReport() []coordinator.TaskLive {
	w.mu.Lock()
	lives := make(map[string]*live, len(w.lives))
	for name, l := range w.lives {
		lives[name] = l
	}
	w.mu.Unlock()
	now := time.Now()
	out := make([]coordinator.TaskLive, 0, len(lives))
	for name, l := range lives {
		if !w.Running(name) {
			continue
		}
		tl := taskLive(name, l.snapshot(now))
		tl.Running = true
		tl.Tables = l.tables(now)
		out = append(out, tl)
	}
	return out
}

// taskLive is a node's Live in the heartbeat's form.
func taskLive(name string, s coordinator.Live) coordinator.TaskLive {
	return coordinator.TaskLive{Task: name, LatencyMS: s.LatencyMS, RowsApplied: s.RowsApplied,
		RowsPerSecond: s.ThroughputRPS, BytesPerSecond: s.ThroughputBPS,
		FullRowsPerSecond: s.FullRowsPerSecond, FullBytesPerSecond: s.FullBytesPerSecond,
		ConfirmedLSN: s.ConfirmedLSN, PeerTxDropped: s.PeerTxDropped}
}

// tables is the per-table figures of the task's apply groups here: what
// their earlier runs here applied plus their current runs', and the lag
// of each table's group.
func (l *live) tables(now time.Time) []coordinator.TableLive {
	l.mu.Lock()
	defer l.mu.Unlock()
	byName := map[string]*coordinator.TableLive{}
	add := func(c apply.TableCount, lag *int64) {
		t := byName[c.Table]
		if t == nil {
			t = &coordinator.TableLive{Table: c.Table}
			byName[c.Table] = t
		}
		t.Insert += c.Insert
		t.Update += c.Update
		t.Delete += c.Delete
		t.Truncate += c.Truncate
		if t.Last.Less(c.Last) {
			t.Last = c.Last
		}
		if lag != nil {
			t.LagMS = lag
		}
	}
	for _, c := range l.retired {
		add(c, nil)
	}
	for _, w := range l.workers {
		var lag *int64
		if us, ok := groupLatencyUS(w, now); ok {
			ms := max(us/1000, 0)
			lag = &ms
		}
		for _, c := range w.Tables() {
			add(c, lag)
		}
	}
	out := make([]coordinator.TableLive, 0, len(byName))
	for _, t := range byName {
		out = append(out, *t)
	}
	return out
}

// retire keeps the counts of an apply group's run that ends (l.mu held).
func (l *live) retire(s *apply.WorkerStats) {
	if l.retired == nil {
		l.retired = map[string]apply.TableCount{}
	}
	for _, c := range s.Tables() {
		r := l.retired[c.Table]
		r.Table = c.Table
		r.Insert += c.Insert
		r.Update += c.Update
		r.Delete += c.Delete
		r.Truncate += c.Truncate
		if r.Last.Less(c.Last) {
			r.Last = c.Last
		}
		l.retired[c.Table] = r
	}
}
