package pipeline

import (
	"context"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// runPeriodic runs the sink's periodic work (apply.PeriodicWorker) while
// the task is incremental, until ctx ends. A failure is logged, once per
// run of failures, and tried again at the next tick: such work (a
// materialized view refresh) must not stop the rows.
func (r *Runner) runPeriodic(ctx context.Context, sink apply.TaskSink, spec *proto.TaskSpec) error {
	pw, ok := sink.(apply.PeriodicWorker)
	if !ok {
		return nil
	}
	work := pw.Periodic(spec)
	if len(work) == 0 {
		return nil
	}
	done := make(chan struct{}, len(work))
	for _, w := range work {
		go func() {
			defer func() { done <- struct{}{} }()
			tick := time.NewTicker(w.Every)
			defer tick.Stop()
			failing := false
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := w.Run(ctx); err != nil && ctx.Err() == nil {
					if !failing {
						r.Logger.Warn("periodic work failed; trying again at the next interval", "task", r.Name, "work", w.Name, "err", err)
					}
					failing = true
				} else {
					failing = false
				}
			}
		}()
	}
	for range work {
		<-done
	}
	return nil
}
