package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/proto"
)

// The offsets topic (compacted, one partition) is the sink's memory, the
// Kafka side of invariant 2: every transaction that writes messages also
// writes the new position of each table it touched, the loaded full-sync
// chunk, or the table's plan, as a record here. Read back with
// read_committed, it holds exactly what committed: an aborted or fenced
// transaction's messages and positions vanish together.
//
// Records are keyed by what they describe, so compaction keeps the
// newest of each; a task's reset record drops what came before it.

// recordKey identifies an offsets record.
type recordKey struct {
	Task  string `json:"task"`
	Kind  string `json:"kind"` // pos | plan | chunk | reset | sync
	Table string `json:"table,omitempty"`
	Plan  uint64 `json:"plan,omitempty"`
	Chunk int    `json:"chunk,omitempty"`
	// Unit: a sync record's writer (one key each, so compaction keeps
	// one record per unit).
	Unit string `json:"unit,omitempty"`
}

// record is an offsets record's value.
type record struct {
	LSN      string `json:"lsn,omitempty"`
	Idx      uint32 `json:"idx,omitempty"`
	Epoch    uint64 `json:"epoch,omitempty"`
	Plan     uint64 `json:"plan,omitempty"`
	Finished bool   `json:"finished,omitempty"`
	Rows     int64  `json:"rows,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
}

// message is an offsets record to write (a nil v is a tombstone).
func (l *offsetLog) message(k recordKey, v *record) *sarama.ProducerMessage {
	kb, _ := json.Marshal(k)
	m := &sarama.ProducerMessage{Topic: l.topic, Partition: 0, Key: sarama.ByteEncoder(kb)}
	if v != nil {
		vb, _ := json.Marshal(v)
		m.Value = sarama.ByteEncoder(vb)
	}
	return m
}

func posRecord(p proto.Position, epoch uint64) *record {
	return &record{LSN: p.LSN.String(), Idx: p.Idx, Epoch: epoch}
}

// tableState is what the offsets topic says of one table.
type tableState struct {
	pos      proto.Position
	epoch    uint64
	plan     uint64
	finished bool
}

// taskState is what the offsets topic says of one task.
type taskState struct {
	tables map[string]*tableState
	chunks map[recordKey]int64 // Table, Plan, Chunk set
}

func (s *taskState) table(k string) *tableState {
	t := s.tables[k]
	if t == nil {
		t = &tableState{}
		s.tables[k] = t
	}
	return t
}

// offsetLog reads the offsets topic into memory and keeps up with it.
type offsetLog struct {
	topic    string
	client   sarama.Client
	consumer sarama.Consumer

	mu    sync.Mutex
	pc    sarama.PartitionConsumer
	tasks map[string]*taskState
}

func newOffsetLog(client sarama.Client, topic string) (*offsetLog, error) {
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	return &offsetLog{topic: topic, client: client, consumer: c, tasks: map[string]*taskState{}}, nil
}

func (l *offsetLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pc != nil {
		l.pc.Close()
	}
	l.consumer.Close()
}

func (l *offsetLog) task(name string) *taskState {
	t := l.tasks[name]
	if t == nil {
		t = &taskState{tables: map[string]*tableState{}, chunks: map[recordKey]int64{}}
		l.tasks[name] = t
	}
	return t
}

// newNonce makes a sync record's key unique.
func newNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// catchUp reads the log up to the sync record the caller has just
// committed (nonce): read_committed delivers it only after every
// transaction before it has ended, so the state then holds everything
// committed before the caller's call.
func (l *offsetLog) catchUp(ctx context.Context, task, nonce string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pc == nil {
		pc, err := l.consumer.ConsumePartition(l.topic, 0, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("read offsets topic %s: %w", l.topic, err)
		}
		l.pc = pc
	}
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("offsets topic %s: the sync record did not come back within 2 minutes (a transaction left open?)", l.topic)
		case err := <-l.pc.Errors():
			return fmt.Errorf("read offsets topic %s: %w", l.topic, err)
		case m, ok := <-l.pc.Messages():
			if !ok {
				l.pc = nil
				return errors.New("offsets topic consumer closed")
			}
			var k recordKey
			if err := json.Unmarshal(m.Key, &k); err != nil {
				continue // not ours
			}
			if k.Kind == "sync" {
				var v record
				if json.Unmarshal(m.Value, &v) == nil && k.Task == task && v.Nonce == nonce {
					return nil
				}
				continue
			}
			l.apply(k, m.Value)
		}
	}
}

// apply folds one record into the state.
func (l *offsetLog) apply(k recordKey, value []byte) {
	if k.Kind == "reset" {
		delete(l.tasks, k.Task)
		return
	}
	var v record
	if value != nil && json.Unmarshal(value, &v) != nil {
		return
	}
	ts := l.task(k.Task)
	switch k.Kind {
	case "pos":
		if value == nil {
			delete(ts.tables, k.Table)
			return
		}
		lsn, err := proto.ParseLSN(v.LSN)
		if err != nil {
			return
		}
		t := ts.table(k.Table)
		t.pos, t.epoch = proto.Position{LSN: lsn, Idx: v.Idx}, v.Epoch
	case "plan":
		t := ts.table(k.Table)
		t.plan, t.finished = v.Plan, v.Finished
		if v.Finished {
			for ck := range ts.chunks {
				if ck.Table == k.Table {
					delete(ts.chunks, ck)
				}
			}
		}
	case "chunk":
		ts.chunks[recordKey{Table: k.Table, Plan: k.Plan, Chunk: k.Chunk}] = v.Rows
	}
}

// remember records positions the caller has just committed.
func (l *offsetLog) remember(task string, positions map[string]proto.Position, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.task(task)
	for k, p := range positions {
		t := ts.table(k)
		t.pos, t.epoch = p, epoch
	}
}

// tables returns a copy of what the log says of each of the task's
// tables.
func (l *offsetLog) tables(task string) map[string]tableState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]tableState{}
	if ts := l.tasks[task]; ts != nil {
		for k, t := range ts.tables {
			out[k] = *t
		}
	}
	return out
}

// table returns what the log says of one of the task's tables.
func (l *offsetLog) table(task, key string) (tableState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ts := l.tasks[task]; ts != nil {
		if t := ts.tables[key]; t != nil {
			return *t, true
		}
	}
	return tableState{}, false
}

// chunk returns the rows of a chunk the log records as written (Table,
// Plan and Chunk of key set).
func (l *offsetLog) chunk(task string, key recordKey) (rows int64, written bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ts := l.tasks[task]; ts != nil {
		rows, written = ts.chunks[key]
	}
	return rows, written
}
