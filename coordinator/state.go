package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sluicedb/sluice/proto"
)

// Task is a task as the replicated state holds it. Values returned by the
// state are deep copies: changing one changes nothing else.
type Task struct {
	// Spec is the spec as the user wrote it, passwords included: nodes need
	// them to connect. Redact it (Spec.Redacted()) before showing or logging.
	Spec      proto.TaskSpec   `json:"spec"`
	CreatedAt time.Time        `json:"created_at"`
	Phase     proto.Phase      `json:"phase"`
	State     proto.State      `json:"state"`
	LastError *proto.TaskError `json:"last_error,omitempty"`
	// ErrorResolvedAt: the task's units ran well again after LastError
	// (ResolveError), from then on; it is history, not the
	// current error (CurrentError, ResolvedError). Zero while it is.
	ErrorResolvedAt time.Time `json:"error_resolved_at,omitzero"`
	// Epoch fences the task's capture unit and its status reports (DESIGN
	// invariant 3): the Raft index of its creation, then of the latest
	// BumpEpoch or PauseTask. Apply units carry their assignment's epoch,
	// also a Raft index, so a sink compares both on one scale.
	Epoch    uint64 `json:"epoch"`
	Deleting bool   `json:"deleting,omitempty"`
	// SlotCreated and ConsistentLSN: the replication slot exists and its
	// changes are consistent from ConsistentLSN on.
	SlotCreated   bool      `json:"slot_created,omitempty"`
	ConsistentLSN proto.LSN `json:"consistent_lsn,omitempty"`
	// TablesCopied maps proto.TableID.Key() to the LSN of the snapshot the
	// table was copied in.
	TablesCopied map[string]proto.LSN `json:"tables_copied,omitempty"`
	// RowsCopied counts the rows of the tables in TablesCopied.
	RowsCopied int64 `json:"rows_copied,omitempty"`
	// TableRows: each copied table's rows (by key), from the plan's
	// chunks when the table was marked copied, so that a table's copy
	// shows after its plan is over.
	TableRows map[string]int64 `json:"table_rows,omitempty"`
	// PostDataDone: secondary indexes, foreign keys and sequences were
	// created after the full load.
	PostDataDone bool `json:"post_data_done,omitempty"`
	// FullSync is the full sync in progress, shared among copy units.
	FullSync *FullSyncPlan `json:"full_sync,omitempty"`
	// Tables (keys) are the tables the task syncs, fixed when it starts
	// and changed by ChangeTables (task update) and DDL sync only: a table
	// created later in a selected schema is otherwise not picked up. Nil
	// for tasks from before it was recorded.
	Tables []string `json:"tables,omitempty"`
	// Linked maps the key of each table that foreign keys link to others
	// to its linked set's anchor (capture.LinkedTables), fixed with
	// Tables: linked tables share an apply group. Nil: none, or a task
	// from before it was recorded (groups by table alone).
	Linked map[string]string `json:"linked,omitempty"`
	// Adding (keys) are tables added to the running task (ChangeTables)
	// whose schema and copy are still to come; their changes wait.
	Adding []string `json:"adding,omitempty"`
	// TablesChanges counts ChangeTables commands: the capture starts over
	// with the new set when it moves.
	TablesChanges uint64 `json:"tables_changes,omitempty"`
	// KeptTables (keys) existed at the destination before the task, under
	// conflicting_tables: ignore: the full sync keeps their rows.
	KeptTables map[string]bool `json:"kept_tables,omitempty"`
	// CreateIndex is the Raft index of the CreateTask: it tells a task from
	// an earlier task of the same name that was deleted.
	CreateIndex uint64 `json:"create_index"`
	// ModifyIndex is the Raft index of the last write to the task.
	ModifyIndex uint64 `json:"modify_index"`
	// ReverseOf: this task is the reverse direction of the named two-way
	// task (twoway.go).
	ReverseOf string `json:"reverse_of,omitempty"`
	// Verified is each table's last verification (sluice verify), by
	// source table.
	Verified map[string]VerifyRecordV1 `json:"verified,omitempty"`
	// RowsAppliedBase counts the rows applied by apply unit runs that
	// ended; ApplyRuns holds each unit's current run (ReportRowsApplied,
	// Task.RowsApplied).
	RowsAppliedBase int64              `json:"rows_applied_base,omitempty"`
	ApplyRuns       map[string]UnitRun `json:"apply_runs,omitempty"`
}

// data is the replicated state itself. Only command handlers change it,
// under Store's write lock; snapshots serialise it. The cluster issue adds
// nodes and assignments here.
type data struct {
	Tasks map[string]*Task `json:"tasks"`
	// Nodes by id, Assignments by unit (scheduler.UnitID.String()).
	Nodes       map[string]*Node       `json:"nodes,omitempty"`
	Assignments map[string]*Assignment `json:"assignments,omitempty"`
	// Waiting says, per task, why some of its units are not placed.
	Waiting map[string]string `json:"waiting,omitempty"`
	// Tokens are the API tokens by id (hashes only, see tokens.go);
	// Bootstrapped: the cluster made its first admin token.
	Tokens       map[string]*Token `json:"tokens,omitempty"`
	Bootstrapped bool              `json:"bootstrapped,omitempty"`
	// SecretKey is the id of the key inline secrets are sealed with.
	SecretKey string `json:"secret_key,omitempty"`
}

