package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/internal/throttle"
	"github.com/sluicedb/sluice/proto"
)

// WorkerConfig configures the apply worker of one table group.
type WorkerConfig struct {
	Task      string
	Group     int
	JetStream jetstream.JetStream
	Sink      ChangeApplier
	// Epoch fences this worker's writes (invariant 3).
	Epoch  uint64
	Logger *slog.Logger
	// A batch is applied when it holds MaxBatchRows rows or MaxBatchBytes
	// bytes, or MaxWait after its first message, once the applier is
	// free. MaxWait defaults to 0 (as soon as the applier is free) unless
	// the sink asks for more (BatchPacer).
	MaxBatchRows  int
	MaxBatchBytes int
	MaxWait       time.Duration
	// PrefetchBytes bounds what the client pulls ahead (bounded memory).
	PrefetchBytes int
	Stats         *WorkerStats
	// Throttle, if set, holds each batch until its rows and bytes may pass
	// (task spec throttle.incremental).
	Throttle *throttle.Limiter
	// Names maps source tables and columns to the destination's (task
	// spec renames and name_case); nil keeps them.
	Names *proto.NameMap
	// DDLOps selects the schema changes applied (nil: all of them).
	DDLOps proto.DDLOpSet
	// Held, if set, tells a table (source name) whose changes must wait:
	// one added to the running task and not copied yet. The worker then
	// stops with a HeldError before taking any of them.
	Held func(proto.TableID) bool
	// TxBoundaries: a batch ends only at a source transaction boundary
	// (a marker of the capture, proto.Batch.IsBoundary), never inside a
	// transaction, for a sink that checks foreign keys as it commits
	// (TxBoundaryApplier). Set from the sink when it asks.
	TxBoundaries bool
	// Groups is the number of the task's apply groups: a change to an
	// object beside tables (proto.ObjectEvent) waits at the destination
	// until every one of them has reached it.
	Groups int
	// Transform, if set, computes the task's column transforms over each
	// batch of source rows as it is received, before any sink sees it
	// (apply/transform), and checks schema changes against them.
	Transform BatchTransformer
}

// BatchTransformer computes a task's column transforms (task spec
// objects[].transform, add_columns) over a batch of one source table's
// rows, in place: the same expressions the full sync's copy computes.
type BatchTransformer interface {
	Batch(ctx context.Context, b *proto.Batch) error
	// CheckDDL refuses a schema change that breaks a transform.
	CheckDDL(ev *proto.DDLEvent) error
}

// ObjectApplier is a sink that applies changes to the objects of a
// working copy beside tables (views, routines, triggers, types,
// comments). Every apply group of the task calls ApplyObject with each
// event, once it has applied everything before it; the sink applies the
// event once, when all groups have reached it, and returns in each
// group after that.
type ObjectApplier interface {
	ApplyObject(ctx context.Context, task string, epoch uint64, group, groups int, ev *proto.ObjectEvent, ops proto.DDLOpSet) error
}

// TxBoundaryApplier is a sink that must commit whole source transactions:
// one that cannot switch off foreign-key checks for the rows it writes.
type TxBoundaryApplier interface {
	NeedsTxBoundaries() bool
}

// HeldError stops a worker at the first change of a table that must wait
// (WorkerConfig.Held). Nothing of it was applied or acknowledged: started
// again once the table is ready, the worker reads the table's position
// (its copy's) and goes on from there.
type HeldError struct{ Table proto.TableID }

func (e *HeldError) Error() string {
	return fmt.Sprintf("changes of %s wait until the table is copied", e.Table)
}

// WorkerStats are a worker's counters, safe to read while it runs.
type WorkerStats struct {
	RowsApplied  atomic.Int64
	BytesApplied atomic.Int64 // of the change messages applied
	Batches      atomic.Int64
	DDLApplied   atomic.Int64 // schema changes applied (DDL sync)
	// Commit time (Unix µs) of the newest heartbeat applied, and when.
	HeartbeatCommitUS atomic.Int64
	HeartbeatSeenUS   atomic.Int64
	// StartedUS is when the worker started (Unix µs): a worker that has
	// applied no heartbeat since is at least that late.
	StartedUS atomic.Int64

	// tables: per table counts (tablestats.go).
	tablesMu sync.Mutex
	tables   map[proto.TableID]*TableCount
}

// BatchPacer is a sink that wants bigger, rarer batches than the
// defaults (Doris: one load per table per batch interval, as each load is
// a version the table must compact). The worker takes its policy for the
// settings the config leaves at zero.
type BatchPacer interface {
	BatchWait() BatchPolicy
}

