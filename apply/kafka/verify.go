package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/rowside"
)

// Verification (sluice verify) of a Kafka destination: a table's topic
// is read from its start to its end with read_committed isolation, as a
// consumer sees it, and folded by key (fold.go) into the table's rows,
// which verify/rowside compares with the source's. A re-check reads on
// from where the last read ended.
//
// A repair (repair.go) cannot hold the table's apply positions as a
// PostgreSQL destination's does: here the positions are records the
// apply unit's own transactional producer writes with its messages, and
// nothing stops that producer but fencing it, which stops the unit. So
// the task is paused for the repair (apply.PausedRepairer): a row
// written beside a running apply could land after a newer change of
// its key and stay the key's last message.

// VerifyReader reads the destination's side of a verification, one
// table's (apply.Verifiable).
func (s *Sink) VerifyReader() apply.VerifyReader {
	r := &topicReader{sink: s, format: choice(s.opts.Config.Format, Formats)}
	return rowside.New(r.load)
}

var _ apply.Verifiable = (*Sink)(nil)

// topicReader folds one table's topic, a read at a time.
type topicReader struct {
	sink   *Sink
	format string
	table  string // the table folded (its destination name and columns)
	topic  string
	fold   *tableFold
	next   map[int32]int64 // the offset each partition is read up to
	// skipped counts the messages read that are not the format's; the
	// first says why.
	skipped      int
	firstSkipped string
}

// load reads the table's topic on from where the last load ended, up to
// the topic's end now, and returns the rows the fold holds.
func (r *topicReader) load(ctx context.Context, t *proto.VerifyTable) ([][]any, error) {
	if id := t.Dest.Key() + "\x00" + strings.Join(t.DestColumns, "\x00"); r.table != id {
		r.table, r.topic, r.fold, r.next, r.skipped = id, r.sink.opts.route(t.Dest).Topic, newTableFold(t), map[int32]int64{}, 0
	}
	skipped := r.skipped
	if err := r.readToEnd(ctx); err != nil {
		return nil, fmt.Errorf("read topic %s: %w", r.topic, err)
	}
	if r.skipped > skipped {
		r.sink.logger.Warn("verify: messages that are not "+r.format+" messages skipped", "topic", r.topic, "table", t.Dest.String(),
			"skipped", r.skipped, "first", r.firstSkipped)
	}
	return r.fold.rows(), nil
}

// stallAfter bounds a read that makes no progress: read_committed stops
// at a transaction still open, which its producer ends or the brokers
// abort after the transaction timeout.
const stallAfter = 2 * time.Minute

// readToEnd reads every partition from where it was read up to its end
// as the brokers give it now. Control records (transaction markers) are
// kept, so the read knows where it stands even when a partition ends in
// one.
func (r *topicReader) readToEnd(ctx context.Context) error {
	opts, err := r.sink.readerOpts()
	if err != nil {
		return err
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, r.topic)
	if err != nil {
		return err
	}
	want := map[int32]kgo.Offset{}
	var listErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			// No topic: no rows.
		case o.Err != nil:
			listErr = o.Err
		case o.Offset > r.next[o.Partition]:
			want[o.Partition] = kgo.NewOffset().At(r.next[o.Partition])
		}
	})
	if listErr != nil || len(want) == 0 {
		return listErr
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: want}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // records deleted by retention: from the first kept
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	lastProgress := time.Now()
	for len(want) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var fetchErr error
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("partition %d: %w", p, err)
			}
		})
		if fetchErr != nil {
			return fetchErr
		}
		progress := false
		fetches.EachRecord(func(rec *kgo.Record) {
			progress = true
			r.next[rec.Partition] = rec.Offset + 1
			if r.next[rec.Partition] >= end[rec.Partition] {
				delete(want, rec.Partition)
			}
			if !rec.Attrs.IsControl() {
				r.applyRecord(rec)
			}
		})
		if progress {
			lastProgress = time.Now()
		} else if time.Since(lastProgress) > stallAfter {
			return fmt.Errorf("no progress for %s reading partitions %v to their end (a transaction left open?)", stallAfter, slices.Sorted(maps.Keys(want)))
		}
	}
	return nil
}

// applyRecord folds one message. A message that is not one of the
// format's (another producer's, in a topic shared with it) holds no row
// of the table: it is skipped, and counted.
func (r *topicReader) applyRecord(rec *kgo.Record) {
	if rec.Value == nil {
		r.fold.apply(rec.Partition, rec.Key, true, rowChange{})
		return
	}
	ch, err := readChange(r.format, r.sink.opts.Database, r.fold.t, rec.Value)
	if err != nil {
		if r.skipped++; r.skipped == 1 {
			r.firstSkipped = fmt.Sprintf("partition %d offset %d: %v", rec.Partition, rec.Offset, err)
		}
		return
	}
	if ch.kind != changeNone {
		r.fold.apply(rec.Partition, rec.Key, false, ch)
	}
}

// readerOpts are a franz-go client's options for the destination's
// brokers: its TLS and SASL settings, as the sink's own client has them.
func (s *Sink) readerOpts() ([]kgo.Opt, error) {
	c := s.opts.Config
	clientID := c.ClientID
	if clientID == "" {
		clientID = "sluice"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(clientID + "-verify"), kgo.FetchMaxWait(500 * time.Millisecond)}
	if c.TLS != nil {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if a := c.SASL; a != nil {
		pw, err := secret.ResolveField(a.PasswordRef())
		if err != nil {
			return nil, fmt.Errorf("destination.sasl.password: %w", err)
		}
		secret.Register(pw)
		switch a.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: a.User, Pass: pw}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: a.User, Pass: pw}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: a.User, Pass: pw}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("destination.sasl.mechanism: unknown %q", a.Mechanism)
		}
	}
	return opts, nil
}
