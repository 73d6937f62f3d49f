package postgres

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Golden files of what the dialects send: the DDL of a representative
// schema (keys, a keyless table, a chosen distribution key, mapped types,
// identity and generated columns, a partitioned table) and the apply
// statements of a batch (insert, update, delete, key change,
// distribution-key change, a keyless table, the row-by-row retry, the
// positions), for AnalyticDB on Greenplum 6 and 7 and for PolarDB-O.
// Neither server runs here: the DDL is rendered from the schema as
// PostgreSQL 15's catalog reads it, the apply statements by the sink's
// own writer against a server that records them (recorder_test.go).
// -update rewrites them after a change made on purpose.

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

//go:embed testdata/dialects/schema.sql
var dialectSchemaSQL string

// goldenFile compares got with testdata/dialects/name, or writes it
// under -update.
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "dialects", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if string(want) != got {
		t.Fatalf("%s differs from what the dialect renders now (go test -run %s -update rewrites it after a change made on purpose):\n%s",
			path, t.Name(), firstDiff(string(want), got))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return ""
}

// readDialectSchema reads testdata/dialects/schema.sql as capture reads
// it from a PostgreSQL 15 source: the tables named (all when none).
func readDialectSchema(t *testing.T, tables ...string) *proto.Schema {
	t.Helper()
	src := testenv.NewPostgres(t)
	conn := testenv.Conn(t, src.DSN("postgres"))
	testenv.MustExec(t, conn, dialectSchemaSQL)
	sc, err := capture.ReadSchema(context.Background(), conn, []proto.ObjectSpec{{Schema: "shop", Tables: tables}})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// renderDDL is schema sync's statements at a dialect's server, in the
// order they run: pre-data, then post-data, each object of a working
// copy's step listed with it.
func renderDDL(t *testing.T, d *Dialect, sc *proto.Schema) string {
	t.Helper()
	o := &SchemaOptions{Dialect: d}
	if d.isADBPG() {
		o.Flatten = func(proto.TableID) bool { return true }
	}
	adapted, err := d.schema(sc)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- Schema sync at %s (server_version_num %d, Greenplum %t), rendered from testdata/dialects/schema.sql.\n", d.Name(), d.srv.version, d.srv.greenplum)
	for _, phase := range []struct {
		name  string
		steps []ddlStep
		pre   bool
	}{{"pre-data (before the full sync)", preDataSteps(adapted, o), true}, {"post-data (after it)", postDataSteps(adapted, o), false}} {
		fmt.Fprintf(&b, "\n-- %s\n", phase.name)
		for _, st := range phase.steps {
			if st.objects {
				fmt.Fprintf(&b, "\n-- %s\n", st.What)
				for _, obj := range adapted.Objects {
					if phase.pre && !obj.Kind.PreData() {
						continue
					}
					fmt.Fprintf(&b, "-- %s %s\n%s;\n", obj.Kind, obj.Ident(), obj.DDL)
					for _, after := range obj.After {
						fmt.Fprintf(&b, "%s;\n", after)
					}
				}
				continue
			}
			fmt.Fprintf(&b, "\n-- %s\n%s;\n", st.What, st.SQL)
		}
	}
	fmt.Fprintf(&b, "\n-- Sluice's own tables (positions, copy plans, conflicts), made when a sink opens\n%s;\n", d.ownTables(offsetDDL))
	return b.String()
}

// The tables of schema.sql AnalyticDB takes: shop."Levels" has a unique
// key without its primary key (refused: TestADBPGDistributionRefused).
var adbpgGoldenTables = []string{"customers", "orders", "codes", "events", "tokens", "payments"}

// adbpgGoldenKeys are the golden schema's chosen distribution keys.
var adbpgGoldenKeys = map[proto.TableID][]string{{Schema: "shop", Name: "orders"}: {"region"}}

func TestDialectDDLGolden(t *testing.T) {
	full := readDialectSchema(t)
	adbpg := &proto.Schema{}
	*adbpg = *full
	adbpg.Tables = nil
	for _, tb := range full.Tables {
		for _, name := range adbpgGoldenTables {
			if tb.ID.Name == name {
				adbpg.Tables = append(adbpg.Tables, tb)
			}
		}
	}
	for _, c := range []struct {
		file string
		d    *Dialect
		sc   *proto.Schema
	}{
		{"adbpg_gp6.ddl.sql", adbpgFor(greenplum6), adbpg},
		{"adbpg_gp7.ddl.sql", adbpgFor(greenplum7), adbpg},
		{"polardbo.ddl.sql", PolarDBODialect(), full},
	} {
		t.Run(c.file, func(t *testing.T) { goldenFile(t, c.file, renderDDL(t, c.d, c.sc)) })
	}
}

// adbpgFor is the golden AnalyticDB dialect on a server.
func adbpgFor(srv server) *Dialect {
	d := ADBPGDialect(adbpgGoldenKeys, false)
	d.srv = srv
	return d
}

// The apply statements of one batch, per dialect.
func TestDialectApplyGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		d    *Dialect
	}{
		{"adbpg_gp6.apply.sql", adbpgFor(greenplum6)},
		{"adbpg_gp7.apply.sql", adbpgFor(greenplum7)},
		{"polardbo.apply.sql", PolarDBODialect()},
	} {
		t.Run(c.file, func(t *testing.T) { goldenFile(t, c.file, renderApply(t, c.d)) })
	}
}

