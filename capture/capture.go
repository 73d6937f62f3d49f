// Package capture is the PostgreSQL source: publication and slot
// management, pgoutput decoding, the snapshot (full sync) reader, the
// heartbeat, and publishing changes to JetStream.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Config configures the capture of one task.
type Config struct {
	Task      string
	SourceDSN string
	JetStream jetstream.JetStream
	Logger    *slog.Logger

	// A table's open batch is published when it holds MaxBatchRows rows or
	// MaxBatchBytes bytes.
	MaxBatchRows  int
	MaxBatchBytes int
	// MaxOpenBytes bounds the bytes in all open batches; above it they are
	// all published, even in the middle of a transaction.
	MaxOpenBytes int
	// MaxInflightBytes bounds bytes published and not yet acknowledged.
	MaxInflightBytes int
	// FlushDelay: after a commit, open batches wait this long for more
	// changes before they are published.
	FlushDelay time.Duration
	// MaxFlushInterval: open batches are published at least this often, at
	// a transaction boundary, so the confirmed LSN keeps moving.
	MaxFlushInterval time.Duration
	// StatusInterval is how often the durable LSN is confirmed to
	// PostgreSQL.
	StatusInterval time.Duration
	// HeartbeatInterval is how often the heartbeat row is written.
	HeartbeatInterval time.Duration
	// Operations gives the operations synced for a table (nil: all);
	// the others are dropped here, never published.
	Operations func(proto.TableID) proto.OpSet
	// OnDDL, when set, is called with each schema change (DDL sync)
	// before it is published: a new or renamed table's subject must be
	// consumed before its first message, or interest retention drops it.
	OnDDL func(ctx context.Context, ev *proto.DDLEvent) error
	// Columns gives a table's selected columns (nil: all); schema changes
	// are kept to them, as the rows are by the publication.
	Columns func(proto.TableID) []string
	// DropOrigin, when set, is a replication origin (proto.OriginOf) whose
	// transactions are dropped: two-way sync's peer direction wrote them,
	// and sending them back would loop. Transactions of other origins
	// (another task's, cascading A to B to C) go on as usual.
	DropOrigin string
	// Filter gives a table's row filter (nil or "": none). Where the
	// publication does not filter the table itself, the capture
	// evaluates it (filter.go).
	Filter func(proto.TableID) string
}

