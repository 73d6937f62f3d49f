package postgres_test

import (
	"context"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

var users = proto.TableID{Schema: "public", Name: "users"}

var userCols = []proto.Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "email", TypeOID: 25, TypeMod: -1}}

func userRow(op proto.Op, pos uint32, id, email string) proto.Row {
	t := proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(id), []byte(email)}}
	r := proto.Row{Op: op, Pos: proto.Position{LSN: 1000, Idx: pos}}
	if op == proto.OpDelete {
		r.Old = t
	} else {
		r.New = t
	}
	return r
}

func changes(epoch uint64, rows ...proto.Row) *apply.Changes {
	return &apply.Changes{
		Task: "t", Epoch: epoch,
		Segments:  []*apply.Segment{{Table: users, Columns: userCols, Identity: proto.IdentityDefault, Rows: rows}},
		Positions: map[string]proto.Position{users.Key(): rows[len(rows)-1].Pos},
		Tables:    map[string]proto.TableID{users.Key(): users},
	}
}

func usersSink(t *testing.T) (*postgres.Sink, func() map[string]string) {
	t.Helper()
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE)`)
	sink, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(ctx) })
	contents := func() map[string]string {
		rows, err := conn.Query(ctx, `SELECT id::text, email FROM users`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var id, email string
			if err := rows.Scan(&id, &email); err != nil {
				t.Fatal(err)
			}
			out[id] = email
		}
		return out
	}
	return sink, contents
}

// Two rows swap a unique value inside one batch: the set-based upsert
// trips the unique constraint, and the batch is applied row by row.
func TestApplySwapOfUniqueValues(t *testing.T) {
	ctx := context.Background()
	sink, contents := usersSink(t)
	if err := sink.Apply(ctx, changes(1, userRow(proto.OpInsert, 0, "1", "a"), userRow(proto.OpInsert, 1, "2", "b"))); err != nil {
		t.Fatal(err)
	}
	err := sink.Apply(ctx, changes(1,
		userRow(proto.OpUpdate, 2, "1", "tmp"),
		userRow(proto.OpUpdate, 3, "2", "a"),
		userRow(proto.OpUpdate, 4, "1", "b")))
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(); got["1"] != "b" || got["2"] != "a" || len(got) != 2 {
		t.Fatalf("after swap: %v", got)
	}
	offsets, err := sink.Offsets(ctx, "t")
	if err != nil || offsets[users.Key()] != (proto.Position{LSN: 1000, Idx: 4}) {
		t.Fatalf("offset %v %v", offsets, err)
	}
}
