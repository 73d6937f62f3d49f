package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// publisher sends change batches to JetStream asynchronously and tells
// which source LSN is durable downstream (invariant 1): a checkpoint taken
// after message n becomes durable once messages 1..n are acknowledged.
//
// Ordering: the capture is the stream's only writer, so once it knows the
// stream's last sequence it knows the sequence every message it sends will
// get, and each names the sequence of the one before it
// (Nats-Expected-Last-Sequence): a session's messages form one unbroken
// chain in the stream. Should a message be lost (a connection cut, a
// stream leader change while it was in flight), every later one is refused
// instead of being stored out of order, and the capture session restarts
// from the durable LSN. Without the chain a later batch of a table could be
// applied before an earlier, lost one was republished, and the earlier one
// would then be skipped as already applied. A session learns the last
// sequence from the acknowledgement of its first message that is not a
// duplicate (messages republished after a restart are acknowledged as
// duplicates of the stored ones), sending one message at a time until
// then. (An earlier version chained message ids, Nats-Expected-Last-Msg-Id;
// a replicated stream does not keep the last id across a server restart,
// and its replicas then refused to apply their log.)
type publisher struct {
	js       jetstream.JetStream
	idSuffix string
	seq      uint64 // messages sent this session
	// chained: expect is the stream sequence of the previous message.
	chained bool
	expect  uint64

	inflight chan inflightMsg
	budget   *byteBudget

	mu          sync.Mutex
	checkpoints []checkpoint
	ackedSeq    uint64
	durable     proto.LSN
	// lastAck is the latest acknowledgement; acked wakes a publish waiting
	// for one while the session is not chained yet.
	lastAck jetstream.PubAck
	acked   chan struct{}

	durableLSN atomic.Uint64 // mirror of durable, read without the lock
	failed     chan struct{}
	failOnce   sync.Once
	err        error
	done       chan struct{}
}

type inflightMsg struct {
	fut  jetstream.PubAckFuture
	seq  uint64
	data []byte
}

// Batch buffers are recycled once JetStream has acknowledged them (the
// client copied them to its connection when published, and keeps them
// only for the acknowledgement): a busy capture then allocates almost
// nothing per batch. Small ones (a table's batch starts small: over
// thousands of tables most stay a few rows) and large ones (packs, big
// batches) are kept apart, so a large request does not throw away the
// small buffers it cannot use.
var smallBuffers, largeBuffers sync.Pool

const (
	// smallBuffer is the size a buffer starts at.
	smallBuffer = 4 << 10
	// largeBuffer: from this capacity on, a buffer is a large one.
	largeBuffer = 256 << 10
)

// getBuffer returns an empty buffer of at least size bytes, recycled when
// one is free.
func getBuffer(size int) []byte {
	pool := &smallBuffers
	if size >= largeBuffer {
		pool = &largeBuffers
	}
	if b, ok := pool.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, max(size, smallBuffer))
}

func putBuffer(b []byte) {
	switch {
	case cap(b) > 8<<20:
		// a huge row's buffer: let it go
	case cap(b) >= largeBuffer:
		largeBuffers.Put(&b)
	default:
		smallBuffers.Put(&b)
	}
}

type checkpoint struct {
	seq uint64
	lsn proto.LSN
}

// newPublisher starts a session; start is the LSN already durable.
// idSuffix, when set, makes every message id unique to this session, which
// turns off duplicate detection (see Capture's restart rule).
func newPublisher(js jetstream.JetStream, start proto.LSN, maxInflightBytes int, idSuffix string) *publisher {
	p := &publisher{
		js:       js,
		idSuffix: idSuffix,
		inflight: make(chan inflightMsg, 4096),
		budget:   newByteBudget(maxInflightBytes),
		durable:  start,
		failed:   make(chan struct{}),
		done:     make(chan struct{}),
		acked:    make(chan struct{}, 1),
	}
	p.durableLSN.Store(uint64(start))
	go p.collectAcks()
	return p
}

// publish sends one batch. It blocks while too many bytes are in flight
// (back-pressure instead of buffering, invariant 5).
func (p *publisher) publish(ctx context.Context, subject, msgID string, data []byte) error {
	if err := p.budget.acquire(ctx, len(data), p.failed); err != nil {
		if e := p.failure(); e != nil {
			return e
		}
		return err
	}
	msgID += p.idSuffix
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID), jetstream.WithRetryAttempts(0)}
	if p.chained {
		opts = append(opts, jetstream.WithExpectLastSequence(p.expect))
	}
	fut, err := p.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		p.budget.release(len(data))
		p.fail(fmt.Errorf("publish to JetStream: %w", err))
		return p.failure()
	}
	p.expect++
	p.seq++
	select {
	case p.inflight <- inflightMsg{fut: fut, seq: p.seq, data: data}:
	case <-p.failed:
		return p.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.chained {
		return nil
	}
	return p.waitChain(ctx)
}

