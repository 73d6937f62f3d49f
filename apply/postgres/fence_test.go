package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

var logTable = proto.TableID{Schema: "public", Name: "log"}

func logChanges(epoch uint64, from, to uint32) *apply.Changes {
	var rows []proto.Row
	for i := from; i <= to; i++ {
		v := []byte{byte('a' + i)}
		rows = append(rows, proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: 2000, Idx: i},
			New: proto.Tuple{Kinds: []byte{proto.KindText}, Values: [][]byte{v}}})
	}
	return &apply.Changes{
		Task: "t", Epoch: epoch,
		Segments:  []*apply.Segment{{Table: logTable, Columns: []proto.Column{{Name: "v", TypeOID: 25, TypeMod: -1}}, Identity: proto.IdentityFull, Rows: rows}},
		Positions: map[string]proto.Position{logTable.Key(): rows[len(rows)-1].Pos},
		Tables:    map[string]proto.TableID{logTable.Key(): logTable},
	}
}

// Two owners of one apply group overlap after a failover: the old one
// (epoch 5) commits a batch after the new one (epoch 7) read the
// positions. The new one's batch, which repeats those changes, is planned
// again and writes only what is new; the old one is then fenced. On a
// keyless table a change written twice would show as a doubled row.
func TestOverlappingOwnersWriteOnce(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE log (v text); ALTER TABLE log REPLICA IDENTITY FULL`)
	open := func() *postgres.Sink {
		s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		if _, err := s.Offsets(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		return s
	}
	oldOwner, newOwner := open(), open()
	if err := oldOwner.Apply(ctx, logChanges(5, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := newOwner.Apply(ctx, logChanges(7, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if err := oldOwner.Apply(ctx, logChanges(5, 2, 3)); !errors.Is(err, apply.ErrFenced) {
		t.Fatalf("old owner after the new one wrote: %v", err)
	}
	var n, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT v) FROM log`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 3 || distinct != 3 {
		t.Fatalf("log has %d rows (%d distinct), want a, b, c once each", n, distinct)
	}
}
