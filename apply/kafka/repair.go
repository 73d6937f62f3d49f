package kafka

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// Repair (sluice verify --repair) of a Kafka destination. A topic's
// positions are records the apply unit's own transactional producer
// writes with its messages, and nothing a repair could hold stops that
// producer: the sink is an apply.PausedRepairer, and the verification
// pauses the task around the repair (pipeline.Verify), so no apply unit
// writes meanwhile. The repair then writes its messages with a plain
// (idempotent, not transactional) producer of its own, in the task's
// format, to the topic and partition the sink writes the key's changes
// to, and writes no offsets record: the task's positions do not move,
// and when it resumes every change the source made after them lands on
// top, in order, as the last messages of their keys.
//
//   - A row the source has is written as a read of the row (Debezium's
//     op "r", Canal's INSERT, Avro's read), the message a full sync
//     writes and Debezium's own incremental snapshots write mid-stream:
//     a consumer takes it as the key's row, an upsert. Its source
//     position is the source's WAL position once the rows were read
//     (every change they had is below it): where a key's messages went
//     to two partitions (a partition_key of columns that changed), the
//     repair's message is the later one.
//   - A key the source lacks gets a delete of its row (its key columns
//     in the row before, the others NULL), as the sink writes a delete
//     captured under the default replica identity (no tombstone: the
//     sink writes none either).
//   - A keyless table's missing copies are written as reads; an extra
//     copy gets a delete whose row before is the whole row, which is
//     how the sink writes a keyless row's delete (REPLICA IDENTITY
//     FULL): a consumer that keeps copies takes one away. (These carry
//     no source position: a keyless row's messages all go to the one
//     partition its values hash to.)
//
// Values are the source's text (the keyless rows' canonical text, which
// is PostgreSQL's output under Sluice's session settings), encoded with
// the columns' source types (proto.VerifyTable.TypeOIDs) as the sink
// encodes captured rows.

var _ apply.PausedRepairer = (*Sink)(nil)

// RepairsPaused: the task is paused for a repair (apply.PausedRepairer).
func (s *Sink) RepairsPaused() bool { return true }

// repairColumns are the table's columns as the sink's events carry them.
func repairColumns(t *proto.VerifyTable) []proto.Column {
	cols := make([]proto.Column, len(t.DestColumns))
	for i, name := range t.DestColumns {
		c := proto.Column{Name: name, TypeMod: -1, Key: slices.Contains(t.Key, i)}
		if i < len(t.TypeOIDs) {
			c.TypeOID = t.TypeOIDs[i]
		}
		if i < len(t.TypeMods) {
			c.TypeMod = t.TypeMods[i]
		}
		cols[i] = c
	}
	return cols
}

// tupleOf is a row's text values as a captured tuple (nil: NULL).
func tupleOf(values []*string) proto.Tuple {
	tu := proto.Tuple{Kinds: make([]byte, len(values)), Values: make([][]byte, len(values))}
	for i, v := range values {
		if v == nil {
			tu.Kinds[i] = proto.KindNull
			continue
		}
		tu.Kinds[i], tu.Values[i] = proto.KindText, []byte(*v)
	}
	return tu
}

// Repair writes the source's rows of keys to the table's topic
// (apply.Repairer; the task is paused meanwhile).
func (s *Sink) Repair(ctx context.Context, task string, t *proto.VerifyTable, keys [][]string, read func(context.Context) (*apply.SourceRows, error)) (int, error) {
	if len(t.DestColumns) == 0 || t.Keyless() {
		return 0, fmt.Errorf("repair %s: a table without key columns is repaired as a multiset", t.Dest)
	}
	src, err := read(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the source's rows: %w", err)
	}
	rows, at := src.Rows, proto.Position{LSN: src.LSN}
	cols := repairColumns(t)
	pl, err := s.place(t.Dest, cols)
	if err != nil {
		return 0, err
	}
	now := time.Now().UnixMicro()
	var msgs []*sarama.ProducerMessage
	for _, key := range keys {
		raw, ok := rows[pgverify.KeyString(key)]
		if ok {
			if len(raw) != len(cols) {
				return 0, fmt.Errorf("repair %s: the source's row has %d values for %d columns", t.Dest, len(raw), len(cols))
			}
			out, err := s.rowMessages(ctx, pl, &Event{Database: s.opts.Database, Table: t.Dest, Columns: cols, Snapshot: true,
				Row: &proto.Row{Op: proto.OpInsert, Pos: at, CommitTimeUS: now, New: tupleOf(raw)}})
			if err != nil {
				return 0, err
			}
			msgs = append(msgs, out...)
			continue
		}
		// Gone at the source: a delete of the key (its key columns in
		// the row before, the others NULL, as PostgreSQL logs a delete
		// under the default replica identity).
		old := make([]*string, len(cols))
		for i, k := range t.Key {
			old[k] = &key[i]
		}
		out, err := s.rowMessages(ctx, pl, &Event{Database: s.opts.Database, Table: t.Dest, Columns: cols,
			Row: &proto.Row{Op: proto.OpDelete, Pos: at, CommitTimeUS: now, Old: tupleOf(old)}})
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, out...)
	}
	if len(msgs) > 0 {
		if err := s.write(msgs); err != nil {
			return 0, fmt.Errorf("repair %s: write to topic %s: %w", t.Dest, pl.topic, err)
		}
	}
	return len(keys), nil
}

// RepairKeyless writes a keyless table's missing copies as reads and
// deletes its extra ones (apply.Repairer; the task is paused).
func (s *Sink) RepairKeyless(ctx context.Context, task string, t *proto.VerifyTable, rows []proto.VerifyRow) (int, error) {
	cols := repairColumns(t)
	for i := range cols {
		cols[i].Key = false // keyed by every column, as the sink keys a keyless table
	}
	pl, err := s.place(t.Dest, cols)
	if err != nil {
		return 0, err
	}
	now := time.Now().UnixMicro()
	var msgs []*sarama.ProducerMessage
	n := 0
	for _, r := range rows {
		if len(r.Values) != len(cols) {
			return 0, fmt.Errorf("repair %s: a row has %d values for %d columns", t.Dest, len(r.Values), len(cols))
		}
		for range max(r.Count, -r.Count) {
			ev := &Event{Database: s.opts.Database, Table: t.Dest, Columns: cols, Snapshot: true,
				Row: &proto.Row{Op: proto.OpInsert, CommitTimeUS: now, New: tupleOf(r.Values)}}
			if r.Count < 0 {
				ev.Snapshot, ev.Row = false, &proto.Row{Op: proto.OpDelete, CommitTimeUS: now, Old: tupleOf(r.Values)}
			}
			out, err := s.rowMessages(ctx, pl, ev)
			if err != nil {
				return 0, err
			}
			msgs = append(msgs, out...)
			n++
		}
	}
	if len(msgs) > 0 {
		if err := s.write(msgs); err != nil {
			return 0, fmt.Errorf("repair %s: write to topic %s: %w", t.Dest, pl.topic, err)
		}
	}
	return n, nil
}