// Tables of the golden batch, as the apply reads them at the destination.
var (
	goldenOrders = proto.TableID{Schema: "shop", Name: "orders"}
	goldenEvents = proto.TableID{Schema: "shop", Name: "events"}
	goldenNotes  = proto.TableID{Schema: "shop", Name: "notes"}
	goldenCalc   = proto.TableID{Schema: "shop", Name: "calc"}
)

func goldenPlan(t *testing.T, d *Dialect, table proto.TableID, cols []string, types []string, pk []string, gen []generatedColumn) *segmentPlan {
	t.Helper()
	m := &tableMeta{types: map[string]string{}, fixed: map[string]bool{}, pk: pk, generated: gen}
	pc := make([]proto.Column, len(cols))
	for i, c := range cols {
		m.types[c] = d.castType(types[i])
		pc[i] = proto.Column{Name: c}
	}
	p, err := planSegment(m, table, pc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tup is a tuple of text values ("\x00" for NULL, "\x01" for an
// unchanged TOAST value).
func tup(vals ...string) proto.Tuple {
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

func renderApply(t *testing.T, d *Dialect) string {
	t.Helper()
	ctx := context.Background()
	rec := newRecorder(t)
	conn := rec.conn(t)
	s := &Sink{dialect: d, shards: 2, metas: map[string]*tableMeta{}, positions: map[string][]proto.Position{}}
	var b strings.Builder
	fmt.Fprintf(&b, "-- The apply at %s (server_version_num %d, Greenplum %t, INSERT ... ON CONFLICT %t): the statements of one batch, as the sink sends them.\n",
		d.Name(), d.srv.version, d.srv.greenplum, d.upserts())
	section := func(title string, run func(w *writer) error) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &writer{pg: conn.PgConn(), tx: tx, d: d}
		if err := run(w); err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n-- %s\n", title)
		for _, l := range rec.take() {
			b.WriteString(l + "\n")
		}
	}
	orders := goldenPlan(t, d, goldenOrders, []string{"region", "id", "ordered", "amount"}, []string{"text", "integer", "date", "numeric(12,2)"}, []string{"region", "id"}, nil)
	ordersRows := []proto.Row{
		{Op: proto.OpUpdate, New: tup("eu", "1", "2024-01-02", "10.00"), Old: tup("eu", "1", "\x00", "\x00")},
		{Op: proto.OpDelete, Old: tup("eu", "2", "\x00", "\x00")},
		{Op: proto.OpInsert, New: tup("eu", "3", "2024-01-03", "30.00")},
		// A key change, and a change of the distribution key (region).
		{Op: proto.OpUpdate, New: tup("eu", "11", "2024-01-04", "11.00"), Old: tup("eu", "10", "\x00", "\x00")},
		{Op: proto.OpUpdate, New: tup("us", "20", "2024-01-05", "20.00"), Old: tup("eu", "20", "\x00", "\x00")},
	}
	seg := plannedSegment{Segment: &apply.Segment{Table: goldenOrders, Identity: proto.IdentityDefault, Rows: ordersRows}, plan: orders}
	section("orders (primary key region, id; distributed by region at AnalyticDB): an update, a delete, an insert, a key change and a distribution-key change, set-based",
		func(w *writer) error { return w.segment(ctx, seg, false) })
	section("the same rows row by row (the retry after a unique violation), each a possible upsert", func(w *writer) error {
		w.lenient = true
		return w.segment(ctx, seg, true)
	})
	section("a key change whose new row keeps an unchanged TOAST value (notes: primary key id)", func(w *writer) error {
		notes := goldenPlan(t, d, goldenNotes, []string{"id", "body"}, []string{"bigint", "text"}, []string{"id"}, nil)
		return w.segment(ctx, plannedSegment{Segment: &apply.Segment{Table: goldenNotes, Identity: proto.IdentityDefault, Rows: []proto.Row{
			{Op: proto.OpUpdate, New: tup("2", "\x01"), Old: tup("1", "\x00")},
		}}, plan: notes}, false)
	})
	section("events, without a key (REPLICA IDENTITY FULL): an insert, an update, a delete", func(w *writer) error {
		events := goldenPlan(t, d, goldenEvents, []string{"at", "level"}, []string{"timestamp with time zone", "integer"}, nil, nil)
		return w.segment(ctx, plannedSegment{Segment: &apply.Segment{Table: goldenEvents, Identity: proto.IdentityFull, Rows: []proto.Row{
			{Op: proto.OpInsert, New: tup("2024-01-01 00:00:00+00", "1")},
			{Op: proto.OpUpdate, New: tup("2024-01-01 00:00:00+00", "2"), Old: tup("2024-01-01 00:00:00+00", "1")},
			{Op: proto.OpDelete, Old: tup("2024-01-01 00:00:00+00", "2")},
		}}, plan: events}, false)
	})
	if d.isADBPG() {
		section("calc, whose generated column total AnalyticDB computes after the write", func(w *writer) error {
			calc := goldenPlan(t, d, goldenCalc, []string{"id", "a", "b"}, []string{"integer", "integer", "integer"}, []string{"id"}, []generatedColumn{{name: "total", expr: "(a + b)"}})
			seg := plannedSegment{Segment: &apply.Segment{Table: goldenCalc, Identity: proto.IdentityDefault, Rows: []proto.Row{
				{Op: proto.OpInsert, New: tup("1", "2", "3")}, {Op: proto.OpUpdate, New: tup("2", "5", "5"), Old: tup("2", "\x00", "\x00")},
			}}, plan: calc}
			if err := w.segment(ctx, seg, false); err != nil {
				return err
			}
			return w.fillGenerated(ctx, seg)
		})
	}
	positions := []shardPosition{{table: goldenOrders, shard: 0, pos: proto.Position{LSN: 0x16B3748, Idx: 4}}, {table: goldenOrders, shard: 1, pos: proto.Position{LSN: 0x16B3748, Idx: 4}}}
	section("the batch's positions: rows created at zero where missing, then stored (both in the batch's transaction)", func(w *writer) error {
		if err := s.createOffsets(ctx, w.tx, "t", []string{"shop", "shop"}, []string{"orders", "orders"}, []int32{0, 1}); err != nil {
			return err
		}
		return s.writeOffsets(ctx, w.tx, "t", 7, positions)
	})
	section("sequences moved forward during incremental sync, never back (after a look-up of which exist)", func(w *writer) error {
		batch := []proto.SequenceUpdate{{Name: proto.TableID{Schema: "shop", Name: "ticket_seq"}, SequenceState: proto.SequenceState{LastValue: 42, IsCalled: true}}}
		names, values, called := sequenceArgs(batch)
		_, err := w.tx.Exec(ctx, d.advanceSequencesSQL(batch), names, values, called)
		return err
	})
	section("full sync: a table bound to its copy plan", func(w *writer) error {
		_, err := s.bindPlan(ctx, w.tx, "t", goldenOrders, 3)
		return err
	})
	section("full sync: a chunk into a table that keeps its rows (conflicting_tables: ignore), staged in pg_temp.sluice_keep", func(w *writer) error {
		sql := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.sluice_keep ON CONFLICT DO NOTHING", tableName(goldenOrders), `"region", "id", "amount"`, `"region", "id", "amount"`)
		if !d.upserts() {
			sql = keepNotExistsSQL(goldenOrders, `"region", "id", "amount"`, []string{"region", "id"})
		}
		_, err := w.tx.Exec(ctx, sql)
		return err
	})
	return b.String()
}

var _ = pgx.Identifier{}