func newData() data {
	return data{Tasks: map[string]*Task{}, Nodes: map[string]*Node{}, Assignments: map[string]*Assignment{}}
}

// fillMaps gives a decoded state (an old snapshot) its empty maps.
func (d *data) fillMaps() {
	if d.Tasks == nil {
		d.Tasks = map[string]*Task{}
	}
	if d.Nodes == nil {
		d.Nodes = map[string]*Node{}
	}
	if d.Assignments == nil {
		d.Assignments = map[string]*Assignment{}
	}
}

func (d *data) task(name string) (*Task, error) {
	t, ok := d.Tasks[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTaskNotFound, name)
	}
	return t, nil
}

func (d *data) clone() data {
	c := newData()
	for name, t := range d.Tasks {
		ct := cloneTask(t)
		c.Tasks[name] = &ct
	}
	for id, n := range d.Nodes {
		cn := *n
		cn.Roles = slices.Clone(n.Roles)
		c.Nodes[id] = &cn
	}
	for u, a := range d.Assignments {
		ca := *a
		c.Assignments[u] = &ca
	}
	c.Waiting = maps.Clone(d.Waiting)
	if d.Tokens != nil {
		c.Tokens = make(map[string]*Token, len(d.Tokens))
		for id, t := range d.Tokens {
			ct := *t
			c.Tokens[id] = &ct
		}
	}
	c.Bootstrapped = d.Bootstrapped
	c.SecretKey = d.SecretKey
	return c
}

// Store is the replicated state with its readers' API. The FSM applies
// Raft's log to it; tests and the scheduler's harness can drive it directly
// with Apply, without Raft.
type Store struct {
	mu    sync.RWMutex
	data  data
	index uint64 // Raft index of the last entry applied
	// changed is closed at the next change and replaced, so that any number
	// of watchers wait without registering.
	changed chan struct{}
}

// NewStore returns an empty state.
func NewStore() *Store {
	return &Store{data: newData(), changed: make(chan struct{})}
}

// Apply applies one command as if it were the Raft log entry at index. It
// goes through Encode and Decode, the path the log takes.
func (s *Store) Apply(index uint64, cmd Command) error {
	entry, err := Encode(cmd)
	if err != nil {
		return err
	}
	return s.applyEntry(index, entry)
}

// applyEntry decodes and applies a log entry.
func (s *Store) applyEntry(index uint64, entry []byte) error {
	cmd, err := Decode(entry)
	if err != nil {
		return err
	}
	return s.applyCommand(index, cmd)
}

// applyCommand applies a decoded command. A handler's error (such as
// ErrTaskExists) leaves the state unchanged; the index still advances, as
// the entry was consumed.
func (s *Store) applyCommand(index uint64, cmd Command) error {
	h := handlers[cmd.Type()]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = index
	if err := h.apply(&s.data, index, cmd); err != nil {
		return err
	}
	s.data.refreshReverses(index)
	s.notifyLocked()
	return nil
}

func (s *Store) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Task returns a copy of the named task.
func (s *Store) Task(name string) (Task, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.data.Tasks[name]
	if !ok {
		return Task{}, false
	}
	return cloneTask(t), true
}

// Tasks returns copies of all tasks, sorted by name.
func (s *Store) Tasks() []Task {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Task, 0, len(s.data.Tasks))
	for _, t := range s.data.Tasks {
		out = append(out, cloneTask(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out
}

// Index is the Raft index of the last entry applied.
func (s *Store) Index() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index
}

// Changed returns a channel closed at the next change of the state. Take a
// new one after each wake-up, before re-reading the state, so no change is
// missed between the read and the wait.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// snapshot is a point-in-time copy, taken under the lock so the FSM can
// persist it while Raft keeps applying.
func (s *Store) snapshot() snapshotData {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return snapshotData{Version: snapshotVersion, Index: s.index, Data: s.data.clone()}
}

// restore replaces the whole state.
func (s *Store) restore(snap snapshotData) {
	snap.Data.fillMaps()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = snap.Data
	s.index = snap.Index
	s.notifyLocked()
}

// cloneTask deep-copies a task.
// AddingNotCopied lists the tables (source names) added to the running
// task whose copy is not in yet: their changes must wait for it.
func (t *Task) AddingNotCopied() []string {
	var out []string
	for _, k := range t.Adding {
		if _, copied := t.TablesCopied[k]; !copied {
			out = append(out, proto.TableIDFromKey(k).String())
		}
	}
	return out
}

func cloneTask(t *Task) Task {
	c := *t
	c.Spec = t.Spec.Clone()
	if t.LastError != nil {
		e := *t.LastError
		c.LastError = &e
	}
	c.TablesCopied = maps.Clone(t.TablesCopied)
	c.TableRows = maps.Clone(t.TableRows)
	c.FullSync = t.FullSync.clone()
	c.KeptTables = maps.Clone(t.KeptTables)
	c.Tables = slices.Clone(t.Tables)
	c.Linked = maps.Clone(t.Linked)
	c.Verified = maps.Clone(t.Verified)
	for k, r := range c.Verified {
		c.Verified[k] = VerifyRecordOf(r.Record()) // its sample's keys copied
	}
	c.Adding = slices.Clone(t.Adding)
	c.ApplyRuns = cloneRuns(t.ApplyRuns)
	return c
}
