package postgres_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// AnalyticDB's apply without INSERT ... ON CONFLICT (the Greenplum 6
// path, forced), end to end on PostgreSQL 15: schema sync of a source
// schema, a full sync (one table kept with its rows), then batches that
// take every statement the path has — an update, a delete, an insert, a
// key change, a distribution-key change, a keyless table's update of one
// of two equal rows, a generated column, the row-by-row retry of an
// insert the destination already has, an update of a row the destination
// lost, a key change keeping an unchanged TOAST value — the same changes
// made at the source by SQL; the two sides compared by checksum.
func TestADBPGApplyWithoutOnConflict(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	if err := pg.Exec(ctx, "postgres", "CREATE DATABASE src"); err != nil {
		t.Fatal(err)
	}
	src := testenv.Conn(t, pg.DSN("src"))
	dst := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, src, `CREATE SCHEMA shop;
		CREATE TABLE shop.orders (region text, id int, v text, big text, PRIMARY KEY (region, id));
		ALTER TABLE shop.orders ALTER COLUMN big SET STORAGE EXTERNAL;
		CREATE TABLE shop.calc (id int PRIMARY KEY, a int, b int, total int GENERATED ALWAYS AS (a + b) STORED, ident bigint GENERATED ALWAYS AS IDENTITY);
		CREATE TABLE shop.events (at int, v text);
		ALTER TABLE shop.events REPLICA IDENTITY FULL;
		CREATE TABLE shop.kept (id int PRIMARY KEY, v text);
		INSERT INTO shop.orders SELECT 'eu', g, 'v' || g, repeat('big', 1000) FROM generate_series(1, 5) g;
		INSERT INTO shop.calc (id, a, b) SELECT g, g, 10 * g FROM generate_series(1, 3) g;
		INSERT INTO shop.events VALUES (1, 'x'), (1, 'x'), (2, 'z');
		INSERT INTO shop.kept VALUES (1, 'src'), (2, 'src')`)
	sc, err := capture.ReadSchema(ctx, src, []proto.ObjectSpec{{Schema: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	// A table the destination had before the task (conflicting_tables:
	// ignore): its row stays, the source's new key is added.
	testenv.MustExec(t, dst, `CREATE SCHEMA shop; CREATE TABLE shop.kept (id int PRIMARY KEY, v text); INSERT INTO shop.kept VALUES (1, 'dest')`)

	d := postgres.ADBPGDialect(map[proto.TableID][]string{{Schema: "shop", Name: "orders"}: {"region"}}, true)
	open := func() *postgres.Sink {
		s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres"), Dialect: d, Schema: &postgres.SchemaOptions{Flatten: func(proto.TableID) bool { return true }}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		return s
	}
	s := open()
	must(t, s.ApplyPreData(ctx, sc))
	const task = "adbpg"
	for i := range sc.Tables {
		def := &sc.Tables[i]
		keep := def.ID.Name == "kept"
		must(t, s.BeginTable(ctx, task, def.ID, 1, keep))
		cols := def.CopiedColumns()
		_, err := s.CopyChunk(ctx, apply.ChunkLoad{Task: task, Plan: 1, Table: def.ID, Columns: cols, Keep: keep, Format: proto.CopyText},
			func(w io.Writer) (int64, error) {
				tag, err := src.PgConn().CopyTo(ctx, w, fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT", identList(cols), pgx.Identifier{def.ID.Schema, def.ID.Name}.Sanitize()))
				return tag.RowsAffected(), err
			})
		must(t, err)
		must(t, s.FinishTable(ctx, task, def.ID, 1, proto.Position{LSN: 0x100}, 1))
	}
	must(t, s.ApplyPostData(ctx, sc))
	wantKept := func() {
		t.Helper()
		var got string
		if err := dst.QueryRow(ctx, `SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM shop.kept`).Scan(&got); err != nil || got != "1=dest,2=src" {
			t.Fatalf("the kept table holds %q (%v), want its own row 1 and the source's row 2", got, err)
		}
	}
	wantKept()
	compare := func() {
		t.Helper()
		for _, tb := range []string{"shop.orders", "shop.calc", "shop.events"} {
			if err := testenv.CompareTable(ctx, src, dst, tb, tb); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare()

	a := open()
	if _, err := a.Offsets(ctx, task); err != nil {
		t.Fatal(err)
	}
	b := &batcher{t: t, task: task, lsn: 0x200}
	orders := proto.TableID{Schema: "shop", Name: "orders"}
	ordersCols := []string{"region", "id", "v", "big"}
	calc := proto.TableID{Schema: "shop", Name: "calc"}
	events := proto.TableID{Schema: "shop", Name: "events"}

	// Set-based: update, delete, insert, key change, distribution-key change.
	testenv.MustExec(t, src, `UPDATE shop.orders SET v = 'changed' WHERE region = 'eu' AND id = 1;
		DELETE FROM shop.orders WHERE region = 'eu' AND id = 2;
		INSERT INTO shop.orders VALUES ('eu', 6, 'six', 'small');
		UPDATE shop.orders SET id = 30 WHERE region = 'eu' AND id = 3;
		UPDATE shop.orders SET region = 'us' WHERE region = 'eu' AND id = 4;
		INSERT INTO shop.calc (id, a, b) VALUES (10, 1, 2);
		UPDATE shop.calc SET a = 100 WHERE id = 1;
		UPDATE shop.events SET v = 'y' WHERE ctid = (SELECT ctid FROM shop.events WHERE at = 1 AND v = 'x' LIMIT 1);
		DELETE FROM shop.events WHERE at = 2`)
	ordersBig := func(region, id string) string {
		var v string
		if err := src.QueryRow(ctx, `SELECT big FROM shop.orders WHERE region = $1 AND id = $2::int`, region, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	b.seg(orders, ordersCols, proto.IdentityDefault,
		upd(nil, "eu", "1", "changed", "\x01"),
		del("eu", "2", "\x00", "\x00"),
		ins("eu", "6", "six", "small"),
		upd([]string{"eu", "3", "\x00", "\x00"}, "eu", "30", "v3", ordersBig("eu", "30")),
		upd([]string{"eu", "4", "\x00", "\x00"}, "us", "4", "v4", ordersBig("us", "4")))
	b.seg(calc, []string{"id", "a", "b", "ident"}, proto.IdentityDefault,
		ins("10", "1", "2", identOf(t, src, 10)),
		upd(nil, "1", "100", "10", identOf(t, src, 1)))
	b.seg(events, []string{"at", "v"}, proto.IdentityFull,
		upd([]string{"1", "x"}, "1", "y"),
		del("2", "z"))
	must(t, a.Apply(ctx, b.changes()))
	compare()

	// The destination already has a key the source inserts (it drifted):
	// the set-based COPY trips it, the row-by-row retry writes DELETE +
	// INSERT.
	testenv.MustExec(t, dst, `INSERT INTO shop.orders VALUES ('eu', 99, 'drift', 'drift')`)
	testenv.MustExec(t, src, `INSERT INTO shop.orders VALUES ('eu', 99, 'source', 'source'); INSERT INTO shop.orders VALUES ('eu', 98, 'another', 'one')`)
	b.seg(orders, ordersCols, proto.IdentityDefault, ins("eu", "98", "another", "one"), ins("eu", "99", "source", "source"))
	must(t, a.Apply(ctx, b.changes()))
	compare()

	// The destination lost a row the source updates: UPDATE finds it
	// missing, DELETE + INSERT writes it.
	testenv.MustExec(t, dst, `DELETE FROM shop.orders WHERE region = 'eu' AND id = 5`)
	testenv.MustExec(t, src, `UPDATE shop.orders SET v = 'found', big = 'again' WHERE region = 'eu' AND id = 5`)
	b.seg(orders, ordersCols, proto.IdentityDefault, upd(nil, "eu", "5", "found", "again"))
	must(t, a.Apply(ctx, b.changes()))
	compare()

	// A key change keeping an unchanged TOAST value: its new row takes
	// the value from the row at the old key.
	testenv.MustExec(t, src, `UPDATE shop.orders SET id = 100 WHERE region = 'eu' AND id = 1`)
	b.seg(orders, ordersCols, proto.IdentityDefault, upd([]string{"eu", "1", "\x00", "\x00"}, "eu", "100", "changed", "\x01"))
	must(t, a.Apply(ctx, b.changes()))
	compare()
	wantKept()

	// Replayed, the batches change nothing (positions, written without
	// ON CONFLICT, skip them).
	for _, ch := range b.sent {
		must(t, a.Apply(ctx, ch))
	}
	compare()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func identList(cols []string) string {
	out := ""
	for i, c := range cols {
		if i > 0 {
			out += ", "
		}
		out += pgx.Identifier{c}.Sanitize()
	}
	return out
}

func identOf(t *testing.T, src *pgx.Conn, id int) string {
	t.Helper()
	var v int64
	if err := src.QueryRow(context.Background(), `SELECT ident FROM shop.calc WHERE id = $1`, id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(v, 10)
}

// batcher builds apply.Changes with increasing positions.
type batcher struct {
	t    *testing.T
	task string
	lsn  proto.LSN
	idx  uint32
	segs []*apply.Segment
	sent []*apply.Changes
}

type rowChange struct {
	op       proto.Op
	old, new []string
}

// tuple of text values ("\x00" NULL, "\x01" unchanged TOAST).
func tuple(vals []string) proto.Tuple {
	t := proto.Tuple{Kinds: make([]byte, len(vals)), Values: make([][]byte, len(vals))}
	for i, v := range vals {
		switch v {
		case "\x00":
			t.Kinds[i] = proto.KindNull
		case "\x01":
			t.Kinds[i] = proto.KindToast
		default:
			t.Kinds[i], t.Values[i] = proto.KindText, []byte(v)
		}
	}
	return t
}

func ins(vals ...string) rowChange { return rowChange{op: proto.OpInsert, new: vals} }
func del(vals ...string) rowChange { return rowChange{op: proto.OpDelete, old: vals} }

// upd is an update to vals; old is the old row or key (nil: the key did
// not change).
func upd(old []string, vals ...string) rowChange {
	return rowChange{op: proto.OpUpdate, old: old, new: vals}
}

func (b *batcher) seg(table proto.TableID, cols []string, identity byte, changes ...rowChange) {
	s := &apply.Segment{Table: table, Identity: identity}
	for _, c := range cols {
		s.Columns = append(s.Columns, proto.Column{Name: c})
	}
	for _, c := range changes {
		b.idx++
		r := proto.Row{Op: c.op, Pos: proto.Position{LSN: b.lsn, Idx: b.idx}}
		if c.new != nil {
			r.New = tuple(c.new)
		}
		if c.old != nil {
			r.Old = tuple(c.old)
		}
		s.Rows = append(s.Rows, r)
	}
	b.segs = append(b.segs, s)
}

// changes is the segments so far as one batch, at the next position.
func (b *batcher) changes() *apply.Changes {
	ch := &apply.Changes{Task: b.task, Epoch: 1, Segments: b.segs, Positions: map[string]proto.Position{}, Tables: map[string]proto.TableID{}}
	for _, s := range b.segs {
		ch.Positions[s.Table.Key()] = s.Rows[len(s.Rows)-1].Pos
		ch.Tables[s.Table.Key()] = s.Table
	}
	b.segs = nil
	b.lsn += 0x100
	b.idx = 0
	b.sent = append(b.sent, ch)
	return ch
}
