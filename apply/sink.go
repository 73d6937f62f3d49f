// Package apply holds the sink contract, the apply worker that moves a
// table group's changes from JetStream into a sink, and the helpers every
// destination shares (coalescing). One package per destination implements
// the contract: apply/postgres, later apply/doris and apply/kafka.
package apply

import (
	"context"
	"errors"
	"io"

	"github.com/sluicedb/sluice/proto"
)

// Sink is the minimal base every destination implements; what it can do
// is said by the capability interfaces below.
type Sink interface {
	Close(ctx context.Context) error
}

// ChangeApplier writes incremental changes exactly once (invariant 2):
// the changes and the new last position of each table are stored in one
// atomic step, and a write whose epoch is lower than the stored one is
// refused with ErrFenced (invariant 3).
type ChangeApplier interface {
	Sink
	// Offsets returns the last applied position of each of the task's
	// tables, keyed by proto.TableID.Key().
	Offsets(ctx context.Context, task string) (map[string]proto.Position, error)
	// Apply writes the changes and their positions atomically.
	Apply(ctx context.Context, ch *Changes) error
}

// Snapshotter loads full-sync chunks.
type Snapshotter interface {
	Sink
	// BeginTable empties the table before its first chunk is loaded, so a
	// copy interrupted half-way restarts clean.
	BeginTable(ctx context.Context, t proto.TableID) error
	// CopyChunk loads rows in a PostgreSQL COPY format from r and returns
	// how many it loaded. Every sink reads CopyText.
	CopyChunk(ctx context.Context, t proto.TableID, columns []string, format proto.CopyFormat, r io.Reader) (int64, error)
	// CopyFormatFor is the cheapest format the sink reads for a table
	// from a source of the given PostgreSQL major version.
	CopyFormatFor(ctx context.Context, t *proto.TableDef, sourceMajor int) (proto.CopyFormat, error)
	// FinishTable stores the position the table's copy corresponds to:
	// changes at or below it are already in the copy and will be skipped.
	FinishTable(ctx context.Context, task string, t proto.TableID, at proto.Position, epoch uint64) error
}

// SchemaApplier creates the source's schema at the destination.
type SchemaApplier interface {
	Sink
	ApplyPreData(ctx context.Context, s *proto.Schema) error
	ApplyPostData(ctx context.Context, s *proto.Schema) error
	SyncSequences(ctx context.Context, s *proto.Schema) error
	// ExistingTables returns which tables already exist at the destination.
	ExistingTables(ctx context.Context, tables []proto.TableID) ([]proto.TableID, error)
}

// ErrFenced means another owner with a higher epoch has written the
// destination: this unit must stop (invariant 3).
var ErrFenced = errors.New("fenced: a newer owner of this unit has written the destination")

// Changes is what one Apply call writes: runs of rows per table, each run
// in position order, every row above the table's stored position.
type Changes struct {
	Task  string
	Epoch uint64
	// Segments in arrival order. A table can have several segments when its
	// description changed between batches.
	Segments []*Segment
	// Positions is the new last position per table (TableID.Key()).
	Positions map[string]proto.Position
	// Tables maps the keys of Positions back to table names.
	Tables map[string]proto.TableID
}

// Segment is consecutive rows of one table with one column description.
type Segment struct {
	Table    proto.TableID
	Columns  []proto.Column
	Identity byte
	Rows     []proto.Row
}

// Rows counts the rows in all segments.
func (c *Changes) Rows() int {
	n := 0
	for _, s := range c.Segments {
		n += len(s.Rows)
	}
	return n
}
