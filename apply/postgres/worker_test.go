package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// blockingSink holds Apply until its context ends: a worker that dies
// after its messages were delivered and before it acknowledged them.
type blockingSink struct {
	apply.ChangeApplier
	entered chan struct{}
}

func (b *blockingSink) Apply(ctx context.Context, ch *apply.Changes) error {
	close(b.entered)
	<-ctx.Done()
	return ctx.Err()
}

var kv = proto.TableID{Schema: "public", Name: "kv"}

func publishInserts(t *testing.T, js jetstream.JetStream, task string, lsn proto.LSN, from, to int) {
	t.Helper()
	b := &proto.Batch{Table: kv, ReplicaIdentity: proto.IdentityDefault,
		Columns: []proto.Column{{Name: "k", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "v", TypeOID: 25, TypeMod: -1}}}
	for i := from; i <= to; i++ {
		b.Rows = append(b.Rows, proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: lsn, Idx: uint32(i - from)},
			New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(strconv.Itoa(i)), []byte("v")}}})
	}
	if _, err := js.Publish(context.Background(), proto.Subject(task, kv), b.Encode(nil), jetstream.WithMsgID(b.MsgID())); err != nil {
		t.Fatal(err)
	}
}

// A worker killed between delivery and acknowledgement: its successor
// must apply those messages, in order, before the newer ones; otherwise
// they would come back only after their ack wait, behind newer positions,
// and be skipped for good.
func TestWorkerRestartRedeliversUnacknowledgedInOrder(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	_, nc := testenv.NewJetStream(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const task = "w"
	if err := apply.EnsureStream(ctx, js, task, 1, 1, []proto.TableID{kv}, nil); err != nil {
		t.Fatal(err)
	}
	sink, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)

	publishInserts(t, js, task, 100, 1, 10)
	dying := &blockingSink{ChangeApplier: sink, entered: make(chan struct{})}
	wctx, kill := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- apply.RunWorker(wctx, apply.WorkerConfig{Task: task, Group: 0, JetStream: js, Sink: dying, Epoch: 1})
	}()
	select {
	case <-dying.entered:
	case err := <-done:
		t.Fatalf("worker ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("first worker never applied")
	}
	kill()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first worker: %v", err)
	}

	publishInserts(t, js, task, 200, 11, 20)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		done <- apply.RunWorker(wctx, apply.WorkerConfig{Task: task, Group: 0, JetStream: js, Sink: sink, Epoch: 2})
	}()
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil {
			return err
		}
		if n != 20 {
			return fmt.Errorf("%d of 20 rows applied", n)
		}
		return nil
	})
	stop()
	<-done
}