func (c *Config) setDefaults() error {
	if c.Task == "" || c.SourceDSN == "" || c.JetStream == nil {
		return errors.New("capture: Task, SourceDSN and JetStream are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxBatchRows, 2000)
	def(&c.MaxBatchBytes, 1<<20)
	def(&c.MaxOpenBytes, 16<<20)
	def(&c.MaxInflightBytes, 16<<20)
	defDur(&c.FlushDelay, 2*time.Millisecond)
	defDur(&c.MaxFlushInterval, 100*time.Millisecond)
	defDur(&c.StatusInterval, time.Second)
	defDur(&c.HeartbeatInterval, time.Second)
	return nil
}

// Stats are a capture's counters, safe to read while it runs.
type Stats struct {
	// ConfirmedLSN is the LSN last confirmed to PostgreSQL: every change
	// below it is durable in JetStream.
	ConfirmedLSN atomic.Uint64
	RowsCaptured atomic.Int64
	// ChangesCaptured counts the rows of the task's tables (heartbeats
	// left out): when it stands still the source is quiet.
	ChangesCaptured atomic.Int64
	Sessions        atomic.Int64
	// PeerTxDropped counts transactions of DropOrigin left out.
	PeerTxDropped atomic.Int64
}

// Capture streams a task's replication slot into JetStream.
type Capture struct {
	cfg   Config
	Stats Stats
	// chainBreaks counts consecutive sessions that ended on a broken chain
	// without progress; see run.
	chainBreaks int
}

// New validates the config and returns a capture ready to Run.
func New(cfg Config) (*Capture, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Capture{cfg: cfg}, nil
}

// Run streams from the slot until ctx ends or an error occurs. start is
// the LSN to resume from (the slot's confirmed position or consistent
// point). conn, when not nil, is a replication connection to use (the one
// that created the slot); Run closes it.
//
// A session that failed on a broken publish chain is restarted here, from
// the durable LSN, without a new connection to the caller; other errors are
// returned for the supervisor to classify and retry.
func (c *Capture) Run(ctx context.Context, start proto.LSN, conn *pgconn.PgConn) error {
	// The heartbeat belongs to this capture: a panic in it (recovered,
	// logged with its stack by the process's hook, counted) ends the
	// capture with the panic as its error, for the supervisor to retry,
	// rather than leaving a capture whose idle slot no longer moves.
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		if err := safe.Run("capture/heartbeat", func() error { c.heartbeat(ctx); return nil }); err != nil {
			cancel(err)
		}
	}()
	for {
		durable, err := c.session(ctx, start, conn)
		conn = nil
		if parent.Err() == nil && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !errors.Is(err, ErrChainBroken) || ctx.Err() != nil {
			return err
		}
		if durable > start {
			c.chainBreaks = 0
		} else {
			c.chainBreaks++
		}
		c.cfg.Logger.Warn("capture session restarts", "task", c.cfg.Task, "from", durable.String(), "err", err)
		start = durable
	}
}

func (c *Capture) connect(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconfig.ParseReplication(c.cfg.SourceDSN, "sluice capture "+c.cfg.Task)
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = dialPaced
	return pgconn.ConnectConfig(ctx, cfg)
}

// pacedPoll bounds the wait for a backlog's last bytes.
const pacedPoll = 2 * time.Millisecond

// openBatch is a table's batch being filled: the encoded header and rows.
type openBatch struct {
	rel         *relation
	subject     string
	buf         []byte
	rows        int
	first, last proto.Position
	// held are rows waiting for their row filter (filter.go), after the
	// rows in buf; heldBytes counts them in openBytes.
	held      []heldRow
	heldBytes int
}

// session runs one replication session and returns the durable LSN it
// reached with the error that ended it.
func (c *Capture) session(ctx context.Context, start proto.LSN, conn *pgconn.PgConn) (proto.LSN, error) {
	c.Stats.Sessions.Add(1)
	var err error
	if conn == nil {
		if conn, err = c.connect(ctx); err != nil {
			return start, fmt.Errorf("connect to source for replication: %w", err)
		}
	}
	defer conn.Close(context.Background())

	// Twice in a row no progress on a broken chain: the republished
	// messages keep colliding with stored ones. Unique ids turn duplicate
	// detection off for this session; the destination's positions still
	// drop every repeated row.
	suffix := ""
	if c.chainBreaks >= 2 {
		suffix = fmt.Sprintf("#%d", time.Now().UnixNano())
	}
	pub := newPublisher(c.cfg.JetStream, start, c.cfg.MaxInflightBytes, suffix)
	defer pub.close()
	c.Stats.ConfirmedLSN.Store(uint64(start))

	slot := proto.SlotName(c.cfg.Task)
	err = pglogrepl.StartReplication(ctx, conn, slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		// messages: the heartbeat and the DDL log are logical decoding
		// messages (messages.go).
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", slot), "messages 'true'"},
	})
	if err != nil {
		return start, fmt.Errorf("start replication on slot %s: %w", slot, err)
	}
	c.cfg.Logger.Info("capture started", "task", c.cfg.Task, "slot", slot, "from", start.String())

	s := &sessionState{
		c:         c,
		pub:       pub,
		relations: map[uint32]*relation{},
		open:      map[uint32]*openBatch{},
		lastFlush: time.Now(),
	}
	s.loadPacks(ctx)
	err = s.loop(ctx, conn)
	if s.catalog != nil {
		s.catalog.Close(context.Background())
	}
	return pub.durablePos(), err
}

