package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// The leader keeps, in memory, each task's figures of the last hour (one
// point every HistoryInterval) and each table's recent copy rate, from
// the cluster's live figures and the replicated full-sync progress. A new
// leader starts them afresh.

// HistoryInterval is the time between two points of a task's history.
const HistoryInterval = 10 * time.Second

// historyPoints is an hour of points.
const historyPoints = int(time.Hour / HistoryInterval)

type taskHistory struct {
	mu sync.Mutex
	// tasks by name; a task's first point is taken when it is first
	// seen, then one every HistoryInterval.
	tasks map[string]*taskPoints
}

type taskPoints struct {
	last   time.Time
	points []proto.HistoryPoint // a ring: appended, the oldest cut
	// copied: each table's rows copied at the last point, and the rates
	// worked out from the point before.
	copied map[string]int64
	rates  map[string]float64
}

// sampleHistory records a point of each task whose last one is
// HistoryInterval old, or that has none (leader only; the scheduler's
// loop calls it).
func (c *Coordinator) sampleHistory(ctx context.Context, now time.Time) {
	tasks := c.Tasks()
	h := &c.history
	h.mu.Lock()
	var due []Task
	for _, t := range tasks {
		if tp := h.tasks[t.Spec.Name]; tp == nil || now.Sub(tp.last) >= HistoryInterval {
			due = append(due, t)
		}
	}
	gone := len(tasks) != len(h.tasks) // some task was deleted
	h.mu.Unlock()
	if len(due) == 0 && !gone {
		return
	}
	var live map[string]TaskLive
	if len(due) > 0 {
		live, _ = c.ClusterLive(ctx)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := make(map[string]*taskPoints, len(tasks))
	for _, t := range tasks {
		if tp := h.tasks[t.Spec.Name]; tp != nil {
			kept[t.Spec.Name] = tp // deleted tasks' history goes
		}
	}
	for _, t := range due {
		tp := kept[t.Spec.Name]
		if tp == nil {
			tp = &taskPoints{}
			kept[t.Spec.Name] = tp
		}
		tp.add(&t, live[t.Spec.Name], now)
	}
	h.tasks = kept
}

// add records a point of task t.
func (tp *taskPoints) add(t *Task, l TaskLive, now time.Time) {
	p := proto.HistoryPoint{At: now.UTC().Truncate(time.Second), LatencyMS: l.LatencyMS,
		RowsPerSecond: l.RowsPerSecond + l.FullRowsPerSecond, BytesPerSecond: l.BytesPerSecond + l.FullBytesPerSecond}
	tp.points = append(tp.points, p)
	if len(tp.points) > historyPoints {
		tp.points = append([]proto.HistoryPoint(nil), tp.points[len(tp.points)-historyPoints:]...)
	}
	copied, rates := map[string]int64{}, map[string]float64{}
	for table, f := range t.TablesFull() {
		copied[table] = f.RowsDone
		if prev, ok := tp.copied[table]; ok && !tp.last.IsZero() {
			if d := now.Sub(tp.last).Seconds(); d > 0 && f.RowsDone >= prev {
				rates[table] = float64(f.RowsDone-prev) / d
			}
		}
	}
	tp.copied, tp.rates, tp.last = copied, rates, now
}

// resetHistory forgets the history (leadership lost or gained).
func (c *Coordinator) resetHistory() {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tasks = nil
}

// History returns a task's points, oldest first (leader only).
func (c *Coordinator) History(task string) proto.TaskHistory {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	out := proto.TaskHistory{IntervalSeconds: int(HistoryInterval / time.Second), Points: []proto.HistoryPoint{}}
	if tp := h.tasks[task]; tp != nil {
		out.Points = append(out.Points, tp.points...)
	}
	return out
}

// copyRates returns the recent copy rate of each of a task's tables
// (rows per second, by table name; leader only).
func (c *Coordinator) copyRates(task string) map[string]float64 {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if tp := h.tasks[task]; tp != nil {
		return tp.rates
	}
	return nil
}
