package node

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/coordinator/scheduler"
	"github.com/sluicedb/sluice/internal/safe"
)

// Worker runs the units the leader assigned to this node: a task's capture
// (which also drives its schema and full-sync phases), its copy units
// while it loads, and its apply groups. A unit whose assignment moves elsewhere, or whose epoch changes,
// is stopped; a node that cannot reach the leader for the failover timeout
// stops all its units (the leader moves them after the same time), so two
// owners overlap as little as possible, and the sinks' epoch check fences
// what overlap remains.
type Worker struct {
	id     string
	coord  *coordinator.Coordinator
	js     jetstream.JetStream
	cfg    RunnerConfig
	logger *slog.Logger
	// failover is the leader's failover timeout; lastBeat the last
	// heartbeat the leader accepted (unix nanoseconds).
	failover time.Duration
	lastBeat atomic.Int64
	// leaderIndex is the leader's Raft index at the last heartbeat: units
	// start only once the local state has applied that far, so a node
	// back from a partition does not act on assignments it has not yet
	// seen replaced.
	leaderIndex atomic.Uint64

	mu    sync.Mutex
	units map[string]*runningUnit
	lives map[string]*live // per task, shared by its units here
}

// restartDelay spaces the restarts of a unit that keeps ending by itself.
const restartDelay = 2 * time.Second

type runningUnit struct {
	id     scheduler.UnitID
	epoch  uint64
	ended  time.Time   // set before done is closed
	fenced atomic.Bool // it stopped because a newer owner wrote
	cancel context.CancelFunc
	done   chan struct{}
	health *unitHealth
}

// unitHealth is what the heartbeat reports about a unit.
type unitHealth struct {
	mu      sync.Mutex
	running bool
	err     string
	errAt   time.Time
}

func (h *unitHealth) set(running bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = running
	if err != nil {
		h.err, h.errAt = err.Error(), time.Now()
	} else if running {
		h.err = ""
	}
}

// NewWorker returns the worker of node id; Run starts it.
func NewWorker(id string, coord *coordinator.Coordinator, js jetstream.JetStream, cfg RunnerConfig, failover time.Duration, logger *slog.Logger) *Worker {
	cfg.setDefaults()
	w := &Worker{id: id, coord: coord, js: js, cfg: cfg, logger: logger, failover: failover,
		units: map[string]*runningUnit{}, lives: map[string]*live{}}
	w.lastBeat.Store(time.Now().UnixNano())
	return w
}

// Beat records a heartbeat the leader accepted, and the leader's index.
func (w *Worker) Beat(leaderIndex uint64) {
	w.leaderIndex.Store(leaderIndex)
	w.lastBeat.Store(time.Now().UnixNano())
}

// caughtUp: the local state has applied what the leader had at the last
// heartbeat.
func (w *Worker) caughtUp() bool { return w.coord.Index() >= w.leaderIndex.Load() }

// fenced: the leader has not heard from this node for the failover
// timeout, so it may have handed the units to others.
func (w *Worker) fenced() bool {
	return time.Since(time.Unix(0, w.lastBeat.Load())) > w.failover
}

// Run reconciles units with the assignments until ctx ends, then stops
// them all and waits for them.
func (w *Worker) Run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	wasFenced := false
	for {
		changed := w.coord.Changed()
		// A panic in a round is recovered (logged with its stack by the
		// process's hook, counted): the loop goes on, and the next round,
		// at the next change or tick, tries again. Stopping here would
		// leave the node's units unsupervised while it looks alive.
		if err := safe.Run("worker", func() error {
			fenced := w.fenced()
			if fenced != wasFenced {
				if fenced {
					w.logger.Warn("the leader has not heard from this node within the failover timeout: stopping its units", "timeout", w.failover)
				} else {
					w.logger.Info("in touch with the leader again")
				}
				wasFenced = fenced
			}
			w.reconcile(ctx, fenced)
			return nil
		}); err != nil {
			w.logger.Error("worker round failed; going on", "err", err)
		}
		select {
		case <-ctx.Done():
			w.stopAll()
			return
		case <-changed:
		case now := <-tick.C:
			if err := safe.Run("worker", func() error { w.tickLives(now); return nil }); err != nil {
				w.logger.Error("worker round failed; going on", "err", err)
			}
		}
	}
}

func (w *Worker) tickLives(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock() // deferred: a panic must not leave w.mu held
	for _, l := range w.lives {
		l.tick(now)
	}
}

// wanted returns the units assigned here whose task should run.
func (w *Worker) wanted(fenced bool) map[string]coordinator.Assignment {
	want := map[string]coordinator.Assignment{}
	if fenced {
		return want
	}
	for _, a := range w.coord.Assignments() {
		if a.Node != w.id {
			continue
		}
		t, ok := w.coord.Task(a.UnitID().Task)
		if !ok || !coordinator.Runnable(&t) {
			continue
		}
		want[a.Unit] = a
	}
	return want
}

