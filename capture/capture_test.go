package capture

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// captureFixture is a source cluster with a table, its publication and
// slot, and a JetStream stream that keeps every message (limits retention)
// so the test can read back what capture published.
type captureFixture struct {
	pg   *testenv.Postgres
	js   jetstream.JetStream
	task string
	snap *ExportedSnapshot
}

func newCaptureFixture(t *testing.T, ddl string, tables ...proto.TableID) *captureFixture {
	t.Helper()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	_, nc := testenv.NewJetStream(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, ddl)
	f := &captureFixture{pg: pg, js: js, task: "t1"}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: proto.StreamName(f.task), Subjects: []string{proto.SubjectPrefix(f.task) + ">"}}); err != nil {
		t.Fatal(err)
	}
	if err := PrepareSource(ctx, conn, f.task, tables, nil, nil, false); err != nil {
		t.Fatal(err)
	}
	if f.snap, err = CreateSlot(ctx, pg.DSN("postgres"), f.task); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *captureFixture) start(t *testing.T) (*Capture, context.CancelFunc, chan error) {
	t.Helper()
	return f.startWith(t, Config{})
}

// startWith starts the capture with cfg's options beside the fixture's.
func (f *captureFixture) startWith(t *testing.T, cfg Config) (*Capture, context.CancelFunc, chan error) {
	t.Helper()
	cfg.Task, cfg.SourceDSN, cfg.JetStream, cfg.MaxBatchRows, cfg.HeartbeatInterval = f.task, f.pg.DSN("postgres"), f.js, 3, 200*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	conn := f.snap.Conn
	f.snap.Conn = nil
	go func() { done <- c.Run(ctx, f.snap.LSN, conn) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, cancel, done
}

// readAll returns every batch of a subject published so far.
func (f *captureFixture) readAll(t *testing.T, table proto.TableID) []*proto.Batch {
	t.Helper()
	var out []*proto.Batch
	for _, m := range f.read(t, proto.Subject(f.task, table)) {
		out = append(out, m.batch)
	}
	return out
}

// streamMessage is one message of the stream, decoded.
type streamMessage struct {
	subject string
	batch   *proto.Batch
}

// read returns every message published so far on the subjects (all of
// the stream's for none), in order.
func (f *captureFixture) read(t *testing.T, subjects ...string) []streamMessage {
	t.Helper()
	cons, err := f.js.OrderedConsumer(context.Background(), proto.StreamName(f.task), jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	var out []streamMessage
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			b, err := proto.DecodeBatch(msg.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, streamMessage{msg.Subject(), b})
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func TestCaptureDecodesAllOperations(t *testing.T) {
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, `CREATE TABLE items (id int PRIMARY KEY, note text, big text, n numeric(10,2));
		ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL`, items)
	c, _, _ := f.start(t)
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	big := strings.Repeat("x", 10000) // stored out of line: unchanged-TOAST on update
	testenv.MustExec(t, src, `BEGIN;
		INSERT INTO items VALUES (1, 'one', repeat('x', 10000), 1.5), (2, NULL, 'small', NULL);
		INSERT INTO items SELECT g, 'n' || g, NULL, g FROM generate_series(3, 7) g;
		COMMIT`)
	testenv.MustExec(t, src, `UPDATE items SET note = 'uno' WHERE id = 1`)
	testenv.MustExec(t, src, `UPDATE items SET id = 20 WHERE id = 2`)
	testenv.MustExec(t, src, `DELETE FROM items WHERE id = 3`)
	testenv.MustExec(t, src, `TRUNCATE items`)

	var rows []proto.Row
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		rows = rows[:0]
		for _, b := range f.readAll(t, items) {
			if b.Table != items || len(b.Columns) != 4 || !b.Columns[0].Key || b.Columns[1].Key || b.Columns[3].TypeOID != 1700 {
				return fmt.Errorf("bad batch header %+v", b)
			}
			rows = append(rows, b.Rows...)
		}
		if len(rows) != 11 {
			return fmt.Errorf("got %d rows, want 11", len(rows))
		}
		return nil
	})
	ops := ""
	for _, r := range rows {
		ops += r.Op.String()[:1]
	}
	if ops != "iiiiiiiuudt" {
		t.Fatalf("ops %q", ops)
	}
	// Positions: one transaction for the inserts, indexes 0..6; increasing.
	for i := 1; i < len(rows); i++ {
		if !rows[i-1].Pos.Less(rows[i].Pos) {
			t.Fatalf("positions not increasing at %d: %v then %v", i, rows[i-1].Pos, rows[i].Pos)
		}
	}
	if rows[0].Pos.LSN != rows[6].Pos.LSN || rows[6].Pos.Idx != 6 || rows[7].Pos.Idx != 0 {
		t.Fatalf("bad positions: %v %v %v", rows[0].Pos, rows[6].Pos, rows[7].Pos)
	}
	if got := string(rows[0].New.Values[2]); got != big {
		t.Fatalf("big value: %d bytes", len(got))
	}
	if rows[1].New.Kinds[1] != proto.KindNull || string(rows[0].New.Values[3]) != "1.50" {
		t.Fatalf("null/numeric: %q %q", rows[1].New.Kinds, rows[0].New.Values[3])
	}
	upd := rows[7]
	if upd.New.Kinds[2] != proto.KindToast || string(upd.New.Values[1]) != "uno" || upd.Old.Len() != 0 {
		t.Fatalf("update with unchanged toast: kinds %q old %d", upd.New.Kinds, upd.Old.Len())
	}
	keyChange := rows[8]
	if keyChange.Old.Len() != 4 || string(keyChange.Old.Values[0]) != "2" || string(keyChange.New.Values[0]) != "20" {
		t.Fatalf("key change: old %q new %q", keyChange.Old.Kinds, keyChange.New.Kinds)
	}
	if del := rows[9]; string(del.Old.Values[0]) != "3" || del.Old.Kinds[1] != proto.KindNull {
		t.Fatalf("delete key: %q", del.Old.Kinds)
	}
	if rows[0].CommitTimeUS < time.Now().Add(-time.Minute).UnixMicro() || rows[0].Xid == 0 {
		t.Fatalf("commit time %d xid %d", rows[0].CommitTimeUS, rows[0].Xid)
	}

	// Invariant 1: the slot moves only to what JetStream acknowledged, and
	// it does move (heartbeats keep it going).
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		info, err := LookupSlot(context.Background(), src, f.task)
		if err != nil {
			return err
		}
		if info.ConfirmedLSN <= rows[len(rows)-1].Pos.LSN {
			return fmt.Errorf("slot confirmed %v, last change at %v", info.ConfirmedLSN, rows[len(rows)-1].Pos.LSN)
		}
		if proto.LSN(c.Stats.ConfirmedLSN.Load()) < info.ConfirmedLSN {
			return fmt.Errorf("slot ahead of what capture confirmed")
		}
		return nil
	})
	hb := f.readAll(t, proto.HeartbeatTable)
	if len(hb) == 0 {
		t.Fatal("no heartbeat published")
	}
}

