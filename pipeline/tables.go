package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Cleanup removes what a deleted task created, once its units stopped:
// the slot, publication, DDL capture and heartbeat row in the source
// (required: a forgotten slot holds WAL forever), its change stream
// (deleteStream), and its positions at the destination (best effort: a
// new task of the same name resets them anyway).
func Cleanup(ctx context.Context, spec *proto.TaskSpec, deleteStream func(context.Context) error, logger *slog.Logger) error {
	src, err := pgconfig.Connect(ctx, spec.Source.ConnDSN(), "sluice cleanup")
	if err != nil {
		return fmt.Errorf("cannot reach the source to drop the task's replication slot and publication (fix the connection and delete again): %w", err)
	}
	defer src.Close(context.Background())
	if err := capture.DropTaskObjects(ctx, src, spec.Name); err != nil {
		return err
	}
	if err := deleteStream(ctx); err != nil {
		return err
	}
	if sink, err := apply.Open(ctx, spec, apply.Use{Kind: apply.UseCleanup, Logger: logger}); err != nil {
		logger.Warn("cannot reach the destination to remove the task's positions", "task", spec.Name, "err", err)
	} else {
		if err := sink.ResetOffsets(ctx, spec.Name); err != nil {
			logger.Warn("cannot remove the task's positions at the destination", "task", spec.Name, "err", err)
		}
		if r, ok := sink.(apply.Releaser); ok {
			if done, err := r.Release(ctx, spec.Name); err != nil {
				logger.Warn("cannot give the destination's held triggers and foreign keys the source's definitions back", "task", spec.Name, "err", err)
			} else if len(done) > 0 {
				logger.Info("gave held triggers and foreign keys the source's definitions back", "task", spec.Name, "statements", done)
			}
		}
		sink.Close(ctx)
	}
	return nil
}

// checksOfTheRunningTask fail for a task that runs already (its slot and
// publication exist, it holds a replication connection): they do not
// judge the tables it adds.
var checksOfTheRunningTask = []string{"source.slot_name", "source.publication", "source.replication_slots", "source.wal_senders", "source.replication_connection"}

// TableChanges compares the tables the new objects select at the source
// with the task's, and prechecks the added ones as a task of their own
// would be (replica identity, privileges, filters, columns, conflicts and
// names at the destination); warnings count as acknowledged.
func TableChanges(ctx context.Context, task *coordinator.Task, objects []proto.ObjectSpec) (add, remove []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	src, err := pgconfig.Connect(ctx, task.Spec.Source.ConnDSN(), "sluice update")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the source to list the tables: %w", err)
	}
	defer src.Close(context.Background())
	selected, err := capture.ListTables(ctx, src, objects)
	if err != nil {
		return nil, nil, fmt.Errorf("objects: %w", err)
	}
	now := map[string]bool{}
	for _, t := range selected {
		now[t.Key()] = true
		if !slices.Contains(task.Tables, t.Key()) {
			add = append(add, t.Key())
		}
	}
	for _, k := range task.Tables {
		if !now[k] {
			remove = append(remove, k)
		}
	}
	if len(add) == 0 {
		return nil, remove, nil
	}
	// The added tables alone, as a new task would select them.
	spec := task.Spec
	spec.Objects = nil
	for _, o := range objects {
		o.Tables = nil
		for _, k := range add {
			if t := proto.TableIDFromKey(k); t.Schema == o.Schema {
				o.Tables = append(o.Tables, t.Name)
			}
		}
		if len(o.Tables) > 0 {
			spec.Objects = append(spec.Objects, o)
		}
	}
	var problems []string
	for _, p := range Precheck(ctx, &spec).Checks {
		if p.Result != proto.ResultPass && p.Result != proto.ResultWarning && !slices.Contains(checksOfTheRunningTask, p.Check) {
			problems = append(problems, fmt.Sprintf("%s: %s (fix: %s)", p.Check, p.Message, p.Fix))
		}
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("the tables to add fail the precheck:\n  %s", strings.Join(problems, "\n  "))
	}
	return add, remove, nil
}