// BatchPolicy bounds a batch: it is applied when it holds MaxRows rows or
// MaxBytes bytes, or MaxWait after its first message.
type BatchPolicy struct {
	MaxWait  time.Duration
	MaxRows  int
	MaxBytes int
}

func (c *WorkerConfig) setDefaults() error {
	if c.Task == "" || c.JetStream == nil || c.Sink == nil {
		return errors.New("apply: Task, JetStream and Sink are required")
	}
	if p, ok := c.Sink.(BatchPacer); ok {
		pol := p.BatchWait()
		if c.MaxWait <= 0 {
			c.MaxWait = pol.MaxWait
		}
		if c.MaxBatchRows <= 0 {
			c.MaxBatchRows = pol.MaxRows
		}
		if c.MaxBatchBytes <= 0 {
			c.MaxBatchBytes = pol.MaxBytes
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if b, ok := c.Sink.(TxBoundaryApplier); ok && b.NeedsTxBoundaries() {
		c.TxBoundaries = true
	}
	if c.MaxBatchRows <= 0 {
		// Big enough that a batch over many tables still writes many rows
		// per statement; MaxBatchBytes bounds its memory.
		c.MaxBatchRows = 50000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 8 << 20
	}
	// MaxWait stays 0 unless set or asked for by the sink: a batch then
	// goes to the applier as soon as it is free, and fills only while the
	// applier writes the one before (group commit), so a change on a
	// quiet stream waits for nothing and a busy stream still writes
	// batches of many.
	if c.PrefetchBytes <= 0 {
		c.PrefetchBytes = 8 << 20
	}
	if c.Stats == nil {
		c.Stats = &WorkerStats{}
	}
	return nil
}

// ErrDeliveryGap means a message was delivered by JetStream but never
// reached this worker (a connection cut, or another owner's pull still
// open in a failover). Applying what follows would skip it for good, so
// the worker stops; it resets the consumer to its ack floor when it
// restarts.
var ErrDeliveryGap = errors.New("a JetStream delivery was lost in transit; restarting the apply worker")

// RunWorker applies the group's changes until ctx ends or an error occurs.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	cfg.Stats.StartedUS.Store(time.Now().UnixMicro())
	offsets, err := cfg.Sink.Offsets(ctx, cfg.Task)
	if err != nil {
		return fmt.Errorf("read applied positions: %w", err)
	}
	// Messages delivered to a worker that died are still pending; left
	// alone they would come back only when their ack wait expires, after
	// later messages had been applied, and then be skipped as old. A reset
	// to the ack floor delivers everything unacknowledged again, in order,
	// before anything newer.
	stream, name := proto.StreamName(cfg.Task), ConsumerName(cfg.Group)
	if _, err := cfg.JetStream.ResetConsumer(ctx, stream, name); err != nil {
		return fmt.Errorf("reset consumer %s to its ack floor: %w", name, err)
	}
	cons, err := cfg.JetStream.Consumer(ctx, stream, name)
	if err != nil {
		return fmt.Errorf("open consumer %s: %w", name, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(10000, cfg.PrefetchBytes))
	if err != nil {
		return fmt.Errorf("pull from consumer %s: %w", name, err)
	}
	defer stopPulling(iter)
	w := &worker{cfg: &cfg, floors: offsets, iter: iter, rowsHint: map[string]int{}}
	// Collecting the next batch (receive, decode, filter) overlaps
	// applying the current one, so the destination is kept busy.
	batches := make(chan *collected)
	g, gctx := errgroup.WithContext(ctx)
	// A panic in either is the worker's error (it cancels the other):
	// RunWorker returns it, and the apply unit retries it.
	g.Go(safe.Go("apply/collect", func() error { return w.collect(gctx, batches) }))
	g.Go(safe.Go("apply/write", func() error {
		for {
			select {
			case b := <-batches:
				if err := w.apply(gctx, b); err != nil {
					return err
				}
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	}))
	err = g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// stopPulling ends the worker's pull and waits, briefly, until its
// subscription is gone. Until the server sees that, it keeps the pull
// request open and hands it what the next worker's reset delivers again;
// those messages would come back only after the ack wait (the next worker
// sees it: its first delivery is not the first, see receive). The
// unsubscription happens on the iterator's own goroutine; the iterator
// reports it (Closed checks the subscription on every call), so this polls.
func stopPulling(iter jetstream.MessagesContext) {
	iter.Stop()
	c, ok := iter.(interface{ Closed() <-chan struct{} })
	if !ok {
		return
	}
	for range 5000 {
		select {
		case <-c.Closed():
			return
		case <-time.After(time.Millisecond):
		}
	}
}

type worker struct {
	cfg *WorkerConfig
	// floors is the last position per table taken into a batch; it runs
	// ahead of what the destination has while a batch is being applied.
	// Should that batch fail, the worker stops and starts again from the
	// destination's positions.
	floors map[string]proto.Position
	// sources maps a destination table (renamed) back to its source's,
	// the name its counts go by.
	sources map[proto.TableID]proto.TableID
	iter    jetstream.MessagesContext
	lastSeq uint64 // consumer sequence of the last message received
	// parts of a batch split over several messages (one huge row)
	parts []byte
	// inTx: with TxBoundaries, the last message received was not a
	// boundary: the batch may not end yet.
	inTx bool
	// rowsHint is the rows of each table's last segment (see add).
	rowsHint map[string]int
}

// mayEnd reports whether the batch may end after the last message
// received: not inside a split batch, nor (TxBoundaries) inside a source
// transaction.
func (w *worker) mayEnd() bool { return w.parts == nil && !w.inTx }

// collected is a batch ready to apply.
type collected struct {
	ch   *Changes
	open map[string]*Segment
	last jetstream.Msg
	// heartbeat is the batch's newest source heartbeat (nil: none).
	heartbeat *proto.Row
	// ddl ends the batch: a schema change, applied after its rows; or
	// object, a change to an object beside tables.
	ddl      *proto.DDLEvent
	object   *proto.ObjectEvent
	rows     int
	bytes    int
	deadline time.Time
}

func (w *worker) newBatch() *collected {
	return &collected{
		ch:       &Changes{Task: w.cfg.Task, Epoch: w.cfg.Epoch, Positions: map[string]proto.Position{}, Tables: map[string]proto.TableID{}},
		open:     map[string]*Segment{},
		deadline: time.Now().Add(w.cfg.MaxWait),
	}
}

func (w *worker) full(b *collected) bool {
	maxRows, maxBytes := w.cfg.MaxBatchRows, w.cfg.MaxBatchBytes
	if w.cfg.Throttle != nil {
		// Under a throttle a batch holds at most a second's worth, so rows
		// keep arriving steadily instead of in bursts after long waits.
		rows, bytes, _ := w.cfg.Throttle.Limits()
		if rows > 0 {
			maxRows = min(maxRows, max(1, int(rows)))
		}
		if bytes > 0 {
			maxBytes = min(maxBytes, max(1, int(bytes)))
		}
	}
	return b.rows >= maxRows || b.bytes >= maxBytes
}

// collect receives messages into batches and hands each to the applier:
// when it is full, or once MaxWait has passed and the applier is free
// (while it is busy, the batch fills: each message is looked at, and the
// applier asked again, at least every millisecond). A
// batch never ends inside a split batch: the acknowledgement must not pass
// its first parts before its last one is applied; with TxBoundaries, nor
// inside a source transaction.
func (w *worker) collect(ctx context.Context, out chan<- *collected) error {
	var cur *collected
	for {
		// The polls below time out and loop while the applier is busy;
		// when it failed, the context says so.
		if err := ctx.Err(); err != nil {
			return err
		}
		if cur != nil && w.mayEnd() {
			if w.full(cur) {
				select {
				case out <- cur:
					cur = nil
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if !time.Now().Before(cur.deadline) {
				select {
				case out <- cur:
					cur = nil
					continue
				default: // the applier is busy: keep filling
				}
			}
		}
		var msg jetstream.Msg
		var err error
		switch {
		case cur == nil || !w.mayEnd():
			msg, err = w.iter.Next(jetstream.NextContext(ctx))
		default:
			wait := time.Until(cur.deadline)
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
			msg, err = w.iter.Next(jetstream.NextMaxWait(wait))
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("receive from JetStream: %w", err)
		}
		if cur == nil {
			cur = w.newBatch()
		}
		if err := w.receive(ctx, cur, msg); err != nil {
			return err
		}
		if cur.ddl != nil || cur.object != nil {
			// Nothing joins a batch after its schema change.
			select {
			case out <- cur:
				cur = nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// receive adds one message to the batch.
func (w *worker) receive(ctx context.Context, cur *collected, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	// The reset at the worker's start numbers deliveries from 1 again, so
	// the first one must be 1 too. A later first delivery means an earlier
	// one went elsewhere: to the pull an old owner of the group still had
	// open in a failover. Applied, this batch would move the positions
	// past that one's changes, which then come back only after their ack
	// wait, to be skipped as applied: lost.
	if meta.Sequence.Consumer != w.lastSeq+1 {
		return fmt.Errorf("%w (expected delivery %d, got %d)", ErrDeliveryGap, w.lastSeq+1, meta.Sequence.Consumer)
	}
	w.lastSeq = meta.Sequence.Consumer
	cur.last = msg
	b, err := proto.DecodeBatch(msg.Data())
	if err != nil {
		return fmt.Errorf("stream %d: %w", meta.Sequence.Stream, err)
	}
	cur.bytes += len(msg.Data())
	if w.cfg.TxBoundaries {
		w.inTx = !b.IsBoundary()
	}
	if b.Parts > 0 {
		if b.PartNo == 0 {
			w.parts = []byte{}
		}
		w.parts = append(w.parts, b.Part...)
		if b.PartNo+1 < b.Parts {
			return nil
		}
		whole := w.parts
		w.parts = nil
		if b, err = proto.DecodeBatch(whole); err != nil {
			return fmt.Errorf("stream %d (reassembled): %w", meta.Sequence.Stream, err)
		}
	}
	if b.Members != nil {
		// A pack: the batches of several of the group's tables.
		for i := range b.Members {
			if err := w.receiveBatch(ctx, cur, &b.Members[i]); err != nil {
				return err
			}
		}
		return nil
	}
	return w.receiveBatch(ctx, cur, b)
}

// receiveBatch adds one table's batch (or its schema change, or a
// heartbeat) to the batch being collected.
func (w *worker) receiveBatch(ctx context.Context, cur *collected, b *proto.Batch) error {
	if w.cfg.Held != nil && b.Table != proto.HeartbeatTable && w.cfg.Held(b.Table) {
		return &HeldError{Table: b.Table}
	}
	if b.IsObjectEvent() {
		return w.receiveObject(cur, b)
	}
	if len(b.DDL) > 0 {
		return w.receiveDDL(cur, b)
	}
	if b.Table == proto.HeartbeatTable {
		if n := len(b.Rows); n > 0 {
			hb := b.Rows[n-1]
			cur.heartbeat = &hb
		}
		return nil
	}
	if w.cfg.Transform != nil {
		// Here, not at apply: the source computes this batch while the
		// sink writes the one before.
		if err := w.cfg.Transform.Batch(ctx, b); err != nil {
			return err
		}
	}
	cur.rows += w.add(cur, b)
	return nil
}

// apply writes a batch, then acknowledges its messages.
func (w *worker) apply(ctx context.Context, b *collected) error {
	// Tests only: SLUICE_FAILPOINTS=apply-batch=N panics here, before the
	// batch is written or acknowledged (it comes again after the retry).
	safe.Failpoint("apply-batch")
	if len(b.ch.Segments) > 0 {
		if w.cfg.Throttle != nil {
			if err := w.cfg.Throttle.Wait(ctx, b.rows, b.bytes); err != nil {
				return err
			}
		}
		if err := w.cfg.Sink.Apply(ctx, b.ch); err != nil {
			return fmt.Errorf("apply %d rows: %w", b.ch.Rows(), err)
		}
		w.cfg.Stats.RowsApplied.Add(int64(b.ch.Rows()))
		w.cfg.Stats.BytesApplied.Add(int64(b.bytes))
		w.cfg.Stats.Batches.Add(1)
		w.cfg.Stats.countTables(b.ch, w.sources)
	}
	if b.ddl != nil {
		applier, ok := w.cfg.Sink.(DDLApplier)
		if !ok {
			return fmt.Errorf("the destination cannot apply schema changes (%s on %s): set sync.ddl: false", b.ddl.Tag, b.ddl.Table())
		}
		if err := applier.ApplyDDL(ctx, w.cfg.Task, w.cfg.Epoch, b.ddl, w.cfg.Names, w.cfg.DDLOps); err != nil {
			return err
		}
		w.cfg.Stats.DDLApplied.Add(1)
	}
	if ev := b.object; ev != nil {
		if applier, ok := w.cfg.Sink.(ObjectApplier); ok {
			if err := applier.ApplyObject(ctx, w.cfg.Task, w.cfg.Epoch, w.cfg.Group, max(w.cfg.Groups, 1), ev, w.cfg.DDLOps); err != nil {
				return fmt.Errorf("DDL %s (%s): %w", ev.Tag, ev.What(), err)
			}
			w.cfg.Stats.DDLApplied.Add(1)
		}
	}
	if hb := b.heartbeat; hb != nil {
		// After the batch's changes: a reader that sees the heartbeat
		// has seen this group's changes up to it.
		if hw, ok := w.cfg.Sink.(HeartbeatWriter); ok {
			if err := hw.WriteHeartbeat(ctx, w.cfg.Task, w.cfg.Epoch, *hb); err != nil {
				return fmt.Errorf("write heartbeat: %w", err)
			}
		}
		w.cfg.Stats.HeartbeatCommitUS.Store(hb.CommitTimeUS)
		w.cfg.Stats.HeartbeatSeenUS.Store(time.Now().UnixMicro())
	}
	// AckAll: this acknowledges every earlier delivery too. A lost ack
	// only means a redelivery, skipped by position.
	if err := b.last.Ack(); err != nil {
		w.cfg.Logger.Debug("ack failed", "group", w.cfg.Group, "err", err)
	}
	return nil
}

// receiveDDL ends the batch with a schema change, unless the change is
// at or below its table's position (applied already, or in the copy).
func (w *worker) receiveDDL(cur *collected, b *proto.Batch) error {
	ev, err := proto.DecodeDDL(b.DDL)
	if err != nil {
		return err
	}
	src := ev.Table()
	if ev.WaitOnly {
		src = ev.New.ID
	}
	key := w.cfg.Names.Table(src).Key()
	if !w.floors[key].Less(ev.Pos) {
		return nil
	}
	if w.cfg.Transform != nil {
		if err := w.cfg.Transform.CheckDDL(ev); err != nil {
			return err
		}
	}
	w.floors[key] = ev.Pos
	if ev.Renamed() {
		w.floors[w.cfg.Names.Table(ev.New.ID).Key()] = ev.Pos
	}
	cur.ddl = ev
	return nil
}

// receiveObject ends the batch with a change to an object beside
// tables, unless it is at or below the last one this worker saw (a
// redelivery; the destination skips one applied already either way).
func (w *worker) receiveObject(cur *collected, b *proto.Batch) error {
	ev, err := proto.DecodeObjectEvent(b.DDL)
	if err != nil {
		return err
	}
	key := proto.ObjectsTable.Key()
	if !w.floors[key].Less(ev.Pos) {
		return nil
	}
	w.floors[key] = ev.Pos
	cur.object = ev
	return nil
}

// add appends the rows of b that are above the table's last position and
// returns how many it kept.
func (w *worker) add(cur *collected, b *proto.Batch) int {
	if w.cfg.Names != nil {
		src := b.Table
		b.Table = w.cfg.Names.Table(src)
		if b.Table != src {
			if w.sources == nil {
				w.sources = map[proto.TableID]proto.TableID{}
			}
			w.sources[b.Table] = src
		}
		cols := make([]proto.Column, len(b.Columns))
		for i, c := range b.Columns {
			c.Name = w.cfg.Names.Column(src, c.Name)
			cols[i] = c
		}
		b.Columns = cols
	}
	ch := cur.ch
	key := b.Table.Key()
	floor := w.floors[key]
	kept := b.Rows[:0]
	for _, r := range b.Rows {
		if floor.Less(r.Pos) {
			kept = append(kept, r)
			floor = r.Pos
		}
	}
	if len(kept) == 0 {
		return 0
	}
	w.floors[key] = floor
	ch.Positions[key] = floor
	ch.Tables[key] = b.Table
	// Tables are independent, so a table's rows join its latest segment
	// even when other tables' messages came in between.
	if s := cur.open[key]; s != nil && s.Identity == b.ReplicaIdentity && sameColumns(s.Columns, b.Columns) {
		s.Rows = append(s.Rows, kept...)
		w.rowsHint[key] = min(len(s.Rows), w.cfg.MaxBatchRows)
		return len(kept)
	}
	// The rows of the table's last segment: the new one starts that big,
	// instead of growing there again as more messages come.
	rows := kept
	if hint := w.rowsHint[key]; hint > len(kept) {
		rows = append(make([]proto.Row, 0, hint), kept...)
	}
	s := &Segment{Table: b.Table, Columns: b.Columns, Identity: b.ReplicaIdentity, Rows: rows}
	ch.Segments = append(ch.Segments, s)
	cur.open[key] = s
	return len(kept)
}

func sameColumns(a, b []proto.Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
