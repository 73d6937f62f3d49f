package node

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/pipeline"
	"github.com/sluicedb/sluice/proto"
)

// backend is what the HTTP API asks of this node.
type backend struct {
	worker *Worker
	coord  *coordinator.Coordinator
	js     jetstream.JetStream
	logger *slog.Logger
}

var _ coordinator.Backend = (*backend)(nil)

func (b *backend) Precheck(ctx context.Context, spec *proto.TaskSpec, opts coordinator.PrecheckOptions) (*proto.PrecheckReport, error) {
	if opts.Fix {
		return pipeline.PrecheckFix(ctx, spec, capture.IdentityFixer{Logger: b.logger.With("task", spec.Name)}), nil
	}
	return pipeline.Precheck(ctx, spec), nil
}

// Cleanup stops the task here, then removes what it created: the slot,
// publication and heartbeat row in the source (required: a forgotten slot
// holds WAL forever), the stream, and its positions at the destination
// (best effort: a new task of the same name resets them anyway).
func (b *backend) Cleanup(ctx context.Context, spec *proto.TaskSpec) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.waitUnitsStopped(ctx, spec.Name); err != nil {
		return err
	}
	return pipeline.Cleanup(ctx, spec, func(ctx context.Context) error { return apply.DeleteStream(ctx, b.js, spec.Name) }, b.logger)
}

func (b *backend) Live(name string) coordinator.Live { return b.worker.Live(name) }

// TableChanges compares the tables the new objects select at the source
// with the task's, and prechecks the added ones (pipeline.TableChanges).
func (b *backend) TableChanges(ctx context.Context, task *coordinator.Task, objects []proto.ObjectSpec) (add, remove []string, err error) {
	return pipeline.TableChanges(ctx, task, objects)
}

// Conflicts counts a two-way task's conflicts at both databases.
func (b *backend) Conflicts(ctx context.Context, spec *proto.TaskSpec) ([]proto.ConflictCount, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pipeline.ConflictCounts(ctx, spec)
}

// Plan works out what a task would create, with this node's number of
// apply groups.
func (b *backend) Plan(ctx context.Context, spec *proto.TaskSpec) (*proto.TaskPlan, error) {
	return pipeline.Plan(ctx, spec, b.worker.cfg.Groups)
}

// Verify runs a verification of a task from this node (pipeline.Verify).
func (b *backend) Verify(ctx context.Context, task *coordinator.Task, req proto.VerifyRequest) (*proto.VerifyReport, error) {
	return pipeline.Verify(ctx, task, req, pipeline.VerifyOptions{JetStream: b.js, Logger: b.logger, Pause: b.pauseForRepair(task.Spec.Name)})
}

// pauseForRepair is a verification's pause of the task around a repair
// of a destination that cannot hold its apply positions (Kafka, Doris):
// a running task is paused (its epoch raised, its assignments dropped)
// and resumed by the returned func, with a context of its own, whatever
// became of the repair; a task that is not running (paused, failed,
// finished) stays as it is, and the repair only waits for its units to
// be gone.
func (b *backend) pauseForRepair(task string) func(ctx context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		t, ok := b.coord.Task(task)
		if !ok {
			return nil, fmt.Errorf("task %q not found", task)
		}
		resume := func() {}
		switch t.State {
		case proto.StatePaused, proto.StateFailed, proto.StateReleased:
		default:
			if err := b.coord.Apply(ctx, coordinator.PauseTask{Name: task}); err != nil {
				return nil, err
			}
			b.logger.Info("verify: task paused for a repair", "task", task)
			resume = func() {
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := b.coord.Apply(rctx, coordinator.ResumeTask{Name: task}); err != nil {
					b.logger.Error("verify: the task paused for a repair could not be resumed: resume it (sluice task resume)", "task", task, "error", err)
					return
				}
				b.logger.Info("verify: task resumed after a repair", "task", task)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := b.waitUnitsStopped(wctx, task); err != nil {
			resume()
			return nil, err
		}
		return resume, nil
	}
}

// Cutover runs a task's cutover from this node (pipeline.Cutover): the
// spec's secrets are resolved here, the catch-up is read from the source
// and the task's stream.
func (b *backend) Cutover(ctx context.Context, task *coordinator.Task, wait time.Duration) (*proto.CutoverReport, error) {
	return pipeline.Cutover(ctx, task, pipeline.CutoverOptions{Wait: wait, JetStream: b.js, Logger: b.logger})
}

// waitUnitsStopped waits until the task, marked for deletion or paused,
// has no assignment left (the leader drops them) and no unit of it runs
// here; units on other nodes stop when their node sees the assignment
// go.
func (b *backend) waitUnitsStopped(ctx context.Context, task string) error {
	for {
		placed := false
		for _, a := range b.coord.Assignments() {
			if a.UnitID().Task == task {
				placed = true
				break
			}
		}
		if !placed {
			b.worker.StopTask(task)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the task's units did not stop: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
