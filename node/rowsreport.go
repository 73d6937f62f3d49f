package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/pipeline"
)

// rowsReportEvery is how often an apply unit records its rows applied in
// the replicated state, when they changed.
const rowsReportEvery = time.Second

// rowsReporter records the rows an apply unit's runs apply in the task's
// total (coordinator.ReportRowsApplied): each run's whole count, so that
// a repeated report counts once and a new run (a restart, a move, a
// process restart) adds to the total instead of starting it over.
type rowsReporter struct {
	store pipeline.Store
	task  string
	unit  string
	epoch uint64
	log   *slog.Logger

	mu    sync.Mutex
	stats *apply.WorkerStats // the current run's counters
	began int64              // its start, Unix ns: the run's identity
	sent  int64              // the count last recorded
}

// use starts a new run counted by stats, after recording the previous
// run's last count.
func (r *rowsReporter) use(ctx context.Context, stats *apply.WorkerStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stats != nil {
		r.reportLocked(ctx)
	}
	r.stats, r.began, r.sent = stats, time.Now().UnixNano(), 0
}

// report records the current run's count if it changed.
func (r *rowsReporter) report(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reportLocked(ctx)
}

func (r *rowsReporter) reportLocked(ctx context.Context) {
	n := r.stats.RowsApplied.Load()
	if n == r.sent {
		return
	}
	err := r.store.Apply(ctx, coordinator.ReportRowsApplied{Name: r.task, Unit: r.unit, Epoch: r.epoch, Start: r.began, Rows: n})
	switch {
	case err == nil:
		r.sent = n
	case ctx.Err() == nil && !errors.Is(err, coordinator.ErrTaskNotFound):
		// The next report carries the whole count: nothing is lost.
		r.log.Debug("cannot record rows applied yet", "err", err)
	}
}

// start reports every rowsReportEvery until the returned function is
// called, which records the last count (on a context of its own: the
// unit's has ended by then) and waits for the reporter.
func (r *rowsReporter) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(rowsReportEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				r.report(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer fcancel()
		r.report(fctx)
	}
}
