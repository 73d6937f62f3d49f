package apply

import (
	"context"

	"github.com/sluicedb/sluice/proto"
)

// Verification (sluice verify, package verify): a destination that can
// be compared with the source gives a VerifyReader; one that can also
// make differing rows match the source's is a Repairer.

// Verifiable is a sink whose destination a verification can read.
type Verifiable interface {
	VerifyReader() VerifyReader
}

// VerifyReader reads the destination's side of a verification: the
// same canonical rows, range checksums and keys as the source's
// (verify/pgverify documents the form). byteOrder: ranges of text keys
// are in byte order (the two ends' collations differ).
type VerifyReader interface {
	ServerVersion(ctx context.Context) (int, error)
	KeyCollations(ctx context.Context, t *proto.VerifyTable) ([]string, error)
	Checksums(ctx context.Context, t *proto.VerifyTable, byteOrder bool, ranges []proto.KeyRange) ([]proto.RangeSum, error)
	Rows(ctx context.Context, t *proto.VerifyTable, byteOrder bool, r proto.KeyRange) ([]proto.VerifyRow, error)
	RowsByKey(ctx context.Context, t *proto.VerifyTable, keys [][]string) ([]proto.VerifyRow, error)
}

// Repairer writes the source's rows of keys at the destination (an
// upsert; a key the source lacks is deleted). It first takes the table's
// apply positions (the lock each apply of the table takes), so the
// running apply waits meanwhile, then calls read for the source's rows
// (SourceRows): every change of those rows that the
// source made after the positions is still to come, and lands on top.
// Positions do not move. It returns how many rows it wrote or deleted.
type Repairer interface {
	Repair(ctx context.Context, task string, t *proto.VerifyTable, keys [][]string, read func(context.Context) (*SourceRows, error)) (int, error)
	// RepairKeyless makes a keyless table's multiset match: each row (in
	// canonical form, by its hash) gets Count more copies, or -Count
	// fewer. It returns how many rows it wrote or deleted.
	RepairKeyless(ctx context.Context, task string, t *proto.VerifyTable, rows []proto.VerifyRow) (int, error)
}

// PausedRepairer is a Repairer whose destination cannot hold the
// table's apply positions (its positions are written by the running
// apply, which takes no lock a repair could hold: Kafka, Doris). When
// RepairsPaused, a verification repairs it with the task paused: the
// task's apply units stop before Repair or RepairKeyless is called and
// run again after it returns, and every change the source made after
// the positions the units stopped at lands on top of what the repair
// wrote, as with a held position.
type PausedRepairer interface {
	Repairer
	RepairsPaused() bool
}

// SourceRows are a repair's read of the source's rows: by key
// (pgverify.KeyString of the canonical key), the text of each compared
// column, nil for NULL; a key missing from the map is gone at the
// source. LSN is the source's WAL position once they were read (every
// change those rows had is below it).
type SourceRows struct {
	Rows map[string][]*string
	LSN  proto.LSN
}