// A transaction far larger than the open-batch budget flows through in
// batches while it is still being decoded.
func TestCaptureLargeTransactionInBatches(t *testing.T) {
	big := proto.TableID{Schema: "public", Name: "big"}
	f := newCaptureFixture(t, `CREATE TABLE big (id int PRIMARY KEY, pad text)`, big)
	f.start(t)
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	testenv.MustExec(t, src, `INSERT INTO big SELECT g, repeat('p', 100) FROM generate_series(1, 20000) g`)
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		n, batches := 0, 0
		var last proto.Position
		for _, b := range f.readAll(t, big) {
			batches++
			for _, r := range b.Rows {
				if !last.Less(r.Pos) {
					return fmt.Errorf("position went back: %v after %v", r.Pos, last)
				}
				last = r.Pos
				n++
			}
		}
		if n != 20000 {
			return fmt.Errorf("%d rows in %d batches", n, batches)
		}
		if batches < 20000/3 {
			return fmt.Errorf("only %d batches for 20000 rows with MaxBatchRows 3", batches)
		}
		return nil
	})
}

// DropTaskObjects leaves nothing behind, and a second call is harmless.
func TestDropTaskObjects(t *testing.T) {
	f := newCaptureFixture(t, `CREATE TABLE a (id int PRIMARY KEY)`, proto.TableID{Schema: "public", Name: "a"})
	f.snap.Close()
	conn := testenv.Conn(t, f.pg.DSN("postgres"))
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := DropTaskObjects(ctx, conn, f.task); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.SourceLeftovers(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// Two-way sync: transactions written under the peer direction's origin
// (its numbered session origins included) are dropped; those of other
// origins and of none are captured.
func TestCaptureDropsPeerOrigin(t *testing.T) {
	items := proto.TableID{Schema: "public", Name: "items"}
	f := newCaptureFixture(t, `CREATE TABLE items (id int PRIMARY KEY);
		SELECT pg_replication_origin_create(o) FROM unnest(ARRAY['sluice:ab:rev', 'sluice:ab:rev:2', 'sluice:other:rev']) o`, items)
	c, _, _ := f.startWith(t, Config{DropOrigin: "sluice:ab:rev"})
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	write := func(origin string, id int) {
		if origin != "" {
			testenv.MustExec(t, src, `SELECT pg_replication_origin_session_setup($1)`, origin)
		}
		testenv.MustExec(t, src, `INSERT INTO items VALUES ($1)`, id)
		if origin != "" {
			testenv.MustExec(t, src, `SELECT pg_replication_origin_session_reset()`)
		}
	}
	write("", 1)
	write("sluice:ab:rev", 2)
	write("sluice:ab:rev:2", 3)
	write("sluice:other:rev", 4) // another task's: a cascade goes on
	write("", 5)
	var ids []string
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		ids = ids[:0]
		for _, b := range f.readAll(t, items) {
			for _, r := range b.Rows {
				ids = append(ids, string(r.New.Values[0]))
			}
		}
		if len(ids) < 3 {
			return fmt.Errorf("captured %v", ids)
		}
		return nil
	})
	if strings.Join(ids, ",") != "1,4,5" || c.Stats.PeerTxDropped.Load() != 2 {
		t.Fatalf("captured %v, dropped %d transactions; want 1,4,5 and 2", ids, c.Stats.PeerTxDropped.Load())
	}
}
