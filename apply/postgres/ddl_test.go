package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// readShape reads a table's definition as the source's catalog read
// gives it (capture); nil when there is no such table.
func readShape(t *testing.T, conn *pgx.Conn, table string) *proto.TableDef {
	t.Helper()
	def, err := capture.ReadTableDef(context.Background(), conn, table)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// ddlHarness makes schema changes at a "source" schema of the test
// database, and applies them as DDL events to the sink.
type ddlHarness struct {
	t     *testing.T
	sink  *postgres.Sink
	conn  *pgx.Conn
	names *proto.NameMap
	epoch uint64
	idx   uint32
}

// change runs sql and returns the event of the table before (at table)
// and after it (at renamed, or table when renamed is "").
func (h *ddlHarness) change(table, renamed, sql string) *proto.DDLEvent {
	h.t.Helper()
	if renamed == "" {
		renamed = table
	}
	old := readShape(h.t, h.conn, table)
	testenv.MustExec(h.t, h.conn, sql)
	h.idx++
	tag := strings.Join(strings.Fields(sql)[:2], " ")
	return &proto.DDLEvent{Pos: proto.Position{LSN: 0x3000, Idx: h.idx}, Tag: tag, Query: sql, Old: old, New: readShape(h.t, h.conn, renamed)}
}

func (h *ddlHarness) apply(ev *proto.DDLEvent, ops proto.DDLOpSet) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sink.ApplyDDL(ctx, "t", h.epoch, ev, h.names, ops); err != nil {
		h.t.Fatalf("%s: %v", ev.Query, err)
	}
}

// same checks that the destination table has the source's definition,
// the source's schema names replaced in definitions (not in defaults: the
// sequences keep their source names).
func (h *ddlHarness) same(src *proto.TableDef, dest string, schemas ...string) {
	h.t.Helper()
	want := *src
	want.ID.Schema = h.names.Table(src.ID).Schema
	replace := strings.NewReplacer(schemas...)
	want.Constraints = append([]proto.ConstraintDef(nil), src.Constraints...)
	for i := range want.Constraints {
		c := &want.Constraints[i]
		c.Def = replace.Replace(c.Def)
		if c.References != nil {
			ref := *c.References
			ref.Table = h.names.Table(ref.Table)
			c.References = &ref
		}
	}
	want.Indexes = append([]proto.IndexDef(nil), src.Indexes...)
	for i := range want.Indexes {
		want.Indexes[i].Def = replace.Replace(want.Indexes[i].Def)
	}
	sameShape(h.t, readShape(h.t, h.conn, dest), &want)
}

// sameShape compares definitions regardless of what differs between two
// tables that are alike: attribute numbers (columns dropped on one side
// only), object ids, and the fingerprints that hold them.
func sameShape(t *testing.T, got, want *proto.TableDef) {
	t.Helper()
	norm := func(d *proto.TableDef) *proto.TableDef {
		if d == nil {
			return nil
		}
		out := *d
		out.OID = 0
		out.Columns = append([]proto.ColumnDef(nil), d.Columns...)
		for i := range out.Columns {
			out.Columns[i].Num, out.Columns[i].TypeOID, out.Columns[i].Uses = 0, 0, nil
		}
		out.Constraints = append([]proto.ConstraintDef(nil), d.Constraints...)
		for i := range out.Constraints {
			out.Constraints[i].Columns, out.Constraints[i].Fingerprint = nil, ""
		}
		out.Indexes = append([]proto.IndexDef(nil), d.Indexes...)
		for i := range out.Indexes {
			out.Indexes[i].Columns, out.Indexes[i].Fingerprint = nil, ""
		}
		return &out
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("destination table:\n%s\nwant:\n%s", gj, wj)
	}
}

// stored checks every shard of a destination table holds pos.
func (h *ddlHarness) stored(dest proto.TableID, pos proto.Position) {
	h.t.Helper()
	rows, err := h.conn.Query(context.Background(), `SELECT lsn::text, idx FROM sluice.apply_offsets
		WHERE task = 't' AND schema_name = $1 AND table_name = $2 ORDER BY shard`, dest.Schema, dest.Name)
	if err != nil {
		h.t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var lsn string
		var idx int64
		if err := rows.Scan(&lsn, &idx); err != nil {
			h.t.Fatal(err)
		}
		l, err := proto.ParseLSN(lsn)
		if err != nil {
			h.t.Fatal(err)
		}
		got = append(got, proto.Position{LSN: l, Idx: uint32(idx)}.String())
	}
	if want := []string{pos.String(), pos.String()}; !reflect.DeepEqual(got, want) {
		h.t.Fatalf("positions of %s: %v, want %v", dest, got, want)
	}
}

