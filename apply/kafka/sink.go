// Package kafka is the Kafka destination: every change becomes a message
// in the chosen format (Debezium or Canal JSON, Avro), written by an
// idempotent, transactional producer together with the positions it
// reaches (offsets.go), so each change lands once even across crashes
// and failovers.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// Compile-time checks that the sink keeps the contract.
var (
	_ apply.TaskSink        = (*Sink)(nil)
	_ apply.DDLApplier      = (*Sink)(nil)
	_ apply.HeartbeatWriter = (*Sink)(nil)
)

// Sink writes one task's messages to a Kafka cluster.
type Sink struct {
	opts   Options
	logger *slog.Logger
	cfg    *sarama.Config
	client sarama.Client
	log    *offsetLog
	enc    Encoder

	// now is the clock that spaces heartbeat messages (tests move it).
	now func() time.Time

	mu         sync.Mutex
	prod       sarama.SyncProducer
	admin      sarama.ClusterAdmin
	partitions map[string]int // topic → partition count
	// lastHeartbeat is when the last heartbeat message was written.
	lastHeartbeat time.Time
}

// Open connects to the brokers, makes sure the offsets topic exists, and
// prepares the format's encoder. Producing starts at the first write.
func Open(ctx context.Context, opts Options) (*Sink, error) {
	if len(opts.Config.Brokers) == 0 {
		return nil, errors.New("kafka sink: brokers are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DefaultTopic == "" {
		opts.DefaultTopic = opts.Config.Topic
	}
	if opts.DefaultTopic == "" {
		opts.DefaultTopic = opts.Task
	}
	cfg, err := opts.saramaConfig("")
	if err != nil {
		return nil, err
	}
	registry, err := secret.ResolveField(opts.Config.SchemaRegistry)
	if err != nil {
		return nil, fmt.Errorf("destination.schema_registry: %w", err)
	}
	proto.ReplaceSecrets(registry, func(pw string) string { secret.Register(pw); return pw })
	enc, err := NewEncoder(FormatConfig{
		Format: choice(opts.Config.Format, Formats), SchemaRegistry: registry, TaskName: opts.Task,
	})
	if err != nil {
		return nil, err
	}
	client, err := connect(ctx, opts.Config.Brokers, cfg)
	if err != nil {
		return nil, err
	}
	s := &Sink{opts: opts, logger: opts.Logger, cfg: cfg, client: client, enc: enc, now: time.Now, partitions: map[string]int{}}
	if err := s.ensureTopic(opts.Config.OffsetsTopicName(), 1, map[string]*string{"cleanup.policy": ptr("compact")}); err != nil {
		client.Close()
		return nil, err
	}
	if s.log, err = newOffsetLog(client, opts.Config.OffsetsTopicName()); err != nil {
		client.Close()
		return nil, err
	}
	// Opening takes the unit over: its producer starts now, which fences
	// an earlier owner and aborts a transaction a crashed one left open
	// (read_committed readers wait at it until then).
	if opts.TransactionalID != "" {
		if _, err := s.producer(); err != nil {
			s.Close(ctx)
			return nil, err
		}
	}
	return s, nil
}

// connect opens a client, giving up when ctx ends (sarama's own dialing
// is bounded by its timeouts, not by a context).
func connect(ctx context.Context, brokers []string, cfg *sarama.Config) (sarama.Client, error) {
	type result struct {
		c   sarama.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		// A panic in sarama's dialing is this connect's error: the sink
		// does not open, and the unit opening it fails and retries.
		var c sarama.Client
		err := safe.Run("kafka/connect", func() (err error) {
			c, err = sarama.NewClient(brokers, cfg)
			return err
		})
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			hint := ""
			if (cfg.Net.SASL.Enable || cfg.Net.TLS.Enable) && strings.Contains(r.err.Error(), "EOF") {
				// Brokers close the connection on a failed login or a
				// TLS mismatch, which reads as a bare EOF.
				hint = " (the brokers closed the connection: check destination.sasl's user and password, and whether the listener expects TLS)"
			}
			return nil, fmt.Errorf("connect to kafka brokers %s: %w%s", strings.Join(brokers, ","), r.err, hint)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			// The caller has gone (ctx ended) and owns nothing to fail:
			// a panic closing the late client is only logged and counted.
			_ = safe.Run("kafka/connect", func() error {
				if r := <-done; r.c != nil {
					r.c.Close()
				}
				return nil
			})
		}()
		return nil, ctx.Err()
	}
}