type sessionState struct {
	c         *Capture
	pub       *publisher
	relations map[uint32]*relation
	open      map[uint32]*openBatch
	openOrder []uint32 // first-seen order, so flushes are deterministic
	openBytes int

	// newT and oldT are reused for every row: a row is encoded into its
	// batch before the next one is decoded.
	newT, oldT proto.Tuple

	inTx bool
	// peerTx: the transaction under way carries DropOrigin; its changes
	// are dropped (its commit still moves the confirmed position).
	peerTx     bool
	begin      beginMsg
	idx        uint32
	lastCommit proto.LSN // end LSN of the last commit seen
	// lastCommitAt is when the last commit arrived, commitGap the time
	// between it and the one before: how busy the stream is.
	lastCommitAt time.Time
	commitGap    time.Duration
	flushAt      time.Time // zero: no flush armed
	lastFlush    time.Time
	confirmed    proto.LSN
	// boundaryOwed: rows were published since the last boundary marker;
	// lastBoundary is when that marker went out.
	boundaryOwed bool
	lastBoundary time.Time
	// catalog reads primary keys (relkey.go); opened when first needed.
	catalog *pgx.Conn
	// packOf maps a table's subject to its group's pack subject (nil:
	// no packs); packs are being filled during a flush (packs.go).
	packOf    map[string]string
	packs     map[string]*pack
	packOrder []string
	packHint  map[string]int // a group's last pack's size
}

func (s *sessionState) loop(ctx context.Context, conn *pgconn.PgConn) error {
	cfg := &s.c.cfg
	// Timers (status updates, the flush delay) interrupt the read with a
	// deadline on the socket, set only when it changes: a context with a
	// deadline per message would cost more than decoding the message.
	// pgconn keeps the connection usable after a read timeout.
	sock := conn.Conn()
	paced, _ := sock.(*pacedConn) // nil: a Unix socket, read as it comes
	var mu sync.Mutex
	cancelled := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		cancelled = true
		_ = sock.SetReadDeadline(time.Unix(1, 0))
		mu.Unlock()
	})
	defer stop()
	var armed time.Time
	setDeadline := func(d time.Time) {
		mu.Lock()
		if !cancelled {
			_ = sock.SetReadDeadline(d)
		}
		mu.Unlock()
		armed = d
	}
	defer setDeadline(time.Time{})

	nextStatus := time.Now().Add(cfg.StatusInterval)
	for {
		if err := s.pub.failure(); err != nil {
			return err
		}
		now := time.Now()
		if !s.flushAt.IsZero() && !now.Before(s.flushAt) {
			if paced != nil && paced.high && now.Sub(s.lastFlush) < cfg.MaxFlushInterval {
				// A backlog is streaming in: more changes are already on
				// their way, so the open batches keep filling (up to
				// MaxFlushInterval) rather than go out a few rows each.
				// Looked at again after the backlog's short read deadline:
				// once the backlog ends the socket wakes on every byte
				// again, and the flush goes out.
				s.flushAt = now.Add(pacedPoll)
			} else if err := s.flushAll(ctx); err != nil {
				return err
			}
		}
		// A sparse stream between transactions, with nothing more from
		// the server yet: no commit is there to join the open batches, so
		// they go now (or once idleFlushGap has passed since the last
		// flush) instead of after FlushDelay, a quiet stream's latency.
		var idleFlushAt time.Time
		if !s.flushAt.IsZero() && !s.inTx && s.sparse() && drained(conn, paced) {
			if idleFlushAt = s.lastFlush.Add(idleFlushGap); !now.Before(idleFlushAt) {
				if err := s.flushAll(ctx); err != nil {
					return err
				}
				idleFlushAt = time.Time{}
			}
		}
		if !now.Before(nextStatus) {
			if err := s.sendStatus(ctx, conn, false); err != nil {
				return err
			}
			nextStatus = now.Add(cfg.StatusInterval)
		}
		deadline := nextStatus
		if !s.flushAt.IsZero() && s.flushAt.Before(deadline) {
			deadline = s.flushAt
		}
		if !idleFlushAt.IsZero() && idleFlushAt.Before(deadline) {
			deadline = idleFlushAt
		}
		if paced != nil && paced.high {
			// While woken only by a backlog's worth of bytes, look again
			// soon: the backlog may have ended with a few bytes.
			if soon := now.Add(pacedPoll); soon.Before(deadline) {
				deadline = soon
			}
		}
		if !deadline.Equal(armed) {
			setDeadline(deadline)
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				armed = time.Time{} // the socket's deadline has passed: set it anew
				if paced != nil && paced.high {
					paced.setLowat(false) // the backlog has ended: wake on every byte
				}
				continue
			}
			return fmt.Errorf("receive from source: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				s.keepalive(proto.LSN(ka.ServerWALEnd))
				if ka.ReplyRequested {
					if err := s.sendStatus(ctx, conn, false); err != nil {
						return err
					}
					nextStatus = time.Now().Add(cfg.StatusInterval)
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				if err := s.handle(ctx, xld.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("replication stream ended by the server")
		}
	}
}

// idleFlushGap is the least time between two flushes that go out early
// because the stream paused (drained): a steady stream of small
// transactions still makes at most one message a group per gap.
const idleFlushGap = 500 * time.Microsecond

// sparseCommitGap: commits further apart than this make a sparse stream,
// whose batches go out as soon as it pauses. A catch-up or a busy source
// sends commits closer together (a backlog of single-row transactions
// arrives about every 10 µs here); their batches wait FlushDelay for
// more, and go out in fewer, larger messages.
const sparseCommitGap = 100 * time.Microsecond

// sparse reports whether the last two commits came sparseCommitGap or
// more apart.
func (s *sessionState) sparse() bool { return s.commitGap >= sparseCommitGap }

// drained reports whether nothing the server sent waits to be read: not
// in pgconn's buffer, the socket's, or the kernel's. Unknown (a socket
// that is not a pacedConn: Unix sockets) and a streaming backlog count as
// not drained.
func drained(conn *pgconn.PgConn, paced *pacedConn) bool {
	if paced == nil || paced.high || conn.Frontend().ReadBufferLen() > 0 {
		return false
	}
	return !paced.pending()
}

// keepalive: with nothing open or in flight and no transaction under way,
// everything the server has sent is durable, and its WAL end can be
// confirmed. This keeps the slot moving when the published tables are
// idle but the rest of the database is not.
func (s *sessionState) keepalive(walEnd proto.LSN) {
	if !s.inTx && len(s.open) == 0 && walEnd > s.lastCommit {
		s.pub.checkpoint(walEnd)
	}
}

func (s *sessionState) sendStatus(ctx context.Context, conn *pgconn.PgConn, reply bool) error {
	lsn := s.pub.durablePos()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(lsn),
		WALFlushPosition: pglogrepl.LSN(lsn),
		WALApplyPosition: pglogrepl.LSN(lsn),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("confirm LSN to source: %w", err)
	}
	s.confirmed = lsn
	s.c.Stats.ConfirmedLSN.Store(uint64(lsn))
	return nil
}

