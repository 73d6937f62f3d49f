package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/throttle"
	"github.com/sluicedb/sluice/pipeline"
	"github.com/sluicedb/sluice/proto"
)

// live holds a running task's volatile metrics; the API merges them into
// the status. They are not replicated: a restarted node starts counting
// again, while phases and errors live in the Raft state.
// (Full-sync progress is replicated: coordinator.Task.FullProgress.)
type live struct {
	mu      sync.Mutex
	capture *capture.Capture
	workers map[int]*apply.WorkerStats // by apply group
	// retired: per table counts of the groups' earlier runs here.
	retired map[string]apply.TableCount
	// samples of rows applied, one a second, for throughput.
	samples []sample
	// throttles are shared by the task's units of a phase on this node.
	throttles map[proto.Phase]*sharedThrottle
	// copiedRows and copiedBytes count what the copy units here read.
	copiedRows, copiedBytes atomic.Int64
}

// sharedThrottle is one limiter for the units of a phase on this node.
// The task's limit is split among nodes by units: a node running k of a
// phase's n units gets k/n of it, so on one node the units share the
// whole limit however their traffic is spread.
type sharedThrottle struct {
	lim   *throttle.Limiter
	units int
	stop  context.CancelFunc
}

// throttle returns the limiter the caller's unit shares with the task's
// other units of phase here (total: the phase's units in the cluster),
// and the function to call when the unit stops.
func (l *live) throttle(store pipeline.Store, task string, phase proto.Phase, total int) (*throttle.Limiter, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.throttles == nil {
		l.throttles = map[proto.Phase]*sharedThrottle{}
	}
	st := l.throttles[phase]
	if st == nil {
		ctx, stop := context.WithCancel(context.Background())
		st = &sharedThrottle{lim: &throttle.Limiter{}, stop: stop}
		l.throttles[phase] = st
		go followThrottle(ctx, store, task, phase, func() float64 {
			l.mu.Lock()
			defer l.mu.Unlock()
			return float64(st.units) / float64(max(total, 1))
		}, st.lim)
	}
	st.units++
	return st.lim, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if st.units--; st.units == 0 {
			st.stop()
			delete(l.throttles, phase)
		}
	}
}

// followThrottle keeps lim at share() of the task's throttle for phase,
// until ctx ends; a task update takes effect within a second.
func followThrottle(ctx context.Context, store pipeline.Store, name string, phase proto.Phase, share func() float64, lim *throttle.Limiter) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		// No unit owns this loop alone (the units of a phase here share
		// it): a panic in a round is recovered (logged with its stack by
		// the process's hook, counted) and the loop goes on, keeping the
		// last limits until a round succeeds.
		_ = safe.Run("throttle", func() error {
			if t, ok := store.Task(name); ok {
				rows, bytes, queries := t.Spec.Throttle.Limits(phase)
				f := share()
				lim.Set(rows*f, bytes*f, queries*f)
			}
			return nil
		})
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type sample struct {
	at                  time.Time
	rows, bytes         int64 // applied
	fullRows, fullBytes int64 // copied
}

// reset forgets what a previous capture attempt counted (apply groups,
// separate units, keep theirs).
func (l *live) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.capture = nil
}

func (l *live) setCapture(c *capture.Capture) {
	l.mu.Lock()
	l.capture = c
	l.mu.Unlock()
}

// setWorker installs the stats of an apply group's current run.
func (l *live) setWorker(group int, s *apply.WorkerStats) {
	l.mu.Lock()
	if l.workers == nil {
		l.workers = map[int]*apply.WorkerStats{}
	}
	if old := l.workers[group]; old != nil && old != s {
		l.retire(old)
	}
	l.workers[group] = s
	l.samples = nil // the sum restarts: older samples would make it negative
	l.mu.Unlock()
}

func (l *live) rowsApplied() int64 {
	var n int64
	for _, w := range l.workers {
		n += w.RowsApplied.Load()
	}
	return n
}

// groupCount is what one apply group's current run on this node wrote.
type groupCount struct{ rows, batches int64 }

// groupCounts returns the counts of the apply groups running here.
func (l *live) groupCounts() map[int]groupCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]groupCount, len(l.workers))
	for g, w := range l.workers {
		out[g] = groupCount{rows: w.RowsApplied.Load(), batches: w.Batches.Load()}
	}
	return out
}

// tick records a throughput sample; called every second.
func (l *live) tick(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bytes int64
	for _, w := range l.workers {
		bytes += w.BytesApplied.Load()
	}
	l.samples = append(l.samples, sample{at: now, rows: l.rowsApplied(), bytes: bytes, fullRows: l.copiedRows.Load(), fullBytes: l.copiedBytes.Load()})
	if len(l.samples) > 11 {
		l.samples = l.samples[len(l.samples)-11:]
	}
}

// heartbeatInterval is the capture's heartbeat period: a group whose last
// heartbeat is older than this is lagging by the difference.
const heartbeatInterval = time.Second

// groupLatencyUS is an apply group's latency from the heartbeats it
// applied: the newest one's delay, or, when it is older than a heartbeat
// period, how long ago it was written (a stuck group's latency grows).
func groupLatencyUS(w *apply.WorkerStats, now time.Time) (int64, bool) {
	commit, seen := w.HeartbeatCommitUS.Load(), w.HeartbeatSeenUS.Load()
	if commit == 0 {
		// None applied yet: unknown for a few heartbeat periods after the
		// start, then late by as long as it has waited for one.
		started := w.StartedUS.Load()
		late := now.UnixMicro() - started - 3*heartbeatInterval.Microseconds()
		if started == 0 || late <= 0 {
			return 0, false
		}
		return late, true
	}
	lat := seen - commit
	if stale := now.UnixMicro() - commit - heartbeatInterval.Microseconds(); stale > lat {
		lat = stale
	}
	return lat, true
}

// groupLatencyMS is one apply group's latency here (nil: unknown).
func (l *live) groupLatencyMS(group int, now time.Time) *int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.workers[group]
	if w == nil {
		return nil
	}
	us, ok := groupLatencyUS(w, now)
	if !ok {
		return nil
	}
	ms := max(us/1000, 0)
	return &ms
}

func (l *live) snapshot(now time.Time) coordinator.Live {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := coordinator.Live{RowsApplied: l.rowsApplied()}
	if l.capture != nil {
		out.ConfirmedLSN = proto.LSN(l.capture.Stats.ConfirmedLSN.Load()).String()
		out.PeerTxDropped = l.capture.Stats.PeerTxDropped.Load()
	}
	if n := len(l.samples); n >= 2 {
		first, last := l.samples[0], l.samples[n-1]
		if d := last.at.Sub(first.at).Seconds(); d > 0 {
			out.ThroughputRPS = float64(last.rows-first.rows) / d
			out.ThroughputBPS = float64(last.bytes-first.bytes) / d
			out.FullRowsPerSecond = float64(last.fullRows-first.fullRows) / d
			out.FullBytesPerSecond = float64(last.fullBytes-first.fullBytes) / d
		}
	}
	// Latency: every group sees every heartbeat; the task is as late as
	// its slowest group.
	if len(l.workers) > 0 {
		var worst int64
		for _, w := range l.workers {
			lat, ok := groupLatencyUS(w, now)
			if !ok {
				return out // a group has not caught up with any heartbeat yet
			}
			worst = max(worst, lat)
		}
		ms := max(worst/1000, 0)
		out.LatencyMS = &ms
	}
	return out
}