func ptr[T any](v T) *T { return &v }

// Close ends the producer and the connections.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropProducerLocked()
	if s.admin != nil {
		s.admin.Close()
	}
	s.log.close()
	return s.client.Close()
}

// producer returns the sink's producer, creating it: with a
// transactional id its creation fences any other producer of the id
// (InitProducerId aborts what that one left open).
func (s *Sink) producer() (sarama.SyncProducer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prod != nil {
		return s.prod, nil
	}
	txnID := ""
	if s.opts.Config.ExactlyOnceEnabled() {
		txnID = s.opts.TransactionalID
	}
	p, err := s.newProducer(txnID)
	if err != nil {
		return nil, err
	}
	s.prod = p
	return p, nil
}

func (s *Sink) newProducer(txnID string) (sarama.SyncProducer, error) {
	cfg, err := s.opts.saramaConfig(txnID)
	if err != nil {
		return nil, err
	}
	p, err := sarama.NewSyncProducer(s.opts.Config.Brokers, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("start kafka producer %q: %w", txnID, err))
	}
	return p, nil
}

func (s *Sink) dropProducerLocked() {
	if s.prod != nil {
		s.prod.Close()
		s.prod = nil
	}
}

// write sends msgs in one transaction when the producer has one; on any
// failure the producer is dropped (the next write starts a new one).
func (s *Sink) write(msgs []*sarama.ProducerMessage) error {
	p, err := s.producer()
	if err != nil {
		return err
	}
	if err := send(p, msgs); err != nil {
		s.dropProducer(p)
		return err
	}
	return nil
}

// dropProducer ends p after a failure, unless another call replaced it.
func (s *Sink) dropProducer(p sarama.SyncProducer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prod == p {
		s.dropProducerLocked()
	}
}

// send writes msgs through p, as one transaction if p is transactional.
func send(p sarama.SyncProducer, msgs []*sarama.ProducerMessage) error {
	if !p.IsTransactional() {
		return classify(sendAll(p, msgs))
	}
	if err := p.BeginTxn(); err != nil {
		return classify(fmt.Errorf("begin kafka transaction: %w", err))
	}
	if err := sendAll(p, msgs); err != nil {
		_ = p.AbortTxn()
		return classify(err)
	}
	if err := p.CommitTxn(); err != nil {
		_ = p.AbortTxn()
		return classify(fmt.Errorf("commit kafka transaction: %w", err))
	}
	return nil
}

