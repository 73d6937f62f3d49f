package coordinator

import (
	"fmt"
	"slices"

	"github.com/sluicedb/sluice/proto"
)

// A task's full sync is spread over the cluster as copy units. The
// capture unit holds the consistent snapshot open on the source, plans the
// chunks and records the plan here; the leader places one copy unit per
// share of the chunks; each copy unit imports the snapshot, copies its
// chunks and marks each one copied here. The capture unit finishes each
// table whose chunks are all copied. A chunk is written exactly once
// however often it is retried: the destination records it in the
// transaction that loads it (apply/postgres, sluice.copy_chunks).

// FullSyncPlan is a full sync in progress.
type FullSyncPlan struct {
	// ID is the Raft index of the SetFullSyncPlan that recorded it. The
	// destination keeps the ID of the plan each table is being loaded by,
	// and refuses chunks of any other plan.
	ID uint64 `json:"id"`
	// Snapshot is the exported snapshot every copy unit imports; it lives
	// as long as the capture unit that planned it holds its transaction.
	Snapshot string `json:"snapshot"`
	// LSN is where the snapshot cuts the source's history: a table's
	// changes up to it are in its copy.
	LSN proto.LSN `json:"lsn"`
	// Units is the number of copy units the chunks are shared among.
	Units int `json:"units"`
	// Ready: the destination's tables are emptied and bound to this plan,
	// so copy units may start.
	Ready  bool          `json:"ready,omitempty"`
	Tables []PlannedCopy `json:"tables"`
	// TablesTotal and RowsEstimated describe the whole full sync, tables
	// copied before this plan included, for its progress.
	TablesTotal   int   `json:"tables_total"`
	RowsEstimated int64 `json:"rows_estimated"`
}

// PlannedCopy is one table of a plan.
type PlannedCopy struct {
	Table   proto.TableID    `json:"table"`
	Columns []string         `json:"columns"`
	Format  proto.CopyFormat `json:"format"`
	// Filter is the table's row filter ("" for none).
	Filter string `json:"filter,omitempty"`
	// Partitioned: a partitioned root, read with its partitions.
	Partitioned bool `json:"partitioned,omitempty"`
	// Keep: the table existed at the destination (conflicting_tables:
	// ignore); its rows stay, the copy adds the rows whose key is new.
	Keep bool `json:"keep,omitempty"`
	// Dest and DestColumns name the table at the destination when it
	// differs (renames into a table that exists there already).
	Dest        *proto.TableID `json:"dest,omitempty"`
	DestColumns []string       `json:"dest_columns,omitempty"`
	DestKey     []string       `json:"dest_key,omitempty"`
	// Types (type OIDs, as Columns) and Key (the primary key's columns)
	// are for destinations that encode rows themselves (Kafka).
	Types  []uint32       `json:"types,omitempty"`
	Key    []string       `json:"key,omitempty"`
	Chunks []PlannedChunk `json:"chunks"`
	// Estimated is the planner's estimate of the table's rows (from the
	// source's statistics, which may be stale); progress corrects it as
	// chunks finish. 0 in plans from before it was recorded.
	Estimated int64 `json:"estimated,omitempty"`
}

// Target is the table and columns the rows load into.
func (p *PlannedCopy) Target() (proto.TableID, []string) {
	if p.Dest == nil {
		return p.Table, p.Columns
	}
	return *p.Dest, p.DestColumns
}

// TargetKey is the key's columns under the names of Target.
func (p *PlannedCopy) TargetKey() []string {
	if p.Dest == nil {
		return p.Key
	}
	return p.DestKey
}

// PlannedChunk is a range of a table's heap pages, [FromPage, ToPage),
// ToPage < 0 meaning to the end, and the copy unit that copies it.
type PlannedChunk struct {
	FromPage int64 `json:"from_page"`
	ToPage   int64 `json:"to_page"`
	Unit     int   `json:"unit"`
	Done     bool  `json:"done,omitempty"`
	Rows     int64 `json:"rows,omitempty"`
	// Copying is the rows a chunk not done yet has sent so far
	// (MarkChunkProgress).
	Copying int64 `json:"copying,omitempty"`
}