func (s *sessionState) handle(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	// Tests only: SLUICE_FAILPOINTS=capture-message=N panics here, before
	// the WAL message is taken (the session restarts from the durable LSN).
	safe.Failpoint("capture-message")
	switch data[0] {
	case 'B':
		b, err := parseBegin(data)
		if err != nil {
			return err
		}
		s.inTx, s.begin, s.idx, s.peerTx = true, b, 0, false
	case 'O':
		// Sent after BEGIN when the transaction has a replication origin.
		name, err := parseOrigin(data)
		if err != nil {
			return err
		}
		if proto.OriginOf(name, s.c.cfg.DropOrigin) {
			s.peerTx = true
			s.c.Stats.PeerTxDropped.Add(1)
		}
	case 'C':
		cm, err := parseCommit(data)
		if err != nil {
			return err
		}
		s.inTx = false
		s.lastCommit = cm.endLSN
		now := time.Now()
		s.commitGap, s.lastCommitAt = now.Sub(s.lastCommitAt), now
		if len(s.open) == 0 && !s.boundaryOwed {
			s.pub.checkpoint(cm.endLSN)
			return nil
		}
		if now.Sub(s.lastFlush) >= s.c.cfg.MaxFlushInterval {
			return s.flushAll(ctx)
		}
		// Sooner than a flush armed for a boundary marker
		// (publishBoundary, up to BoundaryInterval away): rows must not
		// wait for it.
		if at := now.Add(s.c.cfg.FlushDelay); s.flushAt.IsZero() || at.Before(s.flushAt) {
			s.flushAt = at
		}
	case 'R':
		rel, err := parseRelation(data)
		if err != nil {
			return err
		}
		// Rows already batched were decoded with the old description.
		if b := s.open[rel.id]; b != nil {
			if err := s.flushOne(ctx, rel.id); err != nil {
				return err
			}
		}
		if rel.identity == proto.IdentityFull {
			if err := s.keyFullIdentity(ctx, rel); err != nil {
				return err
			}
		}
		rel.ops = proto.AllOps
		if s.c.cfg.Operations != nil {
			rel.ops = s.c.cfg.Operations(rel.table)
		}
		if s.c.cfg.Filter != nil {
			if f := s.c.cfg.Filter(rel.table); f != "" {
				if err := s.describeFilter(ctx, rel, f); err != nil {
					return err
				}
			}
		}
		s.relations[rel.id] = rel
	case 'I', 'U', 'D':
		if s.peerTx {
			return nil
		}
		m, err := parseRow(data, &s.newT, &s.oldT)
		if err != nil {
			return err
		}
		rel := s.relations[m.relID]
		if rel == nil {
			return fmt.Errorf("pgoutput: change for unknown relation %d", m.relID)
		}
		if rel.table == DDLLogTable {
			if m.op != proto.OpInsert {
				return nil // the trigger deletes its row again
			}
			e, err := ddlLogRow(rel.columns, m.new)
			if err != nil {
				return err
			}
			return s.ddl(ctx, e)
		}
		if !rel.ops.Has(m.op) && (rel.filter == nil || !rel.filter.pipeline) {
			// An operation the task does not sync for this table (with a
			// pipeline filter, the operation the row turns into decides).
			return nil
		}
		return s.addRow(ctx, rel, proto.Row{Op: m.op, New: m.new, Old: m.old})
	case 'T':
		if s.peerTx {
			return nil
		}
		ids, err := parseTruncate(data)
		if err != nil {
			return err
		}
		for _, id := range ids {
			rel := s.relations[id]
			if rel == nil {
				return fmt.Errorf("pgoutput: truncate of unknown relation %d", id)
			}
			if !rel.ops.Has(proto.OpTruncate) {
				continue
			}
			if err := s.addRow(ctx, rel, proto.Row{Op: proto.OpTruncate}); err != nil {
				return err
			}
		}
	case 'M':
		// A logical decoding message: the heartbeat, the DDL log
		// (messages.go).
		return s.message(ctx, data)
	default:
		// 'Y' type: nothing to carry.
	}
	return nil
}