// sendAll sends in slices, so one request never holds a whole batch.
func sendAll(p sarama.SyncProducer, msgs []*sarama.ProducerMessage) error {
	const step = 2000
	for len(msgs) > 0 {
		n := min(step, len(msgs))
		if err := p.SendMessages(msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// classify marks a fenced producer's errors as apply.ErrFenced: another
// owner of the unit started a producer with the same transactional id.
// (PRODUCER_FENCED is error 90, INVALID_PRODUCER_EPOCH 47.)
func classify(err error) error {
	if err == nil {
		return nil
	}
	fenced := errors.Is(err, sarama.ErrProducerFenced) || errors.Is(err, sarama.ErrInvalidProducerEpoch)
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			fenced = fenced || errors.Is(pe.Err, sarama.ErrProducerFenced) || errors.Is(pe.Err, sarama.ErrInvalidProducerEpoch)
		}
		if len(perrs) > 0 && !fenced {
			err = fmt.Errorf("%d messages failed, first: %w", len(perrs), perrs[0].Err)
		}
	}
	if fenced || strings.Contains(err.Error(), "Error code = 90") {
		return fmt.Errorf("%w: %v", apply.ErrFenced, err)
	}
	return err
}

// sync brings the offsets state up to date: it commits a sync record
// through p and reads the log until that record comes back.
func (s *Sink) sync(ctx context.Context, task string, p sarama.SyncProducer, unit string) error {
	nonce := newNonce()
	m := s.log.message(recordKey{Task: task, Kind: "sync", Unit: unit}, &record{Nonce: nonce})
	if err := send(p, []*sarama.ProducerMessage{m}); err != nil {
		return err
	}
	return s.log.catchUp(ctx, task, nonce)
}

// syncOwn syncs through the sink's own producer.
func (s *Sink) syncOwn(ctx context.Context, task string) error {
	p, err := s.producer()
	if err != nil {
		return err
	}
	if err := s.sync(ctx, task, p, s.opts.TransactionalID); err != nil {
		s.dropProducer(p)
		return err
	}
	return nil
}

// Offsets returns the last position written of each of the task's
// tables. Starting the producer first fences an older owner, so what is
// read is final.
func (s *Sink) Offsets(ctx context.Context, task string) (map[string]proto.Position, error) {
	if err := s.syncOwn(ctx, task); err != nil {
		return nil, err
	}
	tables := s.log.tables(task)
	out := make(map[string]proto.Position, len(tables))
	for k, t := range tables {
		if !t.pos.IsZero() {
			out[k] = t.pos
		}
	}
	return out, nil
}

// ResetOffsets forgets a task's positions and chunks (a new task with the
// name of a deleted one).
func (s *Sink) ResetOffsets(ctx context.Context, task string) error {
	m := s.log.message(recordKey{Task: task, Kind: "reset"}, &record{})
	if err := s.write([]*sarama.ProducerMessage{m}); err != nil {
		return fmt.Errorf("reset positions in %s: %w", s.log.topic, err)
	}
	return s.syncOwn(ctx, task)
}

// Apply writes the changes as messages and the tables' new positions as
// offsets records, in one Kafka transaction.
func (s *Sink) Apply(ctx context.Context, ch *apply.Changes) error {
	tables := s.log.tables(ch.Task)
	for k := range ch.Positions {
		if t, ok := tables[k]; ok && t.epoch > ch.Epoch {
			return fmt.Errorf("%w: %s was written with epoch %d, this writer has %d", apply.ErrFenced, ch.Tables[k], t.epoch, ch.Epoch)
		}
	}
	var msgs []*sarama.ProducerMessage
	for _, seg := range ch.Segments {
		pl, err := s.place(seg.Table, seg.Columns)
		if err != nil {
			return err
		}
		// Rows at or below the stored position are written already (a
		// replay after a crash): invariant 2 skips them here too, not
		// only in the worker.
		floor := tables[seg.Table.Key()].pos
		for i := range seg.Rows {
			if !floor.Less(seg.Rows[i].Pos) {
				continue
			}
			for _, row := range splitKeyChange(seg.Columns, seg.Identity, &seg.Rows[i]) {
				out, err := s.rowMessages(ctx, pl, &Event{Database: s.opts.Database, Table: seg.Table, Columns: seg.Columns, Row: row})
				if err != nil {
					return err
				}
				msgs = append(msgs, out...)
			}
		}
	}
	for k, pos := range ch.Positions {
		msgs = append(msgs, s.log.message(recordKey{Task: ch.Task, Kind: "pos", Table: k}, posRecord(pos, ch.Epoch)))
	}
	if err := s.write(msgs); err != nil {
		return err
	}
	s.log.remember(ch.Task, ch.Positions, ch.Epoch)
	return nil
}

// splitKeyChange turns an update that changes the row's key into a
// delete of the old key and an insert of the new one, as Debezium does:
// readers keyed by the message key (compaction, per-key state) see the
// old key go away, and each message goes to its key's partition, in
// order with that key's other changes. A table without a key is keyed by
// all its columns, so there every update that changes a value is split.
// (An update carries its old row only when the key changed, or under
// REPLICA IDENTITY FULL, where the old row also fills the new one's
// unchanged TOAST values.)
func splitKeyChange(cols []proto.Column, identity byte, r *proto.Row) []*proto.Row {
	if r.Op != proto.OpUpdate || r.Old.Len() != len(cols) || r.New.Len() != len(cols) {
		return []*proto.Row{r}
	}
	keyed, changed := hasKey(cols), false
	for i := range cols {
		if keyColumn(cols, i, keyed) && (r.Old.Kinds[i] != r.New.Kinds[i] || string(r.Old.Values[i]) != string(r.New.Values[i])) {
			changed = true
			break
		}
	}
	if !changed {
		return []*proto.Row{r}
	}
	del, ins := *r, *r
	del.Op, del.New = proto.OpDelete, proto.Tuple{}
	ins.Op, ins.Old = proto.OpInsert, proto.Tuple{}
	if identity == proto.IdentityFull && slices.Contains(r.New.Kinds, proto.KindToast) {
		ins.New = proto.Tuple{Kinds: slices.Clone(r.New.Kinds), Values: slices.Clone(r.New.Values)}
		for i, k := range ins.New.Kinds {
			if k == proto.KindToast {
				ins.New.Kinds[i], ins.New.Values[i] = r.Old.Kinds[i], r.Old.Values[i]
			}
		}
	}
	return []*proto.Row{&del, &ins}
}

// rowMessages encodes one row: one message, or, for a truncate, one per
// partition, so that every partition's readers see it in order.
func (s *Sink) rowMessages(ctx context.Context, pl placement, ev *Event) ([]*sarama.ProducerMessage, error) {
	key, value, err := s.enc.Encode(ctx, pl.topic, ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s row of %s: %w", ev.Row.Op, ev.Table, err)
	}
	if ev.Row.Op == proto.OpTruncate {
		out := make([]*sarama.ProducerMessage, pl.partitions)
		for p := range out {
			out[p] = &sarama.ProducerMessage{Topic: pl.topic, Partition: int32(p), Value: sarama.ByteEncoder(value)}
		}
		return out, nil
	}
	m := &sarama.ProducerMessage{Topic: pl.topic, Partition: s.partitionOf(pl, ev), Value: sarama.ByteEncoder(value)}
	if key != nil {
		m.Key = sarama.ByteEncoder(key)
	}
	return []*sarama.ProducerMessage{m}, nil
}

// ApplyDDL writes a schema change as a message (to the DDL topic, or the
// table's) with the table's position, in one transaction. A message
// carries the whole change, so it is written when ops select any of the
// operations the change makes; otherwise only the position is stored.
func (s *Sink) ApplyDDL(ctx context.Context, task string, epoch uint64, ev *proto.DDLEvent, names *proto.NameMap, ops proto.DDLOpSet) error {
	table := names.Table(ev.Table())
	keys := []string{table.Key()}
	if ev.Renamed() || ev.WaitOnly {
		keys = append(keys, names.Table(ev.New.ID).Key())
	}
	tables := s.log.tables(task)
	if t, ok := tables[keys[0]]; ok && !t.pos.Less(ev.Pos) && !ev.WaitOnly {
		return nil // written already
	}
	var msgs []*sarama.ProducerMessage
	if !ev.WaitOnly && (ops == nil || slices.ContainsFunc(ev.Operations(), ops.Has)) {
		route := s.opts.route(table)
		topic := route.Topic
		if s.opts.Config.DDLTopic != "" {
			topic = s.opts.Config.DDLTopic
		}
		if err := s.ensureTopic(topic, route.Partitions, nil); err != nil {
			return err
		}
		msg := &Event{Database: s.opts.Database, Table: table, DDL: ev}
		if ev.Renamed() {
			msg.NewTable = names.Table(ev.New.ID)
		}
		_, value, err := s.enc.Encode(ctx, topic, msg)
		if err != nil {
			return fmt.Errorf("encode schema change of %s: %w", table, err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.ByteEncoder(value)})
	}
	positions := map[string]proto.Position{}
	for _, k := range keys {
		positions[k] = ev.Pos
		msgs = append(msgs, s.log.message(recordKey{Task: task, Kind: "pos", Table: k}, posRecord(ev.Pos, epoch)))
	}
	if err := s.write(msgs); err != nil {
		return err
	}
	s.log.remember(task, positions, epoch)
	return nil
}
