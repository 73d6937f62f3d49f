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
// type byte) or the log is damaged. Skipping it would let this replica's
// state drift from the others' without anyone noticing, so Apply panics
// instead, as consul and nomad do: the node stops, and the message says
// why. Encode refuses unknown types, so our own code cannot propose one.
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
const snapshotVersion = 1

// snapshotData is the whole state, as written to a snapshot.
type snapshotData struct {
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
	Data    data   `json:"data"`
}

// Snapshot copies the state; Persist writes the copy while Raft goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.store.snapshot()}, nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var snap snapshotData
	if err := json.NewDecoder(rc).Decode(&snap); err != nil {
		return fmt.Errorf("coordinator: read snapshot: %w", err)
	}
	if snap.Version > snapshotVersion {
		return fmt.Errorf("coordinator: snapshot version %d is newer than this Sluice understands (%d)", snap.Version, snapshotVersion)
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
