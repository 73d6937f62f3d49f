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
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// readShape reads a table's shape the way the source's DDL trigger
// describes it (conn has search_path = pg_catalog, so user objects print
// qualified); nil when there is no such table.
func readShape(t *testing.T, conn *pgx.Conn, table string) *proto.TableShape {
	t.Helper()
	ctx := context.Background()
	var sh proto.TableShape
	err := conn.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relreplident::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = pg_catalog.to_regclass($1)`, table).Scan(&sh.Schema, &sh.Name, &sh.Identity)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatalf("read shape of %s: %v", table, err)
	}
	rows, err := conn.Query(ctx, `SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c proto.ShapeColumn
		if err := rows.Scan(&c.Num, &c.Name, &c.Type, &c.NotNull, &c.Default, &c.Identity, &c.Generated); err != nil {
			t.Fatal(err)
		}
		sh.Columns = append(sh.Columns, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(ctx, `SELECT conname, contype::text, pg_get_constraintdef(oid)
		FROM pg_constraint WHERE conrelid = $1::text::regclass ORDER BY conname`, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c proto.ShapeConstraint
		if err := rows.Scan(&c.Name, &c.Type, &c.Def); err != nil {
			t.Fatal(err)
		}
		sh.Constraints = append(sh.Constraints, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1::text::regclass
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
		ORDER BY c.relname`, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ix proto.ShapeIndex
		if err := rows.Scan(&ix.Name, &ix.Def); err != nil {
			t.Fatal(err)
		}
		sh.Indexes = append(sh.Indexes, ix)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(ctx, `SELECT DISTINCT dep.refobjid::regclass::text
		FROM pg_attrdef ad
		JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid AND dep.refclassid = 'pg_class'::regclass
		JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S'
		WHERE ad.adrelid = $1::text::regclass ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq string
		if err := rows.Scan(&seq); err != nil {
			t.Fatal(err)
		}
		sh.Sequences = append(sh.Sequences, seq)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return &sh
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

// same checks that the destination table has the source's shape, the
// source's schema names replaced in definitions (not in defaults: the
// sequences keep their source names).
func (h *ddlHarness) same(src *proto.TableShape, dest string, schemas ...string) {
	h.t.Helper()
	want := *src
	want.Schema = h.names.Table(src.ID()).Schema
	replace := strings.NewReplacer(schemas...)
	want.Constraints = append([]proto.ShapeConstraint(nil), src.Constraints...)
	for i := range want.Constraints {
		want.Constraints[i].Def = replace.Replace(want.Constraints[i].Def)
	}
	want.Indexes = append([]proto.ShapeIndex(nil), src.Indexes...)
	for i := range want.Indexes {
		want.Indexes[i].Def = replace.Replace(want.Indexes[i].Def)
	}
	sameShape(h.t, readShape(h.t, h.conn, dest), &want)
}

// sameShape compares shapes regardless of attribute numbers, which differ
// where columns were dropped on one side only.
func sameShape(t *testing.T, got, want *proto.TableShape) {
	t.Helper()
	norm := func(sh *proto.TableShape) *proto.TableShape {
		if sh == nil {
			return nil
		}
		out := *sh
		out.Columns = append([]proto.ShapeColumn(nil), sh.Columns...)
		for i := range out.Columns {
			out.Columns[i].Num = 0
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
		if len(ev.New.Sequences) != 1 || ev.New.Identity != "f" {
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
		seq := `"seq s"."t id seq"`
		shape := func(a string) *proto.TableShape {
			r := strings.NewReplacer("$a", a)
			return &proto.TableShape{
				Schema: "public", Name: "t", Identity: "d", Sequences: []string{seq},
				Columns: []proto.ShapeColumn{
					{Num: 1, Name: "id", Type: "integer", NotNull: true, Default: `nextval('"seq s"."t id seq"'::regclass)`},
					{Num: 2, Name: a, Type: "integer"},
					{Num: 3, Name: "b", Type: "text"},
				},
				Constraints: []proto.ShapeConstraint{
					{Name: "t_a_b_key", Type: "u", Def: r.Replace("UNIQUE ($a, b)")},
					{Name: "t_a_check", Type: "c", Def: r.Replace("CHECK (($a > 0))")},
					{Name: "t_a_fkey", Type: "f", Def: r.Replace("FOREIGN KEY ($a) REFERENCES public.t(id)")},
					{Name: "t_pkey", Type: "p", Def: "PRIMARY KEY (id)"},
				},
				Indexes: []proto.ShapeIndex{
					{Name: "t_a_idx", Def: r.Replace("CREATE INDEX t_a_idx ON public.t USING btree ($a) WHERE ($a IS NOT NULL)")},
					{Name: "t_lower_b", Def: r.Replace("CREATE INDEX t_lower_b ON public.t USING btree (lower(b), $a) INCLUDE (id)")},
				},
			}
		}
		// At the destination, only the name of the table and its column a
		// differ: in the definitions too.
		dest := func(a string) *proto.TableShape {
			sh := shape(a)
			sh.Name = "t2"
			for i := range sh.Constraints {
				sh.Constraints[i].Def = strings.ReplaceAll(sh.Constraints[i].Def, "public.t(", "public.t2(")
			}
			for i := range sh.Indexes {
				sh.Indexes[i].Def = strings.ReplaceAll(sh.Indexes[i].Def, "public.t ", "public.t2 ")
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
			nw.Columns = append(nw.Columns, proto.ShapeColumn{Num: 10 + len(old.Columns), Name: col, Type: "text"})
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
			Old: &proto.TableShape{Schema: "public", Name: "w"}, New: &proto.TableShape{Schema: "public", Name: "w_new"}}
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

// shapeOf reads a destination table's shape under its source name.
func shapeOf(t *testing.T, conn *pgx.Conn, dest, srcName string) *proto.TableShape {
	sh := readShape(t, conn, dest)
	sh.Name = srcName
	return sh
}