func (s *sessionState) addRow(ctx context.Context, rel *relation, row proto.Row) error {
	if !s.inTx {
		return errors.New("pgoutput: change outside a transaction")
	}
	row.Pos = proto.Position{LSN: s.begin.finalLSN, Idx: s.idx}
	row.Xid = s.begin.xid
	row.CommitTimeUS = s.begin.commitTimeUS
	s.idx++
	if (row.New.Len() > 0 && row.New.Len() != len(rel.columns)) || (row.Old.Len() > 0 && row.Old.Len() != len(rel.columns)) {
		return fmt.Errorf("pgoutput: row of %s has a different width than its relation", rel.table)
	}
	s.c.Stats.RowsCaptured.Add(1)
	if rel.table != proto.HeartbeatTable {
		s.c.Stats.ChangesCaptured.Add(1)
	}
	if s.holds(rel, &row) {
		return s.hold(ctx, rel, &row)
	}
	return s.appendRow(ctx, rel, row)
}

// openBatchOf returns rel's open batch, opening one if there is none.
func (s *sessionState) openBatchOf(rel *relation) *openBatch {
	b := s.open[rel.id]
	if b == nil {
		b = &openBatch{rel: rel, subject: proto.Subject(s.c.cfg.Task, rel.table)}
		b.buf = proto.AppendBatchHeader(getBuffer(min(max(rel.bufHint, smallBuffer), 2*s.c.cfg.MaxBatchBytes)), rel.table, rel.columns, rel.identity)
		s.open[rel.id] = b
		s.openOrder = append(s.openOrder, rel.id)
	}
	return b
}

// appendRow encodes a positioned row into its table's open batch.
func (s *sessionState) appendRow(ctx context.Context, rel *relation, row proto.Row) error {
	b := s.openBatchOf(rel)
	if b.rows == 0 {
		b.first = row.Pos
	}
	before := len(b.buf)
	b.buf = proto.AppendRow(b.buf, &row)
	s.openBytes += len(b.buf) - before
	b.rows++
	b.last = row.Pos
	if b.rows >= s.c.cfg.MaxBatchRows || len(b.buf) >= s.c.cfg.MaxBatchBytes {
		if err := s.flushOne(ctx, rel.id); err != nil {
			return err
		}
	}
	if s.openBytes >= s.c.cfg.MaxOpenBytes {
		return s.publishOpen(ctx)
	}
	return nil
}