func (h *ddlHarness) oid(sql string) uint32 {
	h.t.Helper()
	var oid uint32
	if err := h.conn.QueryRow(context.Background(), sql).Scan(&oid); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	return oid
}

func allOpsBut(op string) proto.DDLOpSet {
	ops := proto.DDLOpSet{}
	for _, o := range proto.DDLOperations {
		ops[o] = o != op
	}
	return ops
}

func TestApplyDDL(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	sink, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(ctx) })
	if _, err := sink.Offsets(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `SET search_path = pg_catalog; CREATE SCHEMA src; CREATE SCHEMA arch`)
	// The source schemas src and arch land in dst and darch.
	h := &ddlHarness{t: t, sink: sink, conn: conn, epoch: 1, names: (&proto.TaskSpec{Objects: []proto.ObjectSpec{
		{Schema: "src", RenameSchema: "dst"}, {Schema: "arch", RenameSchema: "darch"},
	}}).Names()}
	toDest := []string{"src.", "dst.", "arch.", "darch."}
	items := proto.TableID{Schema: "dst", Name: "items"}

	t.Run("create table", func(t *testing.T) {
		h.t = t
		ev := h.change("src.owners", "", `CREATE TABLE src.owners (id int PRIMARY KEY)`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.owners", toDest...)
		ev = h.change("src.items", "", `CREATE TABLE src.items (
				id serial PRIMARY KEY,
				code bigint GENERATED BY DEFAULT AS IDENTITY,
				name text,
				qty integer CHECK (qty >= 0),
				price numeric(10,2),
				total numeric GENERATED ALWAYS AS (price * 2) STORED);
			CREATE INDEX items_name_idx ON src.items (name);
			ALTER TABLE src.items REPLICA IDENTITY FULL`)
		if len(ev.New.Sequences) != 1 || ev.New.ReplicaIdentity != 'f' {
			t.Fatalf("source shape: %+v", ev.New)
		}
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
		h.stored(items, ev.Pos)
		testenv.MustExec(t, conn, `INSERT INTO dst.items (name, qty, price) VALUES ('x', 1, 1.5)`)
		var code int64
		var total string
		if err := conn.QueryRow(ctx, `SELECT code, total::text FROM dst.items`).Scan(&code, &total); err != nil {
			t.Fatal(err)
		}
		if code != 1 || total != "3.00" {
			t.Fatalf("identity %d, generated %s; want 1 and 3.00", code, total)
		}
	})

	t.Run("add column", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items ADD COLUMN note text, ADD COLUMN status text NOT NULL DEFAULT 'new'`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
		var status string
		if err := conn.QueryRow(ctx, `SELECT status FROM dst.items`).Scan(&status); err != nil || status != "new" {
			t.Fatalf("existing row's new column: %q, %v", status, err)
		}
	})

	t.Run("operation left out", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items ADD COLUMN extra int`)
		h.apply(ev, allOpsBut(proto.DDLAddColumn))
		for _, c := range readShape(t, conn, "dst.items").Columns {
			if c.Name == "extra" {
				t.Fatal("add_column was left out, but the column was added")
			}
		}
		h.stored(items, ev.Pos)
		// Dropping what the destination never had is no error.
		ev = h.change("src.items", "", `ALTER TABLE src.items DROP COLUMN extra`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
	})

	t.Run("alter column", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items ALTER COLUMN qty TYPE bigint,
			ALTER COLUMN name TYPE varchar(20), ALTER COLUMN name SET NOT NULL, ALTER COLUMN status DROP DEFAULT`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
	})

	t.Run("rename column and replay", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items RENAME COLUMN note TO remark`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
		// Run again, the rename would fail: the column is gone.
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
		h.stored(items, ev.Pos)
	})

	t.Run("drop column", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items DROP COLUMN remark`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
	})

	t.Run("constraints and indexes", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "", `ALTER TABLE src.items ADD COLUMN owner_id int REFERENCES src.owners (id),
				ADD CONSTRAINT items_name_key UNIQUE (name), ADD CONSTRAINT items_status_check CHECK (status <> '');
			CREATE UNIQUE INDEX items_lower_name ON src.items (lower(name)) WHERE qty > 0;
			DROP INDEX src.items_name_idx`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.items", toDest...)
	})

	t.Run("rename table", func(t *testing.T) {
		h.t = t
		ev := h.change("src.items", "src.goods", `ALTER TABLE src.items RENAME TO goods`)
		h.apply(ev, nil)
		h.same(ev.New, "dst.goods", toDest...)
		if readShape(t, conn, "dst.items") != nil {
			t.Fatal("dst.items is still there")
		}
		h.stored(items, ev.Pos)
		h.stored(proto.TableID{Schema: "dst", Name: "goods"}, ev.Pos)
	})

	t.Run("set schema", func(t *testing.T) {
		h.t = t
		// The source moves the serial's sequence along: the default
		// changes too.
		ev := h.change("src.goods", "arch.goods", `ALTER TABLE src.goods SET SCHEMA arch`)
		h.apply(ev, nil)
		h.same(ev.New, "darch.goods", toDest...)
		h.stored(proto.TableID{Schema: "darch", Name: "goods"}, ev.Pos)
	})

	t.Run("drop table", func(t *testing.T) {
		h.t = t
		// CASCADE: the destination's default uses the source's sequence
		// (one database plays both), which goes with the source table.
		ev := h.change("arch.goods", "", `DROP TABLE arch.goods CASCADE`)
		h.apply(ev, nil)
		if readShape(t, conn, "darch.goods") != nil {
			t.Fatal("darch.goods is still there")
		}
		h.stored(proto.TableID{Schema: "darch", Name: "goods"}, ev.Pos)
	})

	t.Run("renamed names in definitions", func(t *testing.T) {
		h.t = t
		h.names = (&proto.TaskSpec{Objects: []proto.ObjectSpec{{Schema: "public", Rename: map[string]string{"t": "t2", "t.a": "aa"}}}}).Names()
		seq := proto.TableID{Schema: "seq s", Name: "t id seq"}
		// Fingerprints stand for the catalog's: they do not change when a
		// column is renamed.
		shape := func(a string) *proto.TableDef {
			r := strings.NewReplacer("$a", a)
			return &proto.TableDef{
				ID: proto.TableID{Schema: "public", Name: "t"}, ReplicaIdentity: 'd', Sequences: []proto.TableID{seq}, PrimaryKey: []string{"id"},
				Columns: []proto.ColumnDef{
					{Num: 1, Name: "id", Type: "integer", NotNull: true, Default: `nextval('"seq s"."t id seq"'::regclass)`},
					{Num: 2, Name: a, Type: "integer"},
					{Num: 3, Name: "b", Type: "text"},
				},
				Constraints: []proto.ConstraintDef{
					{Name: "t_pkey", Kind: 'p', Def: "PRIMARY KEY (id)", Validated: true, Fingerprint: "pk"},
					{Name: "t_a_b_key", Kind: 'u', Def: r.Replace("UNIQUE ($a, b)"), Validated: true, Fingerprint: "uk"},
					{Name: "t_a_check", Kind: 'c', Def: r.Replace("CHECK (($a > 0))"), Validated: true, Fingerprint: "ck"},
					{Name: "t_a_fkey", Kind: 'f', Def: r.Replace("FOREIGN KEY ($a) REFERENCES public.t(id)"), Validated: true, Fingerprint: "fk",
						References: &proto.Reference{From: []string{a}, Table: proto.TableID{Schema: "public", Name: "t"}, Columns: []string{"id"}}},
				},
				Indexes: []proto.IndexDef{
					{Name: "t_a_idx", Def: r.Replace("btree ($a) WHERE ($a IS NOT NULL)"), Fingerprint: "ix"},
					{Name: "t_lower_b", Def: r.Replace("btree (lower(b), $a) INCLUDE (id)"), Fingerprint: "lx"},
				},
			}
		}
		// At the destination, only the name of the table and its column a
		// differ: in the definitions too.
		dest := func(a string) *proto.TableDef {
			sh := shape(a)
			sh.ID.Name = "t2"
			for i := range sh.Constraints {
				if c := &sh.Constraints[i]; c.References != nil {
					c.Def = strings.ReplaceAll(c.Def, "public.t(", "public.t2(")
					c.References.Table.Name = "t2"
				}
			}
			return sh
		}
		h.idx++
		create := &proto.DDLEvent{Pos: proto.Position{LSN: 0x3000, Idx: h.idx}, Tag: "CREATE TABLE", New: shape("a")}
		h.apply(create, nil)
		sameShape(t, readShape(t, conn, "public.t2"), dest("aa"))
		h.stored(proto.TableID{Schema: "public", Name: "t2"}, create.Pos)

		// A source rename of a changes the definitions' text, not the
		// constraints and indexes: they stay, with their column renamed.
		check := h.oid(`SELECT oid FROM pg_constraint WHERE conname = 't_a_check'`)
		index := h.oid(`SELECT 'public.t_a_idx'::regclass::oid`)
		h.idx++
		rename := &proto.DDLEvent{Pos: proto.Position{LSN: 0x3000, Idx: h.idx}, Tag: "ALTER TABLE", Old: shape("a"), New: shape("c")}
		h.apply(rename, nil)
		sameShape(t, readShape(t, conn, "public.t2"), dest("c"))
		if h.oid(`SELECT oid FROM pg_constraint WHERE conname = 't_a_check'`) != check || h.oid(`SELECT 'public.t_a_idx'::regclass::oid`) != index {
			t.Fatal("a column rename made constraints or indexes again")
		}
	})

	t.Run("fenced", func(t *testing.T) {
		h.t = t
		add := func(epoch uint64, col string) error {
			old := shapeOf(t, conn, "public.t2", "t")
			nw := shapeOf(t, conn, "public.t2", "t")
			nw.Columns = append(nw.Columns, proto.ColumnDef{Num: 10 + len(old.Columns), Name: col, Type: "text"})
			h.idx++
			ev := &proto.DDLEvent{Pos: proto.Position{LSN: 0x3000, Idx: h.idx}, Tag: "ALTER TABLE", Old: old, New: nw}
			return sink.ApplyDDL(ctx, "t", epoch, ev, h.names, nil)
		}
		if err := add(2, "d"); err != nil {
			t.Fatal(err)
		}
		if err := add(1, "e"); !errors.Is(err, apply.ErrFenced) {
			t.Fatalf("an older epoch after a newer one: %v", err)
		}
		var cols []string
		for _, c := range readShape(t, conn, "public.t2").Columns {
			cols = append(cols, c.Name)
		}
		if want := []string{"id", "c", "b", "d"}; !reflect.DeepEqual(cols, want) {
			t.Fatalf("columns %v, want %v", cols, want)
		}
	})

	t.Run("wait only", func(t *testing.T) {
		h.t = t
		h.idx++
		ev := &proto.DDLEvent{Pos: proto.Position{LSN: 0x3000, Idx: h.idx}, Tag: "ALTER TABLE", WaitOnly: true,
			Old: &proto.TableDef{ID: proto.TableID{Schema: "public", Name: "w"}}, New: &proto.TableDef{ID: proto.TableID{Schema: "public", Name: "w_new"}}}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := sink.ApplyDDL(short, "t", 2, ev, nil, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting for a table nobody makes: %v", err)
		}
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- sink.ApplyDDL(wait, "t", 2, ev, nil, nil) }()
		testenv.MustExec(t, conn, `CREATE TABLE public.w_new (x int)`)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		h.stored(proto.TableID{Schema: "public", Name: "w_new"}, ev.Pos)
		// A redelivery does not wait for a table renamed again since.
		testenv.MustExec(t, conn, `DROP TABLE public.w_new`)
		again, cancel2 := context.WithTimeout(ctx, 5*time.Second)
		defer cancel2()
		if err := sink.ApplyDDL(again, "t", 2, ev, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// shapeOf reads a destination table's definition under its source name.
func shapeOf(t *testing.T, conn *pgx.Conn, dest, srcName string) *proto.TableDef {
	sh := readShape(t, conn, dest)
	sh.ID.Name = srcName
	return sh
}
