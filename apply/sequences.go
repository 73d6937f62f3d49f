package apply

import (
	"context"

	"github.com/sluicedb/sluice/proto"
)

// SequenceSyncer is a destination with sequences of its own (PostgreSQL),
// which it keeps in step with the source's: the task's capture unit moves
// them forward during incremental sync, and a cutover sets them exactly.
// A destination without sequences (Kafka, Doris) does not implement it and
// nothing is done for it. (SchemaApplier.SyncSequences, once after the
// full load, also creates the links to the owning columns.)
//
// Names are the destination's; a sequence missing there is reported, not
// an error, so that one dropped by hand does not stop the others.
type SequenceSyncer interface {
	Sink
	// AdvanceSequences sets each sequence to its state where that is
	// ahead of the destination's, in the sequence's direction (its
	// increment's sign), and leaves the others: it never moves one back,
	// so a sequence set ahead at the destination stays. It takes a few
	// statements for thousands of sequences and returns the names it did
	// not find.
	AdvanceSequences(ctx context.Context, seqs []proto.SequenceUpdate) (missing []proto.TableID, err error)
	// SetSequences sets each sequence to exactly its state, whichever way
	// that moves it, and returns what each held before and after, in the
	// order given.
	SetSequences(ctx context.Context, seqs []proto.SequenceUpdate) ([]proto.SequenceResult, error)
}