// TableDone reports whether every chunk of table i is copied, and their rows.
func (p *FullSyncPlan) TableDone(i int) (bool, int64) {
	var rows int64
	for _, c := range p.Tables[i].Chunks {
		if !c.Done {
			return false, 0
		}
		rows += c.Rows
	}
	return true, rows
}

// UnitsWithWork lists the copy units that have chunks left.
func (p *FullSyncPlan) UnitsWithWork() []int {
	left := make([]bool, p.Units)
	for _, t := range p.Tables {
		for _, c := range t.Chunks {
			if !c.Done && c.Unit >= 0 && c.Unit < p.Units {
				left[c.Unit] = true
			}
		}
	}
	var out []int
	for u, l := range left {
		if l {
			out = append(out, u)
		}
	}
	return out
}

// loading sums, over the tables of the plan not yet in copied, the rows
// loaded so far (chunks done, and chunks copying) and the estimate of
// their rows, corrected by what the copy found: a table whose chunks are
// all done has its exact count, and one still loading at least the rows
// loaded. Stale statistics (reltuples) can put the planner's estimate far
// below the real count. ok is false for a plan without per-table
// estimates (from before they were recorded).
func (p *FullSyncPlan) loading(copied map[string]proto.LSN) (rows, estimate int64, ok bool) {
	for _, t := range p.Tables {
		ok = ok || t.Estimated > 0
		if _, in := copied[t.Table.Key()]; in {
			continue
		}
		var loaded int64
		done := true
		for _, c := range t.Chunks {
			if c.Done {
				loaded += c.Rows
			} else {
				loaded += c.Copying
				done = false
			}
		}
		rows += loaded
		if done {
			estimate += loaded
		} else {
			estimate += max(t.Estimated, loaded)
		}
	}
	return rows, estimate, ok
}

func (p *FullSyncPlan) clone() *FullSyncPlan {
	if p == nil {
		return nil
	}
	c := *p
	c.Tables = make([]PlannedCopy, len(p.Tables))
	for i, t := range p.Tables {
		t.Columns = slices.Clone(t.Columns)
		t.DestColumns = slices.Clone(t.DestColumns)
		t.DestKey = slices.Clone(t.DestKey)
		t.Types = slices.Clone(t.Types)
		t.Key = slices.Clone(t.Key)
		if t.Dest != nil {
			d := *t.Dest
			t.Dest = &d
		}
		t.Chunks = slices.Clone(t.Chunks)
		c.Tables[i] = t
	}
	return &c
}

// FullProgress is a task's full-sync progress from the replicated state:
// finished tables, and the copied chunks of the tables still loading.
func (t *Task) FullProgress() proto.FullProgress {
	f := proto.FullProgress{RowsDone: t.RowsCopied, TablesDone: len(t.TablesCopied)}
	if p := t.FullSync; p != nil {
		rows, estimate, ok := p.loading(t.TablesCopied)
		f.RowsDone += rows
		f.RowsEstimated, f.TablesTotal = p.RowsEstimated, p.TablesTotal
		if ok {
			// The copied tables' exact counts, and the others' estimates
			// corrected by their copy so far.
			f.RowsEstimated = t.RowsCopied + estimate
		}
	}
	if t.Phase == proto.PhaseIncremental || t.State == proto.StateReleased {
		// Done: the estimate has served its purpose, the count is exact.
		f.RowsEstimated, f.TablesTotal = f.RowsDone, f.TablesDone
		if done, total, ok := t.TablesProgress(); ok && t.Phase == proto.PhaseIncremental {
			// Tables added or removed since (DDL sync, task update).
			f.TablesDone, f.TablesTotal = done, total
		}
	}
	// Never more than all: an estimate below the rows seen is raised.
	if f.RowsEstimated > 0 {
		f.RowsEstimated = max(f.RowsEstimated, f.RowsDone)
	}
	return f
}

