package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"
)

// fsm adapts the Store to raft.FSM.
type fsm struct {
	store  *Store
	logger *slog.Logger
}

var _ raft.FSM = (*fsm)(nil)

// Apply applies a committed log entry. Its return value is what
// Coordinator.Apply gets back: nil or the handler's error.
//
// An entry that does not decode was written by a newer Sluice (an unknown
// type byte, field or format version: Decode is strict) or the log is
// damaged. Skipping it would let this replica's state drift from the
// others' without anyone noticing, so Apply panics instead, as consul and
// nomad do: the node stops, and the message says why. Encode refuses
// unknown types, so our own code cannot propose one.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		f.logger.Error("cannot decode Raft log entry; stopping", "index", l.Index, "error", err)
		panic(fmt.Sprintf("coordinator: cannot apply Raft log entry %d: %v", l.Index, err))
	}
	if err := f.store.applyCommand(l.Index, cmd); err != nil {
		// A handler's error is part of the replicated outcome (every
		// replica gets it for this entry); the proposer returns it to
		// its caller.
		f.logger.Debug("command refused", "index", l.Index, "command", commandName(cmd.Type()), "error", err)
		return err
	}
	return nil
}

// snapshotVersion versions the snapshot's JSON; Restore refuses newer ones.
// Its tasks' specs are version 1 records (records.go): the JSON snapshots
// held before the records existed.
const snapshotVersion = 1

// snapshotData is the whole state, as written to a snapshot.
type snapshotData struct {
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
	Data    data   `json:"data"`
}

// dataRecord is data as snapshots hold it: its tasks as taskRecords, the
// rest (coordinator's own types) as it is.
type dataRecord struct {
	Tasks map[string]*taskRecord `json:"tasks"`
	dataFields
}

// dataFields is data without its methods; its Tasks are hidden by
// dataRecord's.
type dataFields data

// taskRecord is a Task as snapshots hold it: its spec as a record.
type taskRecord struct {
	Spec SpecV1 `json:"spec"`
	Task        // the rest; its own Spec is hidden by the one above
}

// MarshalJSON writes the state with its specs as records, so that a
// snapshot's format is coordinator's, as the log's is.
func (d data) MarshalJSON() ([]byte, error) {
	r := dataRecord{Tasks: make(map[string]*taskRecord, len(d.Tasks)), dataFields: dataFields(d)}
	for name, t := range d.Tasks {
		r.Tasks[name] = &taskRecord{Spec: SpecRecord(&t.Spec), Task: *t}
	}
	return json.Marshal(r)
}

// UnmarshalJSON reads what MarshalJSON wrote, strictly (decodeStrict).
func (d *data) UnmarshalJSON(b []byte) error {
	var r dataRecord
	if err := decodeStrict(b, &r); err != nil {
		return err
	}
	*d = data(r.dataFields)
	d.Tasks = make(map[string]*Task, len(r.Tasks))
	for name, rec := range r.Tasks {
		if rec == nil {
			return fmt.Errorf("task %s: null", name)
		}
		spec, err := rec.Spec.TaskSpec()
		if err != nil {
			return fmt.Errorf("task %s: %w", name, err)
		}
		t := rec.Task
		t.Spec = spec
		d.Tasks[name] = &t
	}
	return nil
}

// readSnapshot decodes a snapshot, strictly: a field this version does not
// know would be dropped, and the state would differ from the leader's.
func readSnapshot(r io.Reader) (snapshotData, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return snapshotData{}, fmt.Errorf("coordinator: read snapshot: %w", err)
	}
	// The version first, so that a newer format is named as such rather
	// than by the first field it added.
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return snapshotData{}, fmt.Errorf("coordinator: read snapshot: %w", err)
	}
	if head.Version > snapshotVersion {
		return snapshotData{}, fmt.Errorf("coordinator: snapshot version %d is newer than this Sluice understands (%d)", head.Version, snapshotVersion)
	}
	var snap snapshotData
	if err := decodeStrict(b, &snap); err != nil {
		return snapshotData{}, fmt.Errorf("coordinator: snapshot does not decode (written by a newer Sluice, or damaged): %w", err)
	}
	return snap, nil
}

// Snapshot copies the state; Persist writes the copy while Raft goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.snapshot()}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	snap, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.store.restore(snap)
	return nil
}

type fsmSnapshot struct{ snap snapshotData }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.snap); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("coordinator: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
