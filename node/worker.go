package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/proto"
)

// Worker runs the tasks the replicated state holds: one runner per task
// that should run, stopped when the task is paused, deleted or finished.
// On a single node it runs every task; the cluster issue makes it run the
// units the leader assigns to it.
type Worker struct {
	coord  *coordinator.Coordinator
	js     jetstream.JetStream
	cfg    RunnerConfig
	logger *slog.Logger

	mu      sync.Mutex
	runners map[string]*runningTask
}

type runningTask struct {
	createIndex uint64
	cancel      context.CancelFunc
	done        chan struct{}
	live        *live
}

// NewWorker returns a worker; Run starts it.
func NewWorker(coord *coordinator.Coordinator, js jetstream.JetStream, cfg RunnerConfig, logger *slog.Logger) *Worker {
	cfg.setDefaults()
	return &Worker{coord: coord, js: js, cfg: cfg, logger: logger, runners: map[string]*runningTask{}}
}

// Run reconciles runners with the state until ctx ends, then stops them
// all and waits for them.
func (w *Worker) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		changed := w.coord.Changed()
		w.reconcile(ctx)
		select {
		case <-ctx.Done():
			w.stopAll()
			return
		case <-changed:
		case now := <-tick.C:
			w.mu.Lock()
			for _, rt := range w.runners {
				rt.live.tick(now)
			}
			w.mu.Unlock()
		}
	}
}

func shouldRun(t *coordinator.Task) bool {
	if t.Deleting {
		return false
	}
	switch t.State {
	case proto.StateFailed, proto.StateReleased, proto.StatePaused:
		return false
	}
	return true
}

func (w *Worker) reconcile(ctx context.Context) {
	tasks := w.coord.Tasks()
	want := map[string]*coordinator.Task{}
	for i := range tasks {
		if shouldRun(&tasks[i]) {
			want[tasks[i].Spec.Name] = &tasks[i]
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, rt := range w.runners {
		select {
		case <-rt.done:
			// Ended by itself (failed, released, fenced): forget it; the
			// state says whether to start it again.
			delete(w.runners, name)
			continue
		default:
		}
		if t, ok := want[name]; !ok || t.CreateIndex != rt.createIndex {
			rt.cancel()
		}
	}
	for name, t := range want {
		if _, running := w.runners[name]; running {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		rt := &runningTask{createIndex: t.CreateIndex, cancel: cancel, done: make(chan struct{}), live: &live{}}
		w.runners[name] = rt
		r := &runner{name: name, store: w.coord, js: w.js, cfg: w.cfg, logger: w.logger, live: rt.live}
		go func() {
			defer close(rt.done)
			r.run(rctx)
		}()
	}
}

// Stop stops a task's runner and waits for it to end.
func (w *Worker) Stop(name string) {
	w.mu.Lock()
	rt := w.runners[name]
	w.mu.Unlock()
	if rt != nil {
		rt.cancel()
		<-rt.done
	}
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	var all []*runningTask
	for _, rt := range w.runners {
		rt.cancel()
		all = append(all, rt)
	}
	w.mu.Unlock()
	for _, rt := range all {
		<-rt.done
	}
}

// Live returns a task's volatile metrics, zero when it does not run here.
func (w *Worker) Live(name string) coordinator.Live {
	w.mu.Lock()
	rt := w.runners[name]
	w.mu.Unlock()
	if rt == nil {
		return coordinator.Live{}
	}
	return rt.live.snapshot(time.Now())
}