// Full-sync command types.
const (
	CmdSetFullSyncPlan   CommandType = 12
	CmdMarkFullSyncReady CommandType = 13
	CmdMarkChunkCopied   CommandType = 14
)

// SetFullSyncPlan records a new plan, replacing any earlier one, from the
// capture unit of task epoch Epoch. A plan ends with MarkPostDataDone, and
// with anything that stops the capture unit holding its snapshot
// (BumpEpoch, PauseTask, ResetTablesCopied).
type SetFullSyncPlan struct {
	Name  string       `json:"name"`
	Epoch uint64       `json:"epoch"`
	Plan  FullSyncPlan `json:"plan"`
}

// MarkFullSyncReady lets the copy units of plan Plan start.
type MarkFullSyncReady struct {
	Name string `json:"name"`
	Plan uint64 `json:"plan"`
	// Epoch is the capture unit's task epoch (0: not checked).
	Epoch uint64 `json:"epoch,omitempty"`
}

// MarkChunkCopied records that chunk Chunk of table Table (its index in
// the plan) is loaded, with its rows.
type MarkChunkCopied struct {
	Name  string `json:"name"`
	Plan  uint64 `json:"plan"`
	Table int    `json:"table"`
	Chunk int    `json:"chunk"`
	Rows  int64  `json:"rows"`
}

func (SetFullSyncPlan) Type() CommandType   { return CmdSetFullSyncPlan }
func (MarkFullSyncReady) Type() CommandType { return CmdMarkFullSyncReady }
func (MarkChunkCopied) Type() CommandType   { return CmdMarkChunkCopied }

func init() {
	register(applySetFullSyncPlan)
	register(applyMarkFullSyncReady)
	register(applyMarkChunkCopied)
}

func applySetFullSyncPlan(d *data, index uint64, cmd *SetFullSyncPlan) error {
	t, err := d.task(cmd.Name)
	if err != nil {
		return err
	}
	if cmd.Epoch != t.Epoch {
		return fmt.Errorf("%w: %s is at epoch %d, the plan came from %d", ErrStaleEpoch, cmd.Name, t.Epoch, cmd.Epoch)
	}
	p := cmd.Plan.clone()
	p.ID, p.Ready = index, false
	t.FullSync = p
	t.ModifyIndex = index
	return nil
}

// planOf returns the task's plan if it is plan id.
func (d *data) planOf(name string, id uint64) (*Task, *FullSyncPlan, error) {
	t, err := d.task(name)
	if err != nil {
		return nil, nil, err
	}
	if t.FullSync == nil || t.FullSync.ID != id {
		return nil, nil, fmt.Errorf("%w: full-sync plan %d of %s was replaced", ErrStaleEpoch, id, name)
	}
	return t, t.FullSync, nil
}

func applyMarkFullSyncReady(d *data, index uint64, cmd *MarkFullSyncReady) error {
	t, p, err := d.planOf(cmd.Name, cmd.Plan)
	if err != nil {
		return err
	}
	if err := t.checkEpoch(cmd.Epoch); err != nil {
		return err
	}
	p.Ready = true
	t.ModifyIndex = index
	return nil
}

func applyMarkChunkCopied(d *data, index uint64, cmd *MarkChunkCopied) error {
	t, p, err := d.planOf(cmd.Name, cmd.Plan)
	if err != nil {
		return err
	}
	if cmd.Table < 0 || cmd.Table >= len(p.Tables) || cmd.Chunk < 0 || cmd.Chunk >= len(p.Tables[cmd.Table].Chunks) {
		return fmt.Errorf("full-sync plan %d of %s has no chunk %d of table %d", cmd.Plan, cmd.Name, cmd.Chunk, cmd.Table)
	}
	c := &p.Tables[cmd.Table].Chunks[cmd.Chunk]
	if !c.Done {
		c.Done, c.Rows = true, cmd.Rows
		t.ModifyIndex = index
	}
	return nil
}
