package capture

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// addConsumer adds a durable consumer of subjects.
func (f *captureFixture) addConsumer(t *testing.T, name string, subjects ...string) {
	t.Helper()
	if _, err := f.js.CreateOrUpdateConsumer(context.Background(), proto.StreamName(f.task), jetstream.ConsumerConfig{Durable: name, FilterSubjects: subjects, AckPolicy: jetstream.AckAllPolicy}); err != nil {
		t.Fatal(err)
	}
}

// rowsByTable gathers the rows of every table from the messages, members
// of packs included, and checks that each table's positions increase.
func rowsByTable(t *testing.T, msgs []streamMessage) map[string][]proto.Row {
	t.Helper()
	out := map[string][]proto.Row{}
	add := func(b *proto.Batch) {
		if b.Table == proto.HeartbeatTable {
			return
		}
		for _, r := range b.Rows {
			rows := out[b.Table.Name]
			if n := len(rows); n > 0 && !rows[n-1].Pos.Less(r.Pos) {
				t.Errorf("%s: position %v after %v", b.Table, r.Pos, rows[n-1].Pos)
			}
			out[b.Table.Name] = append(rows, r)
		}
	}
	for _, m := range msgs {
		for i := range m.batch.Members {
			add(&m.batch.Members[i])
		}
		add(m.batch)
	}
	return out
}

// A transaction over several tables reaches the stream in one pack per
// apply group for the small batches, each pack on the subject only its
// group's consumer reads, and every row arrives once, in order.
func TestCapturePacksSmallBatchesPerGroup(t *testing.T) {
	a, b, c := proto.TableID{Schema: "public", Name: "a"}, proto.TableID{Schema: "public", Name: "b"}, proto.TableID{Schema: "public", Name: "c"}
	f := newCaptureFixture(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY)`, a, b, c)
	hb := proto.Subject(f.task, proto.HeartbeatTable)
	f.addConsumer(t, "apply_0", hb, proto.PackSubject(f.task, 0), proto.Subject(f.task, a), proto.Subject(f.task, b))
	f.addConsumer(t, "apply_1", hb, proto.PackSubject(f.task, 1), proto.Subject(f.task, c))
	f.start(t)
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	for tx := 0; tx < 5; tx++ {
		testenv.MustExec(t, src, fmt.Sprintf(`BEGIN; INSERT INTO a VALUES (%[1]d); INSERT INTO b VALUES (%[1]d); INSERT INTO c VALUES (%[1]d); COMMIT`, tx))
	}
	// Five rows of a in one transaction: batches of MaxBatchRows (3)
	// fill up and go on their own.
	testenv.MustExec(t, src, `INSERT INTO a SELECT g FROM generate_series(100, 104) g`)

	var msgs []streamMessage
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		msgs = f.read(t)
		rows := rowsByTable(t, msgs)
		if len(rows["a"]) != 10 || len(rows["b"]) != 5 || len(rows["c"]) != 5 {
			return fmt.Errorf("rows per table: a %d, b %d, c %d", len(rows["a"]), len(rows["b"]), len(rows["c"]))
		}
		return nil
	})
	packs := 0
	for _, m := range msgs {
		if len(m.batch.Members) == 0 {
			continue
		}
		packs++
		for _, mb := range m.batch.Members {
			want := proto.PackSubject(f.task, 0)
			if mb.Table == c {
				want = proto.PackSubject(f.task, 1)
			}
			if m.subject != want {
				t.Errorf("rows of %s packed on %s, want %s", mb.Table, m.subject, want)
			}
		}
	}
	if packs == 0 {
		t.Errorf("no pack among %d messages", len(msgs))
	}
}

// A consumer that reads every subject may not know packs: with one on
// the stream, every batch goes as its own message.
func TestCaptureNoPacksBesideAWildcardConsumer(t *testing.T) {
	a, b := proto.TableID{Schema: "public", Name: "a"}, proto.TableID{Schema: "public", Name: "b"}
	f := newCaptureFixture(t, `CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)`, a, b)
	f.addConsumer(t, "apply_0", proto.Subject(f.task, proto.HeartbeatTable), proto.PackSubject(f.task, 0), proto.Subject(f.task, a), proto.Subject(f.task, b))
	f.addConsumer(t, "everything", proto.SubjectPrefix(f.task)+">")
	f.start(t)
	src := testenv.Conn(t, f.pg.DSN("postgres"))
	testenv.MustExec(t, src, `BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); COMMIT`)
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		msgs := f.read(t)
		rows := rowsByTable(t, msgs)
		if len(rows["a"]) != 1 || len(rows["b"]) != 1 {
			return fmt.Errorf("rows per table: a %d, b %d", len(rows["a"]), len(rows["b"]))
		}
		for _, m := range msgs {
			if len(m.batch.Members) > 0 {
				t.Fatalf("a pack on %s beside a consumer of every subject", m.subject)
			}
		}
		return nil
	})
}
