package rowside_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
	"github.com/sluicedb/sluice/verify/rowside"
	"github.com/sluicedb/sluice/verify/verifytest"
)

// families has many values of every type family pgverify puts in a
// canonical form of its own, and of types it takes as they print, with
// the edges of each: NaN and the infinities, -0, exponents, BC years and
// years past 9999, text that record_out and array_out must quote, json
// with duplicate keys, escapes and numbers in every notation.
const families = `
SELECT setseed(0.42);
CREATE TABLE families (
	id int PRIMARY KEY,
	i2 int2, i4 int4, i8 int8, o oid,
	n numeric, n2 numeric(12,4),
	f4 float4, f8 float8,
	bo bool,
	t text, vc varchar(20), bc char(6), qc "char", nm name,
	u uuid,
	tstz timestamptz, ts timestamp, d date,
	j json, jb jsonb,
	b bytea,
	a_i int[], a_t text[], a_n numeric[], a_f float8[], a_f4 float4[], a_bo bool[], a_tstz timestamptz[], a_ts timestamp[], a_d date[],
	a_b bytea[], a_jb jsonb[], a_j json[], a_u uuid[], a_2d int[][], a_bc char(3)[],
	iv interval, tm time, ttz timetz, ip inet, m money, r tstzrange
);
INSERT INTO families SELECT g,
	(g * 97 % 65535 - 32767)::int2,
	((random() - 0.5) * 4e9)::int4,
	((random() - 0.5) * 9e18)::int8,
	(random() * 4e9)::bigint::oid,
	round(((random() - 0.5) * 10 ^ (g % 30 - 10))::numeric, g % 12),
	((random() - 0.5) * 1e6)::numeric(12,4),
	((random() - 0.5) * 10 ^ (g % 60 - 30))::float4,
	((random() - 0.5) * 10 ^ (g % 600 - 300))::float8,
	random() < 0.5,
	(ARRAY['', ' ', 'a b', 'a"b', 'a\b', '(x)', 'x,y', E'tab\t', E'nl\n', 'NULL', 'null', '{}', 'ünï', '🚀', 'plain', E'\u00a0nbsp', E'v\x0bt'])[1 + g % 17]
		|| CASE WHEN g % 4 = 0 THEN '' ELSE g::text END,
	left(md5(g::text), g % 21),
	left(md5(g::text), g % 7) || CASE WHEN g % 3 = 0 THEN ' ' ELSE '' END,
	chr(33 + g % 90),
	'name ' || g,
	md5(g::text)::uuid,
	'2000-01-01 00:00:00+00'::timestamptz + (random() - 0.5) * interval '3800 years' + (g % 1000000) * interval '1 microsecond',
	'2000-01-01 00:00:00'::timestamp + (random() - 0.5) * interval '3800 years' + (g % 1000) * interval '1 millisecond',
	'2000-01-01'::date + ((random() - 0.5) * 1e6)::int,
	format('{"b": %s, "aa": [1, 2.50, 1e2, -0, 1.0E-2, "x\u00e9\n\t\"q\\"], "a": {"z": null, "y": true}, "a": %s, "": "%s"}', g, g * 1.5, g)::json,
	format('{"k%s": [%s, "v"], "long key": {"x": -0.0, "xx": 12e-3}, "s": "tab\there\u0001"}', g % 7, g)::jsonb,
	substring(decode(md5(g::text) || md5((g + 1)::text), 'hex') from 1 for g % 33),
	ARRAY[g, -g, NULL, g * 1000],
	ARRAY['', 'a b', 'a"b', 'a\b', 'NULL', 'x,y', '{}', 'plain' || g, NULL],
	ARRAY[1.50, -0.001, g::numeric / 7, 1e20],
	ARRAY[g / 3.0, 1e100, -1.5e-7, 'NaN', 'Infinity', '-0']::float8[],
	ARRAY[g / 3.0, 1e30, 'NaN']::float4[],
	ARRAY[true, false, NULL],
	ARRAY['2024-05-01 10:00:00.5+02'::timestamptz + g * interval '1 hour', '0044-03-15 12:00:00+00 BC', 'infinity'],
	ARRAY['2024-05-01 10:00:00'::timestamp + g * interval '1 second', '2024-05-01 10:00:00.123456'],
	ARRAY['2024-05-01'::date + g, '0001-01-01 BC'],
	ARRAY[decode(md5(g::text), 'hex'), '\x'::bytea, NULL],
	ARRAY[format('{"a": %s, "b c": "d"}', g)::jsonb, '[]'::jsonb, '"s"'::jsonb],
	ARRAY[format('{ "a" : %s,  "a": 1 }', g)::json, '[1 ,2]'::json],
	ARRAY[md5(g::text)::uuid],
	ARRAY[ARRAY[g, 2], ARRAY[NULL, 4]],
	ARRAY['a', 'b  ', '']::char(3)[],
	make_interval(days => g, secs => g / 7.0), '10:00:00.5'::time + g * interval '1 second', '10:00:00+05:30'::timetz, ('10.0.0.' || g % 255)::inet,
	(g * 1.25)::money, tstzrange('2024-05-01 10:00:00+00'::timestamptz, '2024-05-01 10:00:00+00'::timestamptz + g * interval '1 day')
	FROM generate_series(1, 400) g;
INSERT INTO families (id) VALUES (1000);
INSERT INTO families (id, n, f4, f8, t, tstz, ts, d, j, jb, b, a_i, a_t, a_2d) VALUES
	(1001, 'NaN', 'NaN', '-0', '', 'infinity', '-infinity', 'infinity', '"null"', '"s"', '', '{}', '{NULL}', '{}'),
	(1002, 'Infinity', 'Infinity', 'Infinity', ' ', '-infinity', 'infinity', '-infinity', '[]', '{}', '\x00', '{0}', '{""}', '{{1}}'),
	(1003, '-Infinity', '-Infinity', '-Infinity', '"', '0001-01-01 00:00:00+00 BC', '4713-01-01 00:00:00 BC', '0001-01-01 BC', '1e2', '-0', '\x5c', NULL, NULL, NULL),
	(1004, '0.000', 1.17549435e-38, 2.2250738585072014e-308, '\', '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '294276-12-31',
		'{"a":1,"a":2}', '{"aaa": 1, "b": 2, "aa": 3}', '\xdeadbeef', '{-2147483648,2147483647}', '{"\\","\""}', NULL),
	(1005, '-0.0100', 3.4028235e38, 1.7976931348623157e308, E'\r\n', '1999-12-31 23:59:59.999999-14:59', '2000-02-29 23:59:59.999', '2000-02-29',
		'"\u00e9\u0001\ud83d\ude80"', '[1.0, 1e-2, 100000000000000000000, 0.00000000000000000001]', NULL, NULL, NULL, NULL),
	(1006, 1e-30, 123456, 123456789012345, 'x', '2024-05-01 10:00:00.000001+00', '2024-05-01 10:00:00.000001', '2024-05-01', '{}', 'true', NULL, NULL, NULL, NULL),
	(1007, 123456789012345678901234567890.000000, 1234567, 1234567890123456, 'y', '1970-01-01 00:00:00+00', '1970-01-01 00:00:00', '1970-01-01',
		'{"x": [], "y": {}}', '{"x": [], "y": {}}', NULL, NULL, NULL, NULL),
	(1008, -5, 0.0001, 0.0001, 'z', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(1009, 5.5, 0.00001, 0.00001, 'zz', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE families_keyless AS SELECT t, n, tstz, jb, a_t FROM families WHERE id % 5 = 0 UNION ALL SELECT t, n, tstz, jb, a_t FROM families WHERE id % 10 = 0;
`