func (w *Worker) reconcile(ctx context.Context, fenced bool) {
	want := w.wanted(fenced)
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, ru := range w.units {
		if a, ok := want[key]; ok && a.Epoch == ru.epoch {
			continue
		}
		ru.cancel()
		select {
		case <-ru.done:
			delete(w.units, key)
		default: // forgotten once it has stopped, at a later round
		}
	}
	caughtUp := w.caughtUp()
	for key, a := range want {
		if ru, ok := w.units[key]; ok {
			select {
			case <-ru.done:
				// Ended by itself while still placed here (it could not
				// record its start during an election, say): start it
				// again, at most once per restartDelay; never when a
				// newer owner fenced it, until the state moves it.
				if ru.epoch == a.Epoch && (ru.fenced.Load() || time.Since(ru.ended) < restartDelay) {
					continue
				}
			default:
				continue // running, or the old instance is still stopping
			}
		}
		if !caughtUp {
			continue // the assignment may be stale: wait for the log
		}
		w.start(ctx, a)
	}
	for task := range w.lives {
		if !w.hasTaskLocked(task) {
			delete(w.lives, task)
		}
	}
}

func (w *Worker) hasTaskLocked(task string) bool {
	for _, ru := range w.units {
		if ru.id.Task == task {
			return true
		}
	}
	return false
}

// start runs a unit (w.mu held).
func (w *Worker) start(ctx context.Context, a coordinator.Assignment) {
	id := a.UnitID()
	l := w.lives[id.Task]
	if l == nil {
		l = &live{}
		w.lives[id.Task] = l
	}
	uctx, cancel := context.WithCancel(ctx)
	ru := &runningUnit{id: id, epoch: a.Epoch, cancel: cancel, done: make(chan struct{}), health: &unitHealth{}}
	w.units[a.Unit] = ru
	log := unitLogger(w.logger, id, a.Epoch)
	log.Info("starting unit")
	go func() {
		defer close(ru.done)
		defer func() { ru.ended = time.Now() }()
		ru.health.set(true, nil)
		// Attempts recover their own panics and retry them (superviseUnit,
		// runner.run); one that escapes a unit's supervision ends the
		// unit as if it had failed: reported in its health, and started
		// again by reconcile after restartDelay, since it still is
		// assigned here and was not fenced.
		err := safe.Run("unit/"+string(id.Kind), func() error {
			// Tests only: SLUICE_FAILPOINTS=unit-start=N panics the first
			// N units started, outside their supervision.
			safe.Failpoint("unit-start")
			switch id.Kind {
			case scheduler.KindCapture:
				r := captureRunner(id.Task, w.coord, w.js, w.cfg, log, l, ru.health)
				ru.fenced.Store(r.Run(uctx))
			case scheduler.KindApply:
				u := &applyUnit{task: id.Task, group: id.Group, epoch: a.Epoch, store: w.coord, js: w.js, cfg: w.cfg, logger: log, live: l, health: ru.health}
				ru.fenced.Store(u.run(uctx))
			case scheduler.KindCopy:
				u := &copyUnit{task: id.Task, share: id.Group, store: w.coord, cfg: w.cfg, logger: log, live: l, health: ru.health}
				ru.fenced.Store(u.run(uctx))
			}
			return nil
		})
		ru.health.set(false, err)
		if err != nil {
			log.Error("unit failed; it starts again", "in", restartDelay, "err", err)
			return
		}
		log.Info("unit stopped")
	}()
}

// StopTask stops every unit of a task here and waits for them.
func (w *Worker) StopTask(task string) {
	w.mu.Lock()
	var stop []*runningUnit
	for _, ru := range w.units {
		if ru.id.Task == task {
			ru.cancel()
			stop = append(stop, ru)
		}
	}
	w.mu.Unlock()
	for _, ru := range stop {
		<-ru.done
	}
}

// ApplyGroups returns what each of the task's apply groups running on
// this node wrote in its current run (rows and batches).
func (w *Worker) ApplyGroups(name string) map[int]groupCount {
	w.mu.Lock()
	l := w.lives[name]
	w.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.groupCounts()
}

// Running reports whether a unit of the task runs here.
func (w *Worker) Running(task string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ru := range w.units {
		if ru.id.Task != task {
			continue
		}
		select {
		case <-ru.done:
		default:
			return true
		}
	}
	return false
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	var all []*runningUnit
	for _, ru := range w.units {
		ru.cancel()
		all = append(all, ru)
	}
	w.mu.Unlock()
	for _, ru := range all {
		<-ru.done
	}
}

// Health is the heartbeat's report of the units here.
func (w *Worker) Health() []coordinator.UnitHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]coordinator.UnitHealth, 0, len(w.units))
	now := time.Now()
	for key, ru := range w.units {
		ru.health.mu.Lock()
		h := coordinator.UnitHealth{Unit: key, Epoch: ru.epoch, Running: ru.health.running, Error: ru.health.err, ErrorAt: ru.health.errAt}
		ru.health.mu.Unlock()
		if l := w.lives[ru.id.Task]; l != nil && ru.id.Kind == scheduler.KindApply && h.Running {
			h.LatencyMS = l.groupLatencyMS(ru.id.Group, now)
		}
		out = append(out, h)
	}
	return out
}

// Live returns a task's volatile metrics on this node, zero when none of
// its units runs here.
func (w *Worker) Live(name string) coordinator.Live {
	w.mu.Lock()
	l := w.lives[name]
	w.mu.Unlock()
	if l == nil {
		return coordinator.Live{}
	}
	return l.snapshot(time.Now())
}