func (s *sessionState) flushOne(ctx context.Context, relID uint32) error {
	b, err := s.takeOpen(ctx, relID)
	if b == nil || err != nil {
		return err
	}
	return s.publishBatch(ctx, b)
}

// takeOpen closes rel's open batch and returns it, nil when it has no
// rows left.
func (s *sessionState) takeOpen(ctx context.Context, relID uint32) (*openBatch, error) {
	b := s.open[relID]
	if len(b.held) > 0 {
		// The held rows go first into the batch (which may publish part of
		// it on the way); what is left is published here.
		if err := s.settle(ctx, b); err != nil {
			return nil, err
		}
		if b = s.open[relID]; b == nil {
			return nil, nil
		}
	}
	delete(s.open, relID)
	for i, id := range s.openOrder {
		if id == relID {
			s.openOrder = append(s.openOrder[:i], s.openOrder[i+1:]...)
			break
		}
	}
	s.openBytes -= len(b.buf)
	b.rel.bufHint = len(b.buf)
	if b.rows == 0 {
		putBuffer(b.buf) // every held row was filtered out
		return nil, nil
	}
	s.boundaryOwed = true
	return b, nil
}

// publishBatch publishes a closed batch as a message of its own.
func (s *sessionState) publishBatch(ctx context.Context, b *openBatch) error {
	id := proto.BatchMsgID(b.rel.table, b.first, b.last)
	if len(b.buf) <= 2*s.c.cfg.MaxBatchBytes {
		return s.pub.publish(ctx, b.subject, id, b.buf)
	}
	// A huge row: parts of MaxBatchBytes, published back to back so they
	// are consecutive in the stream.
	for i, part := range proto.SplitBatch(b.rel.table, b.buf, s.c.cfg.MaxBatchBytes) {
		if err := s.pub.publish(ctx, b.subject, fmt.Sprintf("%s/%d", id, i), part); err != nil {
			return err
		}
	}
	return nil
}

// publishOpen publishes every open batch, in first-seen order, the
// heartbeat's last: a heartbeat then follows every row committed before
// it in the stream. Small batches go in their apply group's pack
// (packs.go).
func (s *sessionState) publishOpen(ctx context.Context) error {
	var heartbeat []uint32
	for len(s.openOrder) > 0 {
		id := s.openOrder[0]
		if s.open[id].rel.table == proto.HeartbeatTable {
			s.openOrder = s.openOrder[1:]
			heartbeat = append(heartbeat, id)
			continue
		}
		b, err := s.takeOpen(ctx, id)
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		if err := s.packOrPublish(ctx, b); err != nil {
			return err
		}
	}
	if err := s.publishPacks(ctx); err != nil {
		return err
	}
	s.openOrder = heartbeat
	for len(s.openOrder) > 0 {
		if err := s.flushOne(ctx, s.openOrder[0]); err != nil {
			return err
		}
	}
	return nil
}

// BoundaryInterval is the shortest time between two transaction
// boundary markers of a task's stream.
const BoundaryInterval = 20 * time.Millisecond

// publishBoundary publishes a transaction boundary marker (proto.Batch
// IsBoundary) at a flush that left nothing open between transactions:
// every row committed up to here is in the stream before it, and none
// after. Appliers that must commit whole source transactions (foreign
// keys checked at the destination) end their batches only there. At
// most one goes out per BoundaryInterval; one owed is sent by the flush
// timer.
func (s *sessionState) publishBoundary(ctx context.Context) error {
	if !s.boundaryOwed {
		return nil
	}
	if wait := BoundaryInterval - time.Since(s.lastBoundary); wait > 0 {
		if at := time.Now().Add(wait); s.flushAt.IsZero() || at.Before(s.flushAt) {
			s.flushAt = at
		}
		return nil
	}
	buf := proto.AppendBatchHeader(getBuffer(smallBuffer), proto.HeartbeatTable, nil, 0)
	if err := s.pub.publish(ctx, proto.Subject(s.c.cfg.Task, proto.HeartbeatTable), fmt.Sprintf("boundary:%X", uint64(s.lastCommit)), buf); err != nil {
		return err
	}
	s.boundaryOwed, s.lastBoundary = false, time.Now()
	return nil
}

