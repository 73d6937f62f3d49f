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
	mu     sync.Mutex
	last   time.Time
	points map[string][]proto.HistoryPoint // a ring: appended, the oldest cut
	// copied: each table's rows copied at the previous point, and the
	// rates worked out from it.
	copied map[string]map[string]int64
	at     time.Time
	rates  map[string]map[string]float64
}

// sampleHistory records a point of every task when HistoryInterval has
// passed since the last (leader only; the scheduler's loop calls it).
func (c *Coordinator) sampleHistory(ctx context.Context, now time.Time) {
	h := &c.history
	h.mu.Lock()
	due := now.Sub(h.last) >= HistoryInterval
	h.mu.Unlock()
	if !due {
		return
	}
	live, _ := c.ClusterLive(ctx)
	tasks := c.Tasks()
	h.mu.Lock()
	defer h.mu.Unlock()
	points, copied, rates := map[string][]proto.HistoryPoint{}, map[string]map[string]int64{}, map[string]map[string]float64{}
	for _, t := range tasks {
		name := t.Spec.Name
		l := live[name]
		p := proto.HistoryPoint{At: now.UTC().Truncate(time.Second), LatencyMS: l.LatencyMS,
			RowsPerSecond: l.RowsPerSecond + l.FullRowsPerSecond, BytesPerSecond: l.BytesPerSecond + l.FullBytesPerSecond}
		list := append(h.points[name], p)
		if len(list) > historyPoints {
			list = append([]proto.HistoryPoint(nil), list[len(list)-historyPoints:]...)
		}
		points[name] = list
		copied[name], rates[name] = map[string]int64{}, map[string]float64{}
		for table, f := range t.TablesFull() {
			copied[name][table] = f.RowsDone
			if prev, ok := h.copied[name][table]; ok && !h.at.IsZero() {
				if d := now.Sub(h.at).Seconds(); d > 0 && f.RowsDone >= prev {
					rates[name][table] = float64(f.RowsDone-prev) / d
				}
			}
		}
	}
	h.points, h.copied, h.rates, h.at, h.last = points, copied, rates, now, now
}

// resetHistory forgets the history (leadership lost or gained).
func (c *Coordinator) resetHistory() {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	h.points, h.copied, h.rates, h.at, h.last = nil, nil, nil, time.Time{}, time.Time{}
}

// History returns a task's points, oldest first (leader only).
func (c *Coordinator) History(task string) proto.TaskHistory {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	return proto.TaskHistory{IntervalSeconds: int(HistoryInterval / time.Second),
		Points: append([]proto.HistoryPoint{}, h.points[task]...)}
}

// copyRates returns the recent copy rate of each of a task's tables
// (rows per second, by table name; leader only).
func (c *Coordinator) copyRates(task string) map[string]float64 {
	h := &c.history
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rates[task]
}