// waitChain waits for the acknowledgement of the message just sent and,
// unless it was a duplicate, starts the chain after its sequence.
func (p *publisher) waitChain(ctx context.Context) error {
	for {
		p.mu.Lock()
		done, ack := p.ackedSeq >= p.seq, p.lastAck
		p.mu.Unlock()
		if done {
			if !ack.Duplicate {
				p.chained, p.expect = true, ack.Sequence
			}
			return nil
		}
		select {
		case <-p.acked:
		case <-p.failed:
			return p.failure()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkpoint marks lsn durable once everything published so far is
// acknowledged. Called only at transaction boundaries with no rows
// waiting in open batches.
func (p *publisher) checkpoint(lsn proto.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lsn <= p.durable {
		return
	}
	if n := len(p.checkpoints); n > 0 && p.checkpoints[n-1].seq == p.seq {
		p.checkpoints[n-1].lsn = lsn // nothing sent since: move the last one
	} else {
		p.checkpoints = append(p.checkpoints, checkpoint{seq: p.seq, lsn: lsn})
	}
	p.advanceLocked()
}

func (p *publisher) advanceLocked() {
	i := 0
	for ; i < len(p.checkpoints) && p.checkpoints[i].seq <= p.ackedSeq; i++ {
		p.durable = p.checkpoints[i].lsn
	}
	p.checkpoints = p.checkpoints[i:]
	p.durableLSN.Store(uint64(p.durable))
}

// durablePos is the highest LSN whose changes are all acknowledged.
func (p *publisher) durablePos() proto.LSN { return proto.LSN(p.durableLSN.Load()) }

// pending reports messages sent and not yet acknowledged.
func (p *publisher) pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ackedSeq < p.seq
}

func (p *publisher) collectAcks() {
	defer close(p.done)
	// A panic here fails the session (its loop checks the failure), which
	// returns it to the capture's supervisor: the acknowledgements are
	// what makes positions durable, so the session cannot go on without.
	if err := safe.Run("capture/acks", p.ackLoop); err != nil {
		p.fail(err)
	}
}

func (p *publisher) ackLoop() error {
	for {
		var m inflightMsg
		select {
		case m = <-p.inflight:
		case <-p.failed:
			return nil
		}
		var ack *jetstream.PubAck
		select {
		case ack = <-m.fut.Ok():
		case err := <-m.fut.Err():
			p.fail(classifyPublishError(err))
			return nil
		}
		p.budget.release(len(m.data))
		putBuffer(m.data)
		p.acknowledged(m.seq, ack)
		select {
		case p.acked <- struct{}{}:
		default:
		}
	}
}

// acknowledged records the acknowledgement of message seq; the deferred
// unlock keeps p.mu free for fail should this panic.
func (p *publisher) acknowledged(seq uint64, ack *jetstream.PubAck) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ackedSeq = seq
	if ack != nil {
		p.lastAck = *ack
	}
	p.advanceLocked()
}

// ErrChainBroken means a message was refused because the one before it
// never reached the stream; the session restarts from the durable LSN.
var ErrChainBroken = errors.New("JetStream refused a batch whose predecessor is missing (a message was lost in flight); restarting capture from the last durable position")

// errCodeWrongLastSequence is nats-server's JSStreamWrongLastSequenceErrF,
// which nats.go has no constant for.
const errCodeWrongLastSequence jetstream.ErrorCode = 10071

func classifyPublishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWrongLastSequence {
		return fmt.Errorf("%w: %v", ErrChainBroken, err)
	}
	return fmt.Errorf("JetStream did not acknowledge a batch: %w", err)
}

func (p *publisher) fail(err error) {
	p.failOnce.Do(func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.failed)
	})
}

// failure returns the session's error, nil while it is healthy.
func (p *publisher) failure() error {
	select {
	case <-p.failed:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	default:
		return nil
	}
}

// close stops collecting acknowledgements.
func (p *publisher) close() {
	p.fail(errors.New("publisher closed"))
	<-p.done
}

// waitAcked waits until every message sent is acknowledged (or failure).
func (p *publisher) waitAcked(ctx context.Context) error {
	for p.pending() {
		if err := p.failure(); err != nil {
			return err
		}
		if err := p.budget.waitChange(ctx, p.failed); err != nil {
			return err
		}
	}
	return p.failure()
}

// byteBudget bounds the bytes in flight. One message larger than the
// whole budget is let through alone, so a huge row cannot deadlock.
type byteBudget struct {
	mu      sync.Mutex
	max     int
	used    int
	changed chan struct{}
}

func newByteBudget(max int) *byteBudget {
	return &byteBudget{max: max, changed: make(chan struct{})}
}

func (b *byteBudget) acquire(ctx context.Context, n int, abort <-chan struct{}) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-abort:
			return errors.New("publisher failed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int) {
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *byteBudget) waitChange(ctx context.Context, abort <-chan struct{}) error {
	b.mu.Lock()
	ch := b.changed
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-abort:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
