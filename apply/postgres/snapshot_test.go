package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Chunks of a full sync load exactly once whoever loads them, however
// often, and only under the plan their table is bound to.
func TestCopyChunkExactlyOnce(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	// No key: a chunk loaded twice shows as doubled rows.
	testenv.MustExec(t, conn, `CREATE TABLE items (v text)`)
	items := proto.TableID{Schema: "public", Name: "items"}
	open := func() *postgres.Sink {
		s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		return s
	}
	sink, other := open(), open()
	count := func() (n int) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	chunk := func(plan uint64, i int) apply.ChunkLoad {
		return apply.ChunkLoad{Task: "t", Plan: plan, Table: items, Chunk: i, Columns: []string{"v"}, Format: proto.CopyText}
	}
	rows := func(n int) func(io.Writer) (int64, error) {
		return func(w io.Writer) (int64, error) {
			for i := range n {
				if _, err := fmt.Fprintf(w, "row %d\n", i); err != nil {
					return 0, err
				}
			}
			return int64(n), nil
		}
	}
	notRead := func(io.Writer) (int64, error) { return 0, errors.New("read a chunk that is already loaded") }

	if _, err := sink.CopyChunk(ctx, chunk(10, 0), rows(3)); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("chunk of a table bound to no plan: %v", err)
	}
	if err := sink.BeginTable(ctx, "t", items, 10, false); err != nil {
		t.Fatal(err)
	}
	if n, err := sink.CopyChunk(ctx, chunk(10, 0), rows(3)); err != nil || n != 3 {
		t.Fatalf("load chunk 0: %d, %v", n, err)
	}
	// A retry (the owner did not hear back, or a new owner) loads nothing
	// and learns the rows.
	if n, err := other.CopyChunk(ctx, chunk(10, 0), notRead); err != nil || n != 3 {
		t.Fatalf("retry of chunk 0: %d, %v", n, err)
	}

	// Two owners load chunk 1 at once: the first to commit wins, the
	// other rolls back.
	release := make(chan struct{})
	slow := make(chan error, 1)
	go func() {
		_, err := sink.CopyChunk(ctx, chunk(10, 1), func(w io.Writer) (int64, error) {
			if _, err := io.WriteString(w, "slow\n"); err != nil {
				return 0, err
			}
			<-release
			return 1, nil
		})
		slow <- err
	}()
	time.Sleep(200 * time.Millisecond) // the slow owner is inside its COPY
	if n, err := other.CopyChunk(ctx, chunk(10, 1), rows(2)); err != nil || n != 2 {
		t.Fatalf("fast owner of chunk 1: %d, %v", n, err)
	}
	close(release)
	if err := <-slow; !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("slow owner of chunk 1: %v", err)
	}
	if n := count(); n != 5 {
		t.Fatalf("%d rows after chunks 0 and 1, want 5", n)
	}

	// A new plan empties the table and fences the old plan's chunks; an
	// older plan cannot take the table back.
	if err := sink.BeginTable(ctx, "t", items, 12, false); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows after a new plan began", n)
	}
	if _, err := other.CopyChunk(ctx, chunk(10, 2), rows(1)); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("chunk of a replaced plan: %v", err)
	}
	if err := sink.BeginTable(ctx, "t", items, 11, false); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("an older plan began: %v", err)
	}
	if n, err := sink.CopyChunk(ctx, chunk(12, 0), rows(4)); err != nil || n != 4 {
		t.Fatalf("chunk of the new plan: %d, %v", n, err)
	}

	// A finished table takes no more chunks, not even of its plan.
	if err := sink.FinishTable(ctx, "t", items, 11, proto.EndOf(100), 1); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("finish under a replaced plan: %v", err)
	}
	if err := sink.FinishTable(ctx, "t", items, 12, proto.EndOf(100), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := other.CopyChunk(ctx, chunk(12, 1), rows(1)); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("chunk after the table finished: %v", err)
	}
	if n := count(); n != 4 {
		t.Fatalf("%d rows at the end, want 4", n)
	}
	offsets, err := sink.Offsets(ctx, "t")
	if err != nil || offsets[items.Key()] != proto.EndOf(100) {
		t.Fatalf("offset after finish: %v %v", offsets, err)
	}
}
