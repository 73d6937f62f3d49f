package verify_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// pair is a source and a destination database on one server.
type pair struct {
	src, dst *pgverify.Side
	srcConn  func(string)
	dstConn  func(string)
}

func newPair(t *testing.T, srcSchema, dstSchema string) pair {
	t.Helper()
	pg := testenv.NewPostgres(t)
	ctx := context.Background()
	admin := testenv.Conn(t, pg.DSN(testenv.DefaultDB))
	testenv.MustExec(t, admin, `CREATE DATABASE verify_dst`)
	// The destination's sessions show times elsewhere: the canonical form
	// does not depend on it.
	testenv.MustExec(t, admin, `ALTER DATABASE verify_dst SET timezone = 'Asia/Tokyo'`)
	src, err := pgxpool.New(ctx, pg.DSN(testenv.DefaultDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	dst, err := pgxpool.New(ctx, pg.DSN("verify_dst"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Close)
	exec := func(p *pgxpool.Pool) func(string) {
		return func(sql string) {
			t.Helper()
			if _, err := p.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
	}
	p := pair{src: pgverify.New(src, pgverify.Source), dst: pgverify.New(dst, pgverify.Destination), srcConn: exec(src), dstConn: exec(dst)}
	p.srcConn(srcSchema)
	p.dstConn(dstSchema)
	return p
}

// diffText lists a result's differences as "kind key (columns) xN".
func diffText(r proto.VerifyTableResult) []string {
	var out []string
	for _, d := range r.Differences {
		keys := make([]string, 0, len(d.Key))
		for k, v := range d.Key {
			keys = append(keys, k+"="+v)
		}
		slices.Sort(keys)
		s := d.Kind + " " + strings.Join(keys, ",")
		if len(d.Columns) > 0 {
			s += " (" + strings.Join(d.Columns, ",") + ")"
		}
		if d.Count > 1 {
			s += fmt.Sprintf(" x%d", d.Count)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func check(t *testing.T, what string, r proto.VerifyTableResult, want ...string) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("%s: %s", what, r.Error)
	}
	got := diffText(r)
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: differences\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var small = verify.Options{LeafRows: 8, Fanout: 4}

// Every type family compares by value, not by representation: a
// numeric's scale, a JSON document's key order, a date kept as a
// timestamp, a uuid kept as text, the sessions' time zones. Then one
// change of each family, a missing row and an extra row are named by
// key, with the column that differs, and nothing else is.
func TestTypeFamilies(t *testing.T) {
	cols := `n numeric(10,2), ts timestamptz, d date, j json, f float8, b bytea, arr int[], s text, u uuid, flag boolean, iv interval`
	p := newPair(t, `CREATE TABLE typed (id int PRIMARY KEY, `+cols+`)`,
		`CREATE TABLE typed (id int PRIMARY KEY, n numeric, ts timestamptz, d timestamp(0), j jsonb, f float8, b bytea, arr int[], s text, u text, flag boolean, iv interval)`)
	row := `SELECT g, g + 0.5, '2024-01-02 03:04:05.123456+00'::timestamptz + g * interval '1 hour', '2024-01-01'::date + g,
		json_build_object('b', g, 'a', 'x'), g / 3.0, decode(md5(g::text), 'hex'), ARRAY[g, g + 1], 'text ' || g,
		md5(g::text)::uuid, g % 2 = 0, make_interval(days => g) FROM generate_series(1, 40) g`
	p.srcConn(`INSERT INTO typed ` + row)
	p.dstConn(`INSERT INTO typed SELECT g, g + 0.50, '2024-01-02 12:04:05.123456+09'::timestamptz + g * interval '1 hour', ('2024-01-01'::date + g)::timestamp,
		jsonb_build_object('a', 'x', 'b', g), g / 3.0, decode(md5(g::text), 'hex'), ARRAY[g, g + 1], 'text ' || g,
		md5(g::text)::uuid::text, g % 2 = 0, make_interval(days => g) FROM generate_series(1, 40) g`)
	tbl := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "typed"}, Dest: proto.TableID{Schema: "public", Name: "typed"},
		Columns: []string{"id", "n", "ts", "d", "j", "f", "b", "arr", "s", "u", "flag", "iv"}, Key: []int{0}}
	tbl.DestColumns = tbl.Columns
	ctx := context.Background()
	res := verify.Table(ctx, p.src, p.dst, nil, tbl, small)
	check(t, "equal values in other representations", res)
	if res.Rows != 40 || res.Ranges != 1 {
		t.Fatalf("an equal table: %d rows in %d ranges, want 40 in 1", res.Rows, res.Ranges)
	}
	p.dstConn(`UPDATE typed SET n = n + 0.01 WHERE id = 2; UPDATE typed SET ts = ts + interval '1 microsecond' WHERE id = 3;
		UPDATE typed SET d = d + interval '1 second' WHERE id = 4; UPDATE typed SET j = j || '{"c": 1}' WHERE id = 5;
		UPDATE typed SET f = f + 1e-9 WHERE id = 6; UPDATE typed SET b = b || '\x00' WHERE id = 7;
		UPDATE typed SET arr = ARRAY[0] WHERE id = 8; UPDATE typed SET s = NULL WHERE id = 9;
		UPDATE typed SET u = upper(u) WHERE id = 10; UPDATE typed SET flag = NOT flag WHERE id = 11;
		UPDATE typed SET iv = iv + interval '1 month' WHERE id = 12;
		DELETE FROM typed WHERE id = 13; INSERT INTO typed (id) VALUES (99)`)
	res = verify.Table(ctx, p.src, p.dst, nil, tbl, small)
	check(t, "one change per family", res,
		"changed id=2 (n)", "changed id=3 (ts)", "changed id=4 (d)", "changed id=5 (j)", "changed id=6 (f)", "changed id=7 (b)",
		"changed id=8 (arr)", "changed id=9 (s)", "changed id=10 (u)", "changed id=11 (flag)", "changed id=12 (iv)",
		"missing id=13", "extra id=99")
	if res.Rows != 40 {
		t.Fatalf("%d source rows compared, want 40", res.Rows)
	}
}

// A big table that differs in a few scattered rows is split only where
// it differs: the ranges checksummed stay few, and only those rows are
// named. Composite text keys split the same at both ends.
func TestBisection(t *testing.T) {
	schema := `CREATE TABLE big (region text, id int, v text, PRIMARY KEY (region, id))`
	p := newPair(t, schema, schema)
	fill := `INSERT INTO big SELECT (ARRAY['eu', 'US', 'apac', 'Ämea'])[1 + g % 4], g, md5(g::text) FROM generate_series(1, 20000) g`
	p.srcConn(fill)
	p.dstConn(fill)
	p.dstConn(`UPDATE big SET v = 'x' WHERE id IN (17, 9001); DELETE FROM big WHERE id = 15000; INSERT INTO big VALUES ('eu', 20001, 'new')`)
	tbl := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "big"}, Dest: proto.TableID{Schema: "public", Name: "big"},
		Columns: []string{"region", "id", "v"}, DestColumns: []string{"region", "id", "v"}, Key: []int{0, 1}}
	res := verify.Table(context.Background(), p.src, p.dst, nil, tbl, verify.Options{LeafRows: 100, Fanout: 16})
	check(t, "scattered differences", res, "changed id=17,region=US (v)", "changed id=9001,region=US (v)", "missing id=15000,region=eu", "extra id=20001,region=eu")
	if res.Rows != 20000 {
		t.Fatalf("%d rows compared, want 20000", res.Rows)
	}
	// Four differing rows: at most 4 paths of 1 + 16 + 16 + ... ranges.
	if res.Ranges > 4*16*4 {
		t.Fatalf("%d ranges checksummed for 4 differing rows", res.Ranges)
	}
}

// A keyless table is a multiset: a duplicate row missing, one too many,
// and a row changed are each named by their values with how many copies.
func TestKeyless(t *testing.T) {
	schema := `CREATE TABLE events (kind text, n int)`
	p := newPair(t, schema, schema)
	p.srcConn(`INSERT INTO events VALUES ('a', 1), ('a', 1), ('a', 1), ('b', 2), ('c', NULL), ('d', 4)`)
	p.dstConn(`INSERT INTO events VALUES ('a', 1), ('a', 1), ('b', 2), ('b', 2), ('c', NULL), ('d', 5)`)
	tbl := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "events"}, Dest: proto.TableID{Schema: "public", Name: "events"},
		Columns: []string{"kind", "n"}, DestColumns: []string{"kind", "n"}}
	res := verify.Table(context.Background(), p.src, p.dst, nil, tbl, small)
	check(t, "keyless", res, "missing kind=a,n=1", "extra kind=b,n=2", "missing kind=d,n=4", "extra kind=d,n=5")
}

