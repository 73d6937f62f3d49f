package coordinator

import (
	"testing"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// TestWALReopensAfterSuffixCleared: Raft clears a log suffix when a new
// leader's log disagrees with a follower's (seen in TestClusterSoak after
// a SIGKILL of the leader); the follower must then open its log again at
// its next start. raft-wal v0.4.0 sealed the tail without its index there
// and panicked at that start.
func TestWALReopensAfterSuffixCleared(t *testing.T) {
	dir := t.TempDir()
	open := func() (*raftwal.WAL, *metadb.BoltMetaDB) {
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(dir, raftwal.WithMetaStore(meta))
		if err != nil {
			t.Fatalf("open the log: %v", err)
		}
		return w, meta
	}
	w, meta := open()
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("entry")})
	}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(20, 20); err != nil {
		t.Fatalf("clear the suffix: %v", err)
	}
	if err := w.StoreLogs([]*raft.Log{{Index: 20, Term: 2, Type: raft.LogCommand, Data: []byte("new leader")}}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	_ = meta.Close()

	w, meta = open()
	defer func() { _ = w.Close(); _ = meta.Close() }()
	for _, i := range []uint64{1, 19, 20} {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d after a reopen: %v", i, err)
		}
		if want := uint64(1 + i/20); l.Term != want {
			t.Fatalf("entry %d has term %d, want %d", i, l.Term, want)
		}
	}
}