// column is a compared column: its name and base type, as verify's
// pipeline reads them (an array by its element's base type and []).
type column struct{ name, typ string }

func describe(t *testing.T, pool *pgxpool.Pool, table string) *proto.VerifyTable {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT a.attname, CASE WHEN t.typcategory = 'A' THEN coalesce(eb.typname::text || '[]', 'array') ELSE bt.typname::text END,
		       coalesce((SELECT u.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS u(att, n) WHERE i.indrelid = a.attrelid AND i.indisprimary AND u.att = a.attnum), 0)
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		LEFT JOIN pg_type et ON et.oid = bt.typelem AND t.typcategory = 'A'
		LEFT JOIN pg_type eb ON eb.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	vt := &proto.VerifyTable{Source: proto.TableID{Schema: "public", Name: table}, Dest: proto.TableID{Schema: "public", Name: table}, LegacyHash: true}
	keyAt := map[int]int{}
	for rows.Next() {
		var name, typ string
		var pos int
		if err := rows.Scan(&name, &typ, &pos); err != nil {
			t.Fatal(err)
		}
		if pos > 0 {
			keyAt[pos] = len(vt.Columns)
		}
		vt.Columns, vt.Types = append(vt.Columns, name), append(vt.Types, typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for pos := 1; pos <= len(keyAt); pos++ {
		vt.Key = append(vt.Key, keyAt[pos])
	}
	vt.DestColumns = vt.Columns
	return vt
}

// kafkaJSON is the SQL of a column's value as the Kafka sink's JSON
// carries it (apply/kafka/values.go): booleans and integers as such,
// floats as numbers (NaN and the infinities as strings), numeric exact
// in a string, bytea in base64, timestamptz in RFC 3339 UTC, json and
// jsonb embedded, arrays as JSON arrays (here PostgreSQL's own
// array_to_json: bytea elements in hex, timestamptz with +00:00, which
// rowside reads too; apply/kafka's tests run the sink's own encoding),
// everything else its text form.
func kafkaJSON(col, typ string) string {
	q := pgx.Identifier{col}.Sanitize()
	switch {
	case typ == "bool" || typ == "int2" || typ == "int4" || typ == "int8" || typ == "oid":
		return "to_json(" + q + ")"
	case typ == "float4" || typ == "float8":
		return "CASE WHEN " + q + "::text IN ('NaN', 'Infinity', '-Infinity') THEN to_json(" + q + "::text) ELSE " + q + "::text::json END"
	case typ == "bytea":
		return "to_json(translate(encode(" + q + ", 'base64'), E'\\n', ''))"
	case typ == "timestamptz":
		return "CASE WHEN isfinite(" + q + `) THEN to_json(to_char(` + q + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || ` +
			"CASE WHEN " + q + " < '0001-01-01 00:00:00+00' THEN ' BC' ELSE '' END) ELSE to_json(" + q + "::text) END"
	case typ == "json" || typ == "jsonb":
		return q + "::json"
	case strings.HasSuffix(typ, "[]"):
		return "array_to_json(" + q + ")"
	}
	return "to_json(" + q + "::text)"
}

// input is how a form hands a table's rows to rowside.
type input struct {
	name string
	load func(t *testing.T, pool *pgxpool.Pool, vt *proto.VerifyTable) [][]any
}

var inputs = []input{
	{"kafka json", loadJSON},
	{"text", loadText},
	{"go values", loadGo},
}

// readRows runs a query that returns one column per row, under the
// canonical output settings (text forms print as Sluice's sessions
// print them).
func readRows[T any](t *testing.T, pool *pgxpool.Pool, sql string) []T {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, pgverify.Settings); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func loadJSON(t *testing.T, pool *pgxpool.Pool, vt *proto.VerifyTable) [][]any {
	exprs := make([]string, len(vt.Columns))
	for i, c := range vt.Columns {
		exprs[i] = kafkaJSON(c, vt.Types[i])
	}
	var out [][]any
	for _, text := range readRows[string](t, pool, "SELECT json_build_array("+strings.Join(exprs, ", ")+")::text FROM "+vt.Source.Name) {
		var raw []json.RawMessage
		if err := json.Unmarshal([]byte(text), &raw); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		row := make([]any, len(raw))
		for i := range raw {
			row[i] = rowside.JSONValue(vt.Types[i], raw[i])
		}
		out = append(out, row)
	}
	return out
}

func textExprs(vt *proto.VerifyTable) string {
	exprs := make([]string, len(vt.Columns))
	for i, c := range vt.Columns {
		exprs[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	return "SELECT ARRAY[" + strings.Join(exprs, ", ") + "]::text[] FROM " + vt.Source.Name
}

func loadText(t *testing.T, pool *pgxpool.Pool, vt *proto.VerifyTable) [][]any {
	var out [][]any
	for _, texts := range readRows[[]*string](t, pool, textExprs(vt)) {
		row := make([]any, len(texts))
		for i, s := range texts {
			if s != nil {
				row[i] = *s
			}
		}
		out = append(out, row)
	}
	return out
}

// loadGo hands values as Go types where Go has one: time.Time for finite
// dates and times, []byte, float64 and float32, int64, bool, [16]byte
// uuids; text forms for the rest.
func loadGo(t *testing.T, pool *pgxpool.Pool, vt *proto.VerifyTable) [][]any {
	rows := loadText(t, pool, vt)
	for _, row := range rows {
		for i, v := range row {
			s, ok := v.(string)
			if !ok {
				continue
			}
			switch vt.Types[i] {
			case "timestamptz", "timestamp", "date":
				if dt, err := pgvalue.ParseDateTime([]byte(s)); err == nil && dt.Special == pgvalue.Finite {
					row[i] = dt.Time()
				}
			case "bytea":
				b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
				if err != nil {
					t.Fatal(err)
				}
				row[i] = b
			case "float8":
				row[i], _ = strconv.ParseFloat(s, 64)
			case "float4":
				f, _ := strconv.ParseFloat(s, 32)
				row[i] = float32(f)
			case "int2", "int4", "int8":
				row[i], _ = strconv.ParseInt(s, 10, 64)
			case "bool":
				row[i] = s == "true"
			case "uuid":
				var u [16]byte
				b, _ := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
				copy(u[:], b)
				row[i] = u
			}
		}
	}
	return rows
}

// The canonical texts and row hashes rowside makes of values a
// destination hands to Go are those pgverify's SQL makes at the source,
// for every type family, whatever form the values come in; and so are
// the checksums of a table.
func TestCanonicalMatchesPostgres(t *testing.T) {
	ctx := context.Background()
	pool := verifytest.Source(t, testenv.TypesSchema, strings.ReplaceAll(testenv.TypesRows, "$1", "1"), strings.ReplaceAll(testenv.TypesRows, "$1", "3"), families)
	src := pgverify.New(pool, pgverify.Source)
	for _, table := range []string{"types", "nokey_types", "families", "families_keyless"} {
		vt := describe(t, pool, table)
		want, err := src.Rows(ctx, vt, false, proto.KeyRange{})
		if err != nil {
			t.Fatal(err)
		}
		wantSum, err := src.Checksums(ctx, vt, false, []proto.KeyRange{{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			loaded := in.load(t, pool, vt)
			r := rowside.New(func(context.Context, *proto.VerifyTable) ([][]any, error) { return loaded, nil })
			got, err := r.Rows(ctx, vt, false, proto.KeyRange{})
			if err != nil {
				t.Fatal(err)
			}
			verifytest.SameRows(t, table+" from "+in.name, vt, want, got)
			gotSum, err := r.Checksums(ctx, vt, false, []proto.KeyRange{{}})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotSum, wantSum) {
				t.Errorf("%s from %s: checksum %+v, source %+v", table, in.name, gotSum, wantSum)
			}
		}
	}
}

// keyTables are tables keyed by each type family whose order rowside
// follows, with the edges of each.
const keyTables = `
CREATE TABLE k_text (k text PRIMARY KEY);
INSERT INTO k_text SELECT DISTINCT t FROM families WHERE t IS NOT NULL;
INSERT INTO k_text VALUES ('B'), ('a'), ('ä'), ('Z'), ('z'), ('aa'), ('a a') ON CONFLICT DO NOTHING;
CREATE TABLE k_num (k numeric PRIMARY KEY);
INSERT INTO k_num SELECT DISTINCT n FROM families WHERE n IS NOT NULL ON CONFLICT DO NOTHING;
CREATE TABLE k_f8 (k float8 PRIMARY KEY);
INSERT INTO k_f8 SELECT DISTINCT f8 FROM families WHERE f8 IS NOT NULL ON CONFLICT DO NOTHING;
CREATE TABLE k_tstz (k timestamptz PRIMARY KEY);
INSERT INTO k_tstz SELECT DISTINCT tstz FROM families WHERE tstz IS NOT NULL AND tstz >= '0001-01-01 00:00:00+00' ON CONFLICT DO NOTHING;
INSERT INTO k_tstz VALUES ('infinity'), ('-infinity') ON CONFLICT DO NOTHING;
CREATE TABLE k_date (k date PRIMARY KEY);
INSERT INTO k_date SELECT DISTINCT d FROM families WHERE d IS NOT NULL AND d >= '0001-01-01' ON CONFLICT DO NOTHING;
CREATE TABLE k_uuid (k uuid PRIMARY KEY);
INSERT INTO k_uuid SELECT DISTINCT u FROM families WHERE u IS NOT NULL;
CREATE TABLE k_bytea (k bytea PRIMARY KEY);
INSERT INTO k_bytea SELECT DISTINCT b FROM families WHERE b IS NOT NULL;
CREATE TABLE k_big (k int8 PRIMARY KEY);
INSERT INTO k_big SELECT DISTINCT i8 FROM families WHERE i8 IS NOT NULL;
CREATE TABLE k_two (a int, b text, PRIMARY KEY (a, b));
INSERT INTO k_two SELECT id % 7, t FROM families WHERE t IS NOT NULL ON CONFLICT DO NOTHING;
`

// Ranges hold the same keys at both ends: the checksums of ranges the
// source cuts (in byte order for text, as verify asks of it when the
// collations differ) are equal for keys of every ordered type family.
func TestRangesMatchPostgres(t *testing.T) {
	ctx := context.Background()
	pool := verifytest.Source(t, families, keyTables)
	src := pgverify.New(pool, pgverify.Source)
	for _, table := range []string{"k_text", "k_num", "k_f8", "k_tstz", "k_date", "k_uuid", "k_bytea", "k_big", "k_two", "families"} {
		vt := describe(t, pool, table)
		loaded := loadJSON(t, pool, vt)
		r := rowside.New(func(context.Context, *proto.VerifyTable) ([][]any, error) { return loaded, nil })
		srcColls, err := src.KeyCollations(ctx, vt)
		if err != nil {
			t.Fatal(err)
		}
		dstColls, err := r.KeyCollations(ctx, vt)
		if err != nil {
			t.Fatal(err)
		}
		byteOrder := !slices.Equal(srcColls, dstColls)
		cuts, err := src.Split(ctx, vt, byteOrder, proto.KeyRange{}, int64(len(loaded)), 12)
		if err != nil {
			t.Fatal(err)
		}
		if len(cuts) < 5 {
			t.Fatalf("%s: %d cuts", table, len(cuts))
		}
		ranges := []proto.KeyRange{{To: cuts[0]}}
		for i := 1; i < len(cuts); i++ {
			ranges = append(ranges, proto.KeyRange{From: cuts[i-1], To: cuts[i]})
		}
		ranges = append(ranges, proto.KeyRange{From: cuts[len(cuts)-1]}, proto.KeyRange{From: cuts[len(cuts)-1], To: cuts[0]})
		want, err := src.Checksums(ctx, vt, byteOrder, ranges)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Checksums(ctx, vt, byteOrder, ranges)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ranges {
			if got[i] != want[i] {
				t.Errorf("%s: range %v: %+v, source %+v", table, ranges[i], got[i], want[i])
			}
		}
		// A range's rows come in the source's order.
		wantRows, err := src.Rows(ctx, vt, byteOrder, ranges[2])
		if err != nil {
			t.Fatal(err)
		}
		gotRows, err := r.Rows(ctx, vt, byteOrder, ranges[2])
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(keysOf(gotRows)) != fmt.Sprint(keysOf(wantRows)) {
			t.Errorf("%s: range %v keys\n%v\nsource\n%v", table, ranges[2], keysOf(gotRows), keysOf(wantRows))
		}
	}
}

func keysOf(rows []proto.VerifyRow) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = r.Key
	}
	return out
}

// A load serves a verification's range reads; a re-check by key, and a
// keyless table's whole-table read after the first, load again.
func TestReloads(t *testing.T) {
	ctx := context.Background()
	loads := 0
	value := "a"
	r := rowside.New(func(context.Context, *proto.VerifyTable) ([][]any, error) {
		loads++
		return [][]any{{int64(1), value}, {json.Number("2"), value}}, nil
	})
	keyed := &proto.VerifyTable{Dest: proto.TableID{Schema: "s", Name: "t"}, Columns: []string{"id", "v"}, DestColumns: []string{"id", "v"},
		Types: []string{"int4", "text"}, Key: []int{0}, LegacyHash: true}
	if _, err := r.Checksums(ctx, keyed, true, []proto.KeyRange{{}, {From: []string{"2"}}}); err != nil {
		t.Fatal(err)
	}
	rows, err := r.Rows(ctx, keyed, true, proto.KeyRange{To: []string{"2"}})
	if err != nil || len(rows) != 1 || loads != 1 {
		t.Fatalf("rows %+v, %d loads, %v", rows, loads, err)
	}
	value = "b"
	rows, err = r.RowsByKey(ctx, keyed, [][]string{{"2"}, {"3"}})
	if err != nil || len(rows) != 1 || *rows[0].Values[1] != "b" || loads != 2 {
		t.Fatalf("rows by key %+v, %d loads, %v", rows, loads, err)
	}
	keyless := &proto.VerifyTable{Dest: proto.TableID{Schema: "s", Name: "u"}, Columns: []string{"id", "v"}, DestColumns: []string{"id", "v"},
		Types: []string{"int4", "text"}, LegacyHash: true}
	// As verify reads a keyless table: its checksum, its rows, then its
	// rows again for each re-check.
	if _, err := r.Checksums(ctx, keyless, false, []proto.KeyRange{{}}); err != nil || loads != 3 {
		t.Fatalf("keyless checksum: %d loads (%v)", loads, err)
	}
	for round, want := range []int{3, 4, 5} {
		rows, err := r.Rows(ctx, keyless, false, proto.KeyRange{})
		if err != nil || loads != want || len(rows) != 2 || rows[0].Count != 1 {
			t.Fatalf("keyless read %d: %+v, %d loads, want %d (%v)", round, rows, loads, want, err)
		}
	}
	if _, err := r.Checksums(ctx, &proto.VerifyTable{Dest: keyed.Dest, Columns: keyed.Columns, DestColumns: keyed.Columns, Types: keyed.Types, Key: keyed.Key},
		false, []proto.KeyRange{{}}); err == nil {
		t.Fatal("a table compared with hashtextextended was read")
	}
}

// What JSON cannot say: a json document null is SQL NULL there (the
// Kafka sink's JSON writes both as null); a value the destination does
// not know equals no text of the source's.
func TestJSONAndUnknown(t *testing.T) {
	if v := rowside.JSONValue("json", json.RawMessage(`null`)); v != nil {
		t.Fatalf("json null read as %#v", v)
	}
	if got := rowside.Text("bytea", rowside.JSONValue("bytea", json.RawMessage(`"AAE="`))); got == nil || *got != `\x0001` {
		t.Fatalf("bytea in base64: %v", got)
	}
	for _, typ := range []string{"text", "int4", "jsonb", "timestamptz", "text[]"} {
		if got := rowside.Text(typ, rowside.Unknown); got == nil || !strings.Contains(*got, "\x00") {
			t.Fatalf("%s: an unknown value reads as %v", typ, got)
		}
	}
}