// The task's renames and filter: the destination's columns have other
// names, and it holds only the rows the filter passes, so a row outside
// the filter at the destination is extra, and a renamed column's change
// is named by the source's column.
func TestRenamesAndFilter(t *testing.T) {
	p := newPair(t, `CREATE TABLE orders (id int PRIMARY KEY, amount int, region text)`,
		`CREATE SCHEMA sales; CREATE TABLE sales.orders_eu (id int PRIMARY KEY, total int, region text)`)
	p.srcConn(`INSERT INTO orders SELECT g, g * 10, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 30) g`)
	p.dstConn(`INSERT INTO sales.orders_eu SELECT g, g * 10, 'eu' FROM generate_series(2, 30, 2) g;
		UPDATE sales.orders_eu SET total = 0 WHERE id = 4; INSERT INTO sales.orders_eu VALUES (5, 50, 'us')`)
	tbl := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "orders"}, Dest: proto.TableID{Schema: "sales", Name: "orders_eu"},
		Columns: []string{"id", "amount", "region"}, DestColumns: []string{"id", "total", "region"}, Key: []int{0}, Filter: "region = 'eu'"}
	res := verify.Table(context.Background(), p.src, p.dst, nil, tbl, small)
	check(t, "renames and filter", res, "changed id=4 (amount)", "extra id=5")
	if res.Rows != 15 {
		t.Fatalf("%d rows compared, want the filter's 15", res.Rows)
	}
}

