package kafka

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// Full sync. A table's plan record binds it to the full-sync plan that
// loads it, and the table's load begins with a truncate message; each
// chunk is one transaction of the copy unit whose share holds it, with
// the chunk's record, so a chunk retried or taken over is written once.
// Messages of a plan that was replaced stay in the topics (Kafka cannot
// take them back), before the new plan's truncate.

// CopyFormatFor: the sink parses COPY's text form.
func (s *Sink) CopyFormatFor(context.Context, *proto.TableDef, int) (proto.CopyFormat, error) {
	return proto.CopyText, nil
}

// BeginTable binds table t to plan. Unless keep, it also writes a
// truncate of the table (op t, to every partition) in the same
// transaction: a topic cannot be emptied, but a reader that folds it
// then drops what an earlier plan or an earlier task of the name left,
// as the PostgreSQL sink empties the table.
func (s *Sink) BeginTable(ctx context.Context, task string, t proto.TableID, plan uint64, keep bool) error {
	if err := s.syncOwn(ctx, task); err != nil {
		return err
	}
	tables := s.log.tables(task)
	if cur := tables[t.Key()]; cur.plan > plan {
		return fmt.Errorf("%w: a newer full-sync plan than %d loads %s", apply.ErrFenced, plan, t)
	}
	msgs := []*sarama.ProducerMessage{s.log.message(recordKey{Task: task, Kind: "plan", Table: t.Key()}, &record{Plan: plan})}
	if !keep {
		pl, err := s.place(t, nil)
		if err != nil {
			return err
		}
		truncate := &Event{Database: s.opts.Database, Table: t, Row: &proto.Row{Op: proto.OpTruncate, CommitTimeUS: time.Now().UnixMicro()}}
		out, err := s.rowMessages(ctx, pl, truncate)
		if err != nil {
			return err
		}
		msgs = append(out, msgs...)
	}
	if err := s.write(msgs); err != nil {
		return err
	}
	return s.syncOwn(ctx, task)
}

// FinishTable closes t to chunks and stores its copy's position.
func (s *Sink) FinishTable(ctx context.Context, task string, t proto.TableID, plan uint64, at proto.Position, epoch uint64) error {
	if err := s.syncOwn(ctx, task); err != nil {
		return err
	}
	tables := s.log.tables(task)
	cur := tables[t.Key()]
	if cur.plan != plan {
		return fmt.Errorf("%w: %s is not loaded by full-sync plan %d", apply.ErrFenced, t, plan)
	}
	if cur.epoch > epoch {
		return fmt.Errorf("%w: %s was written with epoch %d, this writer has %d", apply.ErrFenced, t, cur.epoch, epoch)
	}
	msgs := []*sarama.ProducerMessage{
		s.log.message(recordKey{Task: task, Kind: "plan", Table: t.Key()}, &record{Plan: plan, Finished: true}),
		s.log.message(recordKey{Task: task, Kind: "pos", Table: t.Key()}, posRecord(at, epoch)),
	}
	if err := s.write(msgs); err != nil {
		return err
	}
	return s.syncOwn(ctx, task)
}

// CopyChunk writes a chunk's rows as snapshot messages (op r) and the
// chunk's record in one transaction, unless the chunk is written already.
// It writes through the sink's own producer: the copy unit's
// transactional id (sluice.<task>.copy.<share>) names the share of the
// plan that holds the chunk, so a second owner of the share fences the
// first, and finds the chunk's record if the first committed it. When a
// crashed process left a chunk's transaction open, the share's next
// owner aborts it as it starts, whatever chunk it loads first: until
// then read_committed readers, this sink's offsets reads included, wait
// at that transaction.
func (s *Sink) CopyChunk(ctx context.Context, c apply.ChunkLoad, read func(w io.Writer) (int64, error)) (int64, error) {
	if err := s.syncOwn(ctx, c.Task); err != nil {
		return 0, err
	}
	if rows, done := s.log.chunk(c.Task, recordKey{Table: c.Table.Key(), Plan: c.Plan, Chunk: c.Chunk}); done {
		return rows, nil // written by an earlier attempt
	}
	if cur := s.log.tables(c.Task)[c.Table.Key()]; cur.plan != c.Plan || cur.finished {
		return 0, fmt.Errorf("%w: %s is loaded by full-sync plan %d (finished: %t), not %d", apply.ErrFenced, c.Table, cur.plan, cur.finished, c.Plan)
	}
	p, err := s.producer()
	if err != nil {
		return 0, err
	}
	cols := make([]proto.Column, len(c.Columns))
	for i, name := range c.Columns {
		cols[i] = proto.Column{Name: name, Key: slices.Contains(c.Key, name)}
		if i < len(c.Types) {
			cols[i].TypeOID = c.Types[i]
		}
	}
	pl, err := s.place(c.Table, cols)
	if err != nil {
		return 0, err
	}

	fail := func(err error) (int64, error) {
		if p.IsTransactional() {
			_ = p.AbortTxn()
		}
		s.dropProducer(p)
		return 0, classify(err)
	}
	if p.IsTransactional() {
		if err := p.BeginTxn(); err != nil {
			return fail(err)
		}
	}
	pr, done := apply.PipeChunk(read)
	var rows int64
	batch := make([]*sarama.ProducerMessage, 0, 512)
	flush := func() error {
		err := sendAll(p, batch)
		batch = batch[:0]
		return err
	}
	in := pgvalue.NewCopyTextReader(pr, len(cols))
	for {
		// The row is encoded before the next is read, which reuses its
		// memory.
		var t proto.Tuple
		if t, err = in.Next(); err != nil {
			break
		}
		// Snapshot rows sit at the snapshot's LSN, read now.
		ev := &Event{Database: s.opts.Database, Table: c.Table, Columns: cols, Snapshot: true,
			Row: &proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: c.SnapshotLSN}, CommitTimeUS: time.Now().UnixMicro(), New: t}}
		var out []*sarama.ProducerMessage
		if out, err = s.rowMessages(ctx, pl, ev); err != nil {
			break
		}
		rows++
		if batch = append(batch, out...); len(batch) == cap(batch) {
			if err = flush(); err != nil {
				break
			}
		}
	}
	if err == io.EOF {
		err = nil
	}
	if rerr := done(); rerr != nil && err == nil {
		err = rerr
	}
	if err == nil {
		batch = append(batch, s.log.message(recordKey{Task: c.Task, Kind: "chunk", Table: c.Table.Key(), Plan: c.Plan, Chunk: c.Chunk}, &record{Rows: rows}))
		err = flush()
	}
	if err != nil {
		return fail(err)
	}
	if p.IsTransactional() {
		if err := p.CommitTxn(); err != nil {
			return fail(err)
		}
	}
	return rows, nil
}
