package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// What a task's status counts, kept in the replicated state so that it
// survives pauses, unit restarts, moves between nodes and restarts of
// the process: the rows its apply units applied (ReportRowsApplied), the
// rows of full-sync chunks still copying (MarkChunkProgress), and whether
// its last error is still the current one (ResolveError).

// Progress command types.
const (
	CmdReportRowsApplied CommandType = 26
	CmdMarkChunkProgress CommandType = 27
	CmdResolveError      CommandType = 28
)

// ReportRowsApplied records the rows one run of an apply unit has applied
// so far. A unit counts from zero each time it starts (a run); reports
// carry the run's whole count, not a delta, so a report that is repeated
// or arrives twice counts once. When a newer run of the unit reports, the
// previous run's last count is folded into the task's total: the total
// never goes down. A run is ordered by its assignment's epoch, then its
// start (a unit moved to another node has a higher epoch); a report of a
// run older than the unit's current one is ignored.
type ReportRowsApplied struct {
	Name  string `json:"name"`
	Unit  string `json:"unit"`
	Epoch uint64 `json:"epoch"`
	// Start identifies the run: its start, Unix nanoseconds on its node.
	Start int64 `json:"start"`
	Rows  int64 `json:"rows"`
}

// MarkChunkProgress records the rows a chunk being copied has sent so
// far, so progress shows while a long chunk loads; MarkChunkCopied sets
// its final count. A report for a plan that is over is ignored (the
// copy unit learns it is fenced from MarkChunkCopied).
type MarkChunkProgress struct {
	Name  string `json:"name"`
	Plan  uint64 `json:"plan"`
	Table int    `json:"table"`
	Chunk int    `json:"chunk"`
	Rows  int64  `json:"rows"`
}

// ResolveError records that the task's units have run well since
// HealthySince (the time on the proposer's node): a last error from
// before then becomes history (Task.ErrorResolvedAt = At) and a retrying
// task runs again. An error from HealthySince on (another of its units
// failed meanwhile) stays current, and the task as it is. Like
// SetTaskStatus.IfRunnable, it is refused (ErrStaleEpoch) unless the task
// runs.
type ResolveError struct {
	Name         string    `json:"name"`
	At           time.Time `json:"at"`
	HealthySince time.Time `json:"healthy_since"`
}

func (ReportRowsApplied) Type() CommandType { return CmdReportRowsApplied }
func (MarkChunkProgress) Type() CommandType { return CmdMarkChunkProgress }
func (ResolveError) Type() CommandType      { return CmdResolveError }

func init() {
	register(applyReportRowsApplied)
	register(applyMarkChunkProgress)
	register(applyResolveError)
}

// UnitRun is the current run of an apply unit and the rows it applied.
type UnitRun struct {
	Epoch uint64 `json:"epoch"`
	Start int64  `json:"start"`
	Rows  int64  `json:"rows"`
}

// before reports whether run r started before (epoch, start).
func (r UnitRun) before(epoch uint64, start int64) bool {
	return r.Epoch < epoch || r.Epoch == epoch && r.Start < start
}

func applyReportRowsApplied(d *data, index uint64, cmd *ReportRowsApplied) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if cmd.Unit == "" || cmd.Rows < 0 {
		return fmt.Errorf("rows applied of %s: unit %q, rows %d", cmd.Name, cmd.Unit, cmd.Rows)
	}
	cur, ok := t.ApplyRuns[cmd.Unit]
	switch {
	case !ok:
	case cur.Epoch == cmd.Epoch && cur.Start == cmd.Start:
		if cmd.Rows <= cur.Rows {
			return nil // a repeated or late report of the same run
		}
	case cur.before(cmd.Epoch, cmd.Start):
		t.RowsAppliedBase += cur.Rows // the previous run ended: fold it
	default:
		return nil // a report of a run older than the current one
	}
	if t.ApplyRuns == nil {
		t.ApplyRuns = map[string]UnitRun{}
	}
	t.ApplyRuns[cmd.Unit] = UnitRun{Epoch: cmd.Epoch, Start: cmd.Start, Rows: cmd.Rows}
	t.ModifyIndex = index
	return nil
}

// RowsApplied is the rows the task's apply units have applied since it
// was created: runs that ended, and each unit's current run.
func (t *Task) RowsApplied() int64 {
	n := t.RowsAppliedBase
	for _, r := range t.ApplyRuns {
		n += r.Rows
	}
	return n
}

func cloneRuns(m map[string]UnitRun) map[string]UnitRun { return maps.Clone(m) }

func applyMarkChunkProgress(d *data, index uint64, cmd *MarkChunkProgress) error {
	t, p, err := d.planOf(cmd.Name, cmd.Plan)
	if errors.Is(err, ErrStaleEpoch) {
		return nil // the plan is over: progress is only for show
	}
	if err != nil {
		return err
	}
	if cmd.Table < 0 || cmd.Table >= len(p.Tables) || cmd.Chunk < 0 || cmd.Chunk >= len(p.Tables[cmd.Table].Chunks) {
		return fmt.Errorf("full-sync plan %d of %s has no chunk %d of table %d", cmd.Plan, cmd.Name, cmd.Chunk, cmd.Table)
	}
	c := &p.Tables[cmd.Table].Chunks[cmd.Chunk]
	// A chunk retried counts from zero again: progress shows the most it
	// reached, and MarkChunkCopied the exact count.
	if !c.Done && cmd.Rows > c.Copying {
		c.Copying = cmd.Rows
		t.ModifyIndex = index
	}
	return nil
}

func applyResolveError(d *data, index uint64, cmd *ResolveError) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if !Runnable(t) {
		return fmt.Errorf("%w: %s is %s", ErrStaleEpoch, cmd.Name, t.State)
	}
	if e := t.LastError; e != nil && t.ErrorResolvedAt.IsZero() {
		if !e.At.Before(cmd.HealthySince) {
			return nil // a failure since: still current
		}
		t.ErrorResolvedAt = cmd.At
		t.ModifyIndex = index
	}
	if t.State == proto.StateRetrying {
		t.State = proto.StateRunning
		t.ModifyIndex = index
	}
	return nil
}

// CurrentError is the task's error while it is the current one: nil once
// its units ran well again after it (ResolvedError).
func (t *Task) CurrentError() *proto.TaskError {
	if t.LastError == nil || !t.ErrorResolvedAt.IsZero() {
		return nil
	}
	e := *t.LastError
	return &e
}

// ResolvedError is the task's last error once its units ran well again
// after it, without the retry window it no longer has, and when that
// was seen; nil while the error is current or there is none.
func (t *Task) ResolvedError() (*proto.TaskError, time.Time) {
	if t.LastError == nil || t.ErrorResolvedAt.IsZero() {
		return nil, time.Time{}
	}
	e := *t.LastError
	e.RetryUntil = time.Time{}
	return &e, t.ErrorResolvedAt
}

// TablesProgress is how many of the task's tables are in (copied, or
// created by DDL sync and synced from their creation) and how many it
// syncs, once it is incremental: tables added or removed later (DDL
// sync, task update) count. ok is false for a task that does not record
// its tables (from before they were recorded).
func (t *Task) TablesProgress() (done, total int, ok bool) {
	if t.Tables == nil {
		return 0, 0, false
	}
	total = len(t.Tables)
	return total - len(t.AddingNotCopied()), total, true
}