// Continuous verification compares one slice of the key space at a
// time (Options.Range, from Window): each difference is found in exactly
// one slice, rows beyond the source's smallest and largest keys (extra
// at the destination, or added since) in the first and last, the slices'
// rows add up to the table's, and a range leaves what is outside it
// alone. For an integer key (slices of one width, the first level cut at
// once for a big range) and a composite text key (slices by key order).
func TestWindows(t *testing.T) {
	schema := `CREATE TABLE nums (id int PRIMARY KEY, v text); CREATE TABLE words (region text, id int, v text, PRIMARY KEY (region, id))`
	p := newPair(t, schema, schema)
	fill := `INSERT INTO nums SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
		INSERT INTO words SELECT (ARRAY['eu', 'US', 'apac'])[1 + g % 3], g, md5(g::text) FROM generate_series(1, 3000) g; ANALYZE`
	p.srcConn(fill)
	p.dstConn(fill)
	p.dstConn(`UPDATE nums SET v = 'x' WHERE id IN (5, 1500); DELETE FROM nums WHERE id = 2999; INSERT INTO nums VALUES (-7, 'below'), (9000, 'above');
		UPDATE words SET v = 'x' WHERE id IN (3, 1500); DELETE FROM words WHERE id = 2998; INSERT INTO words VALUES ('aaa', 1, 'first'), ('zzz', 1, 'last')`)
	ctx := context.Background()
	for _, tc := range []struct {
		tbl  *proto.VerifyTable
		want []string
	}{
		{&proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "nums"}, Dest: proto.TableID{Schema: "public", Name: "nums"},
			Columns: []string{"id", "v"}, DestColumns: []string{"id", "v"}, Key: []int{0}},
			[]string{"changed id=5 (v)", "changed id=1500 (v)", "missing id=2999", "extra id=-7", "extra id=9000"}},
		{&proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "words"}, Dest: proto.TableID{Schema: "public", Name: "words"},
			Columns: []string{"region", "id", "v"}, DestColumns: []string{"region", "id", "v"}, Key: []int{0, 1}},
			[]string{"changed id=3,region=eu (v)", "changed id=1500,region=eu (v)", "missing id=2998,region=US", "extra id=1,region=aaa", "extra id=1,region=zzz"}},
	} {
		const n = 7
		var found []string
		var rows int64
		for k := range n {
			r, err := verify.Window(ctx, p.src, p.dst, tc.tbl, 3000, k, n)
			if err != nil {
				t.Fatal(err)
			}
			if (k == 0) != (r.From == nil) || (k == n-1) != (r.To == nil) {
				t.Fatalf("%s slice %d of %d: %+v", tc.tbl.Source, k, n, r)
			}
			res := verify.Table(ctx, p.src, p.dst, nil, tc.tbl, verify.Options{LeafRows: 20, Fanout: 4, Range: &r, RangeRows: 3000 / n})
			if res.Error != "" {
				t.Fatalf("%s slice %d: %s", tc.tbl.Source, k, res.Error)
			}
			if res.Rows < 3000/n/2 || res.Rows > 3000/n*2 {
				t.Errorf("%s slice %d of %d (%+v): %d rows", tc.tbl.Source, k, n, r, res.Rows)
			}
			rows += res.Rows
			found = append(found, diffText(res)...)
		}
		slices.Sort(found)
		slices.Sort(tc.want)
		if strings.Join(found, "\n") != strings.Join(tc.want, "\n") || rows != 3000 {
			t.Fatalf("%s: %d rows in the slices, differences\n%s\nwant 3000 rows and\n%s", tc.tbl.Source, rows, strings.Join(found, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	// One slice, and a keyless table: the whole table.
	tbl := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: "nums"}, Columns: []string{"id"}}
	if r, err := verify.Window(ctx, p.src, p.dst, tbl, 3000, 3, 7); err != nil || r.From != nil || r.To != nil {
		t.Fatalf("keyless: %+v %v", r, err)
	}
}
