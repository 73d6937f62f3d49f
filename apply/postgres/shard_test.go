package postgres

import (
	"context"
	"strconv"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

var kvTable = proto.TableID{Schema: "public", Name: "kv"}

func kvInserts(lsn proto.LSN, from, to int) *apply.Changes {
	seg := &apply.Segment{Table: kvTable, Identity: proto.IdentityDefault,
		Columns: []proto.Column{{Name: "k", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "v", TypeOID: 25, TypeMod: -1}}}
	for i := from; i <= to; i++ {
		seg.Rows = append(seg.Rows, proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: lsn, Idx: uint32(i - from)},
			New: proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(strconv.Itoa(i)), []byte("v")}}})
	}
	return &apply.Changes{Task: "t", Epoch: 1, Segments: []*apply.Segment{seg},
		Positions: map[string]proto.Position{kvTable.Key(): seg.Rows[len(seg.Rows)-1].Pos},
		Tables:    map[string]proto.TableID{kvTable.Key(): kvTable}}
}

// A batch is written by one session per shard, each with its position;
// after a crash that left one shard behind, a replay writes only the
// rows of the shard that had not committed.
func TestShardedApplyAndReplay(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	open := func() *Sink {
		s, err := Open(ctx, Options{DSN: pg.DSN("postgres"), Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		return s
	}
	s := open()
	if err := s.Apply(ctx, kvInserts(100, 1, 200)); err != nil {
		t.Fatal(err)
	}
	var n, shards int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM kv), (SELECT count(DISTINCT shard) FROM sluice.apply_offsets WHERE lsn = '0/64' AND idx = 199)`).Scan(&n, &shards); err != nil {
		t.Fatal(err)
	}
	if n != 200 || shards != 2 {
		t.Fatalf("%d rows, %d shards at the batch's end", n, shards)
	}

	// As if shard 0's transaction of the next batch never committed: its
	// rows are missing and its position is behind.
	if err := s.Apply(ctx, kvInserts(200, 1001, 1200)); err != nil {
		t.Fatal(err)
	}
	plan := &segmentPlan{keyIdx: []int{0}}
	var shard0 []string
	for i := 1001; i <= 1200; i++ {
		tup := proto.Tuple{Kinds: []byte{proto.KindText}, Values: [][]byte{[]byte(strconv.Itoa(i))}}
		if s.keyShard(plan, tup, proto.Tuple{}) == 0 {
			shard0 = append(shard0, strconv.Itoa(i))
		}
	}
	if len(shard0) == 0 || len(shard0) == 200 {
		t.Fatalf("the hash put %d of 200 keys in shard 0", len(shard0))
	}
	testenv.MustExec(t, conn, `DELETE FROM kv WHERE k = ANY($1::text[]::int[])`, shard0)
	testenv.MustExec(t, conn, `UPDATE sluice.apply_offsets SET lsn = '0/64', idx = 199 WHERE shard = 0`)

	// A fresh sink (a restarted worker) replays the batch: the lowest
	// position says where to resume, and shard 1's rows are not written
	// again (COPY would refuse them as duplicates).
	s2 := open()
	offsets, err := s2.Offsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := offsets[kvTable.Key()]; got != (proto.Position{LSN: 100, Idx: 199}) {
		t.Fatalf("resume position %v", got)
	}
	segs, err := s2.plan(ctx, kvInserts(200, 1001, 1200))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs[0].Rows) != len(shard0) {
		t.Fatalf("replay keeps %d rows, want shard 0's %d", len(segs[0].Rows), len(shard0))
	}
	if err := s2.Apply(ctx, kvInserts(200, 1001, 1200)); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 400 {
		t.Fatalf("%d rows after the replay, want 400 (%v)", n, err)
	}
}