// flushAll publishes every open batch at a transaction boundary and takes
// a checkpoint there.
func (s *sessionState) flushAll(ctx context.Context) error {
	s.flushAt = time.Time{}
	if s.inTx {
		return nil // the commit will arm it again
	}
	if err := s.publishOpen(ctx); err != nil {
		return err
	}
	if err := s.publishBoundary(ctx); err != nil {
		return err
	}
	s.lastFlush = time.Now()
	s.pub.checkpoint(s.lastCommit)
	return nil
}

// ddl publishes a schema change on its table's subject, after the rows
// the table had before it.
func (s *sessionState) ddl(ctx context.Context, e *ddlLogEntry) error {
	if !s.inTx {
		return errors.New("pgoutput: change outside a transaction")
	}
	pos := proto.Position{LSN: s.begin.finalLSN, Idx: s.idx}
	s.idx++
	ev, obj, err := e.event(pos)
	if err != nil {
		return err
	}
	if ev == nil {
		if obj == nil {
			return nil
		}
		return s.objectChange(ctx, obj)
	}
	if s.c.cfg.Columns != nil {
		keepSelected(ev.Old, s.c.cfg.Columns)
		keepSelected(ev.New, s.c.cfg.Columns)
	}
	for _, id := range append([]uint32(nil), s.openOrder...) {
		if b := s.open[id]; b.rel.table == ev.Table() {
			if err := s.flushOne(ctx, id); err != nil {
				return err
			}
		}
	}
	if s.c.cfg.OnDDL != nil {
		if err := s.c.cfg.OnDDL(ctx, ev); err != nil {
			return fmt.Errorf("DDL %s on %s: %w", ev.Tag, ev.Table(), err)
		}
		s.loadPacks(ctx) // a new table's subject has joined a consumer
	}
	s.c.cfg.Logger.Info("schema change captured", "task", s.c.cfg.Task, "table", ev.Table().String(), "tag", ev.Tag, "at", pos.LSN.String())
	publish := func(t proto.TableID, ev *proto.DDLEvent, kind string) error {
		buf, err := proto.AppendDDLBatch(getBuffer(smallBuffer), t, ev)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("%s:%s.%s:%X.%d", kind, t.Schema, t.Name, uint64(pos.LSN), pos.Idx)
		return s.pub.publish(ctx, proto.Subject(s.c.cfg.Task, t), id, buf)
	}
	if err := publish(ev.Table(), ev, "ddl"); err != nil {
		return err
	}
	if ev.Renamed() {
		// The rows under the new name may go to another apply group: it
		// waits there until the rename is applied.
		wait := *ev
		wait.WaitOnly = true
		return publish(ev.New.ID, &wait, "ddl-wait")
	}
	return nil
}

// objectChange publishes a change to an object beside tables on the
// heartbeat subject, which every apply group reads, after every row
// before it: each group then reaches it having applied all of those
// (proto.ObjectEvent).
func (s *sessionState) objectChange(ctx context.Context, ev *proto.ObjectEvent) error {
	if err := s.publishOpen(ctx); err != nil {
		return err
	}
	buf, err := proto.AppendObjectBatch(getBuffer(smallBuffer), ev)
	if err != nil {
		return err
	}
	s.c.cfg.Logger.Info("schema change captured", "task", s.c.cfg.Task, "object", ev.What(), "tag", ev.Tag, "at", ev.Pos.LSN.String())
	id := fmt.Sprintf("object:%X.%d", uint64(ev.Pos.LSN), ev.Pos.Idx)
	return s.pub.publish(ctx, proto.Subject(s.c.cfg.Task, proto.HeartbeatTable), id, buf)
}

// keepSelected narrows a table's definition to the columns the task
// selects (objects[].columns).
func keepSelected(t *proto.TableDef, columns func(proto.TableID) []string) {
	if t == nil {
		return
	}
	if sel := columns(t.ID); len(sel) > 0 {
		t.KeepColumns(func(name string) bool { return slices.Contains(sel, name) })
	}
}
