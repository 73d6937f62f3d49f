// Package apply holds the sink contract, the apply worker that moves a
// table group's changes from JetStream into a sink, and the helpers every
// destination shares (coalescing). One package per destination implements
// the contract: apply/postgres, later apply/doris and apply/kafka.
package apply

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/sluicedb/sluice/internal/safe"
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

// Snapshotter loads full-sync chunks. Copy units on several nodes load
// the chunks of one plan (coordinator.FullSyncPlan) side by side; the sink
// makes each chunk land exactly once, however often it is retried and by
// whichever owner, and keeps chunks of a replaced plan out.
type Snapshotter interface {
	Sink
	// BeginTable empties the table (unless keep: a table that existed
	// before the task keeps its rows) and binds it to plan: from then on
	// only chunks of that plan load into it. It fails with ErrFenced when
	// a newer plan holds the table.
	BeginTable(ctx context.Context, task string, t proto.TableID, plan uint64, keep bool) error
	// CopyChunk loads one chunk: unless the chunk is already loaded, it
	// calls read to stream its rows in c.Format, and records the chunk in
	// the same transaction as the rows. It returns the chunk's rows, and
	// ErrFenced when the table is bound to another plan or finished. Every
	// sink reads CopyText.
	CopyChunk(ctx context.Context, c ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error)
	// CopyFormatFor is the cheapest format the sink reads for a table
	// from a source of the given PostgreSQL major version.
	CopyFormatFor(ctx context.Context, t *proto.TableDef, sourceMajor int) (proto.CopyFormat, error)
	// FinishTable closes the table to chunks of plan and stores the
	// position its copy corresponds to: changes at or below it are already
	// in the copy and will be skipped.
	FinishTable(ctx context.Context, task string, t proto.TableID, plan uint64, at proto.Position, epoch uint64) error
}

// ChunkLoad names a full-sync chunk at the destination.
type ChunkLoad struct {
	Task    string
	Plan    uint64
	Table   proto.TableID
	Chunk   int // its index among the table's chunks in the plan
	Columns []string
	// Types are the columns' type OIDs and Key names the key columns:
	// sinks that encode rows themselves (Kafka) need them.
	Types []uint32
	Key   []string
	// SnapshotLSN is where the plan's snapshot cuts the source's history.
	SnapshotLSN proto.LSN
	Format      proto.CopyFormat
	// Keep: the table kept its own rows; a row whose key it has already
	// is left as it is (conflicting_tables: ignore).
	Keep bool
}

// pipeChunkBuffer is how much of a chunk's COPY data crosses the pipe
// at once. The source sends one COPY message per row and pgconn writes
// each with its own Write; unbuffered, every row would cross the pipe
// alone and pgconn's CopyFrom would send it as its own CopyData message,
// a system call per row at both ends. 64 KiB less CopyData's 5-byte
// header is what CopyFrom reads into its 64 KiB buffer in one go.
const pipeChunkBuffer = 64<<10 - 5

// PipeChunk runs a chunk's read into a pipe for the sink to consume from
// r, in pieces of up to pipeChunkBuffer bytes. done stops the reading (if
// the sink stopped early) and returns read's error.
func PipeChunk(read func(w io.Writer) (int64, error)) (r io.Reader, done func() error) {
	pr, pw := io.Pipe()
	readErr := make(chan error, 1)
	go func() {
		// A panic in read is the chunk's error: the sink's side of the
		// pipe fails with it and done returns it, so the copy unit
		// retries the chunk (which lands once: the chunk is recorded in
		// its own transaction).
		err := safe.Run("copy/read", func() error {
			bw := bufio.NewWriterSize(pw, pipeChunkBuffer)
			if _, err := read(bw); err != nil {
				return err
			}
			return bw.Flush()
		})
		pw.CloseWithError(err)
		readErr <- err
	}()
	return pr, func() error {
		pr.CloseWithError(errors.New("the destination stopped reading"))
		return <-readErr
	}
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

// DDLApplier applies the source's schema changes (DDL sync).
type DDLApplier interface {
	Sink
	// ApplyDDL makes the destination table of ev.Old (names maps source
	// names to the destination's) look like ev.New, running only the
	// operations in ops, and stores ev.Pos as the table's position in the
	// same transaction (under both names on a rename): a retried event
	// changes nothing. An event at or below the stored position is
	// skipped. A WaitOnly event waits until the destination has the
	// renamed table, then stores its position.
	ApplyDDL(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, names *proto.NameMap, ops proto.DDLOpSet) error
}

// HeartbeatWriter is a destination that writes the source's heartbeats
// where readers see them (Kafka: a heartbeat message), so that a reader
// of an idle source still sees the stream alive and its position move.
// A sink decides itself whether it writes (the task's settings, whether
// its unit is the task's heartbeat writer) and how often: a call it does
// not act on returns nil.
type HeartbeatWriter interface {
	Sink
	// WriteHeartbeat writes hb, the newest source heartbeat of a batch
	// (its Pos and CommitTimeUS), after the batch's changes. An error
	// fails the batch: it is not acknowledged, and comes again.
	WriteHeartbeat(ctx context.Context, task string, epoch uint64, hb proto.Row) error
}

// ErrFenced means another owner with a higher epoch has written the
// destination: this unit must stop (invariant 3).
var ErrFenced = errors.New("fenced: a newer owner of this unit has written the destination")

// ErrStopTask marks a failure that retrying cannot mend and that the user
// asked to stop on (a two-way conflict under two_way.conflicts:
// task_failed): the task fails at once, without a retry window, naming
// the cause; it runs again when resumed.
var ErrStopTask = errors.New("the task stops here")

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
