package kafka

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The formats are tested against PostgreSQL itself: rows of every
// built-in type family are read in their text form (what pgoutput sends),
// encoded in each format, decoded with encoding/json or hamba/avro, and
// compared value by value with what PostgreSQL computes for them: to_jsonb
// where values.go agrees with it, and the documented forms (numeric as a
// string, bytea as base64, timestamptz in UTC...) built in SQL.

// typesSchema and typesRows are the shared type test's (testenv), with
// ids 1 and 2, a NULL row and no 10 MB value (the TOAST case here is built
// by hand).
const typesSchema = testenv.TypesSchema

var typesRows = strings.ReplaceAll(testenv.TypesRows, "$1", "1") + `-- NULL everywhere
INSERT INTO types (id) VALUES (3);
INSERT INTO nokey_types VALUES ('{"k": 1}', '(1,2)', '<x/>', 'NaN', '{a,b}'), (NULL, NULL, NULL, NULL, NULL);
`

// arraysSchema has an array of each element family values.go converts,
// with the literals that trip parsers: quotes, backslashes, "NULL" as a
// string, empty strings, braces, bounds, boxes (';' between elements).
const arraysSchema = `
CREATE TABLE arrays (
	id int PRIMARY KEY,
	a_int8 int8[], a_bool bool[], a_float float8[], a_real real[], a_text text[], a_varchar varchar(5)[],
	a_jsonb jsonb[], a_json json[], a_uuid uuid[], a_date date[], a_tstz timestamptz[], a_num numeric[],
	a_bytea bytea[], a_int2d int[][], a_bounds int[], a_box box[], a_iv interval[], a_ts timestamp[]
);
INSERT INTO arrays VALUES
(1, '{9223372036854775807,-9223372036854775808,NULL}', '{t,f,NULL}', '{NaN,Infinity,-Infinity,1e+100,-0,1.5e-07}', '{3.4028235e+38,NaN}',
	ARRAY['NULL', NULL, '', ' lead', 'trail ', 'a,b', 'q"uote', 'back\slash', '{brace}', 'ünï 🚀', E'tab\tnl\n'], '{ab,"c d"}',
	ARRAY['{"a": "x\"y", "b": [1, 2.50]}'::jsonb, 'null', '"s"', NULL], ARRAY['{"k" : 1}'::json, '[]'], '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
	'{2000-02-29,infinity,4713-01-01 BC}', '{"1999-12-31 23:59:59.123456+05:30",infinity,"2024-05-01 10:00:00+00",NULL,"0001-01-01 00:30:00+01 BC"}',
	'{1.10,NaN,-0.000000000000000000001}', ARRAY['\x00ff'::bytea, '', NULL, '\x5c22'],
	'{{1,2},{3,NULL}}', '[0:1]={5,6}', '{(1,1),(0,0);(2,2),(1,1)}', '{"1 day",-00:00:01}', '{"2000-01-01 00:00:00.5",-infinity}'),
(2, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`

// eventsSchema is the tables of the change events: a key and the default
// replica identity, a key and REPLICA IDENTITY FULL, no key and FULL.
const eventsSchema = `
CREATE TABLE items (id int PRIMARY KEY, name text, n int8, doc jsonb, big text);
CREATE TABLE items_full (LIKE items INCLUDING ALL);
ALTER TABLE items_full REPLICA IDENTITY FULL;
CREATE TABLE logs (at timestamptz, msg text);
ALTER TABLE logs REPLICA IDENTITY FULL;
INSERT INTO items VALUES (1, 'one', 9007199254740993, '{"a": [1, 2.50], "q": "\"x\""}', repeat('x', 10000));
INSERT INTO items_full SELECT * FROM items;
INSERT INTO logs VALUES ('2024-05-01 10:00:00.25+02', 'hello');
`

// readSettings are the session settings the text forms are read with:
// PostgreSQL's defaults, but for a zone with offsets and local mean time.
const readSettings = `SET DateStyle = 'ISO, MDY'; SET TimeZone = 'America/New_York'; SET IntervalStyle = 'postgres';
	SET bytea_output = 'hex'; SET extra_float_digits = 1`

var fixedNow = time.Date(2025, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// source starts PostgreSQL with the test tables.
func source(t *testing.T) *pgx.Conn {
	t.Helper()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, typesSchema+arraysSchema+eventsSchema)
	testenv.MustExec(t, conn, "SET TIME ZONE 'America/New_York'; SET DateStyle = 'German'; "+typesRows)
	testenv.MustExec(t, conn, readSettings)
	return conn
}

// tableColumns are a table's columns as pgoutput describes them:
// pg_attribute's type OID and modifier, Key for the primary key.
func tableColumns(t *testing.T, conn *pgx.Conn, table string) []proto.Column {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT a.attname, a.atttypid, a.atttypmod, coalesce(a.attnum = ANY(i.indkey), false)
		FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []proto.Column
	for rows.Next() {
		var c proto.Column
		if err := rows.Scan(&c.Name, &c.TypeOID, &c.TypeMod, &c.Key); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

// expect is what PostgreSQL says a column's value must become.
type expect struct {
	v    any    // the JSON value (encoding/json with UseNumber)
	us   *int64 // timestamptz: microseconds since the Unix epoch
	text []byte // the text form; nil for NULL
	mark string // not a value: toastMark or absentMark
}

const (
	toastMark  = "unchanged TOAST"
	absentMark = "not in a key-only old row"
)

// pgRow is a row's text form and what each column must become.
type pgRow struct {
	tuple proto.Tuple
	want  map[string]expect
}

// readRows reads a table's rows in text form (the simple protocol returns
// each value as its type's output function prints it, as pgoutput sends
// it), with the expected JSON of each column computed alongside.
func readRows(t *testing.T, conn *pgx.Conn, table, where string, cols []proto.Column) []pgRow {
	t.Helper()
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = expectedSQL(c)
	}
	q := fmt.Sprintf("SELECT t.*, %s FROM %s t %s ORDER BY t::text", strings.Join(exprs, ", "), pgx.Identifier{table}.Sanitize(), where)
	rows, err := conn.Query(context.Background(), q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []pgRow
	for rows.Next() {
		raw := rows.RawValues()
		r := pgRow{tuple: proto.Tuple{Kinds: make([]byte, len(cols)), Values: make([][]byte, len(cols))}, want: map[string]expect{}}
		for i, c := range cols {
			var e struct {
				V  json.RawMessage `json:"v"`
				US *int64          `json:"us"`
			}
			if err := json.Unmarshal(raw[len(cols)+i], &e); err != nil {
				t.Fatalf("%s.%s expected %s: %v", table, c.Name, raw[len(cols)+i], err)
			}
			want := expect{v: decodeJSON(t, e.V), us: e.US}
			r.tuple.Kinds[i] = proto.KindNull
			if raw[i] != nil {
				r.tuple.Kinds[i], r.tuple.Values[i] = proto.KindText, bytes.Clone(raw[i])
				want.text = r.tuple.Values[i]
			}
			r.want[c.Name] = want
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectedSQL is a jsonb {"v": what every JSON format must write for the
// column, "us": a timestamptz's microseconds}, computed by PostgreSQL.
func expectedSQL(c proto.Column) string {
	x := pgx.Identifier{"t", c.Name}.Sanitize()
	us := "NULL::int8"
	if family(c.TypeOID) == pgvalue.FamilyTimestamptz {
		us = fmt.Sprintf("CASE WHEN isfinite(%[1]s) THEN (extract(epoch FROM %[1]s) * 1000000)::int8 END", x)
	}
	return fmt.Sprintf("jsonb_build_object('v', %s, 'us', %s)::text", jsonSQL(x, c.TypeOID), us)
}

// jsonSQL is the expected JSON of x: to_jsonb where values.go agrees with
// it; the documented differences built from PostgreSQL's own functions.
func jsonSQL(x string, oid uint32) string {
	t, _ := pgvalue.Lookup(oid)
	switch t.Family {
	case pgvalue.FamilyBool, pgvalue.FamilyInt, pgvalue.FamilyFloat, pgvalue.FamilyText, pgvalue.FamilyJSON:
		return "to_jsonb(" + x + ")"
	case pgvalue.FamilyTimestamptz: // RFC 3339 in UTC, fraction trimmed, " BC" after
		return fmt.Sprintf(`to_jsonb(CASE WHEN isfinite(%[1]s) THEN
			regexp_replace(regexp_replace(to_char(%[1]s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '0+Z$', 'Z'), '\.Z$', 'Z')
			|| CASE WHEN %[1]s < '0001-01-01 00:00:00+00' THEN ' BC' ELSE '' END ELSE %[1]s::text END)`, x)
	case pgvalue.FamilyBytea:
		return fmt.Sprintf(`to_jsonb(translate(encode(%s, 'base64'), E'\n', ''))`, x)
	case pgvalue.FamilyArray:
		return fmt.Sprintf(`CASE WHEN %[1]s IS NULL THEN NULL WHEN %[1]s::text LIKE '[%%' THEN to_jsonb(%[1]s::text) ELSE %[2]s END`, x, arraySQL(x, t.Elem))
	}
	// numeric, dates and times but timestamptz, and every other type:
	// the text form. format() prints with the output function; a cast to
	// text need not (inet's adds the netmask, bpchar's trims).
	// (num_nonnulls: a composite of NULLs IS NULL, but is a value.)
	return fmt.Sprintf("to_jsonb(CASE WHEN num_nonnulls(%[1]s) = 1 THEN format('%%s', %[1]s) END)", x)
}

func arraySQL(x string, elem uint32) string {
	switch family(elem) {
	case pgvalue.FamilyBool, pgvalue.FamilyInt, pgvalue.FamilyFloat, pgvalue.FamilyText, pgvalue.FamilyJSON:
		return "to_jsonb(" + x + ")"
	case pgvalue.FamilyTimestamptz, pgvalue.FamilyBytea: // one-dimensional in the test data
		return fmt.Sprintf("(SELECT coalesce(jsonb_agg(%s ORDER BY n), '[]') FROM unnest(%s) WITH ORDINALITY AS u(e, n))", jsonSQL("e", elem), x)
	}
	return "to_jsonb(" + x + "::text[])" // elements in text form, dimensions kept
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	if d.More() {
		t.Fatalf("decode %q: trailing data", b)
	}
	return v
}

// newEncoders are the three formats with a fixed clock.
func newEncoders(t *testing.T) []Encoder {
	t.Helper()
	var out []Encoder
	for _, f := range []string{FormatDebezium, FormatCanal, FormatAvro} {
		enc, err := NewEncoder(FormatConfig{Format: f, TaskName: "task1"})
		if err != nil {
			t.Fatal(err)
		}
		setClock(enc, func() time.Time { return fixedNow })
		out = append(out, enc)
	}
	return out
}

func setClock(enc Encoder, now func() time.Time) {
	switch e := enc.(type) {
	case *debeziumEncoder:
		e.now = now
	case *canalEncoder:
		e.now = now
	case *avroEncoder:
		e.now = now
	}
}

func TestFormatValues(t *testing.T) {
	conn := source(t)
	ctx := context.Background()
	encoders := newEncoders(t)
	for _, table := range []string{"types", "nokey_types", "arrays"} {
		cols := tableColumns(t, conn, table)
		rows := readRows(t, conn, table, "", cols)
		if len(rows) < 2 {
			t.Fatalf("%s: %d rows", table, len(rows))
		}
		for ri, r := range rows {
			ev := &Event{Database: "postgres", Table: proto.TableID{Schema: "public", Name: table}, Columns: cols,
				Row: &proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: 0x16B3748, Idx: uint32(ri)}, Xid: 700, CommitTimeUS: 1714557600123456, New: r.tuple}}
			for _, enc := range encoders {
				_, value, err := enc.Encode(ctx, "topic", ev)
				if err != nil {
					t.Fatalf("%s %s row %d: %v", enc.Name(), table, ri, err)
				}
				after := decodeImages(t, enc.Name(), value).after
				for _, c := range cols {
					got, ok := after[c.Name]
					if !ok {
						t.Errorf("%s %s row %d: column %s missing", enc.Name(), table, ri, c.Name)
						continue
					}
					if err := checkValue(enc.Name(), c, got, r.want[c.Name]); err != nil {
						t.Errorf("%s %s row %d column %s (%s, text %q): %v", enc.Name(), table, ri, c.Name, pgvalue.TypeName(c.TypeOID, c.TypeMod), r.want[c.Name].text, err)
					}
				}
			}
		}
	}
	// Where values.go departs from to_jsonb, pin the forms by hand too, so
	// that the expectations built in SQL cannot drift along with a wrong
	// encoder.
	enc := encoders[0]
	cols := tableColumns(t, conn, "types")
	rows := readRows(t, conn, "types", "WHERE id IN (1, 2)", cols)
	pins := []map[string]any{{
		"n_num_p": "1234567890.12", "n_num": "NaN", "n_real": "Infinity", "n_double": json.Number("1.0000000000000002"),
		"n_big": json.Number("-9223372036854775808"), "b": "AP8Q", "tstz": "1999-12-31T18:29:59.123456Z",
		"ts3": "2000-02-29 23:59:59.999", "a_num": []any{"1.10", "2.25"}, "a_text2d": []any{[]any{"a", "b"}, []any{"c d", `e"f`}},
		"a_int": []any{json.Number("1"), nil, json.Number("3")}, "a_mood": "{sad,ünïcödé}", "pi": "7", "t_char": "ab ",
		"jb": map[string]any{"z": map[string]any{"y": []any{true, false}}, "é": json.Number("1.0")}, "bo": true,
	}, {
		"n_double": "NaN", "n_real": "-Infinity", "b": "", "tstz": "-infinity", "d": "0001-01-01 BC", "ts": "4713-01-01 00:00:00 BC",
		"j": []any{}, "a_null": []any{nil}, "bo": false, "n_num": "-0.000000000000000000001",
	}}
	for i, r := range rows {
		_, value, err := enc.Encode(ctx, "topic", &Event{Table: proto.TableID{Schema: "public", Name: "types"}, Columns: cols, Row: &proto.Row{Op: proto.OpInsert, New: r.tuple}})
		if err != nil {
			t.Fatal(err)
		}
		after := decodeImages(t, enc.Name(), value).after
		for name, want := range pins[i] {
			if !reflect.DeepEqual(after[name], want) {
				t.Errorf("types row %d %s = %#v, want %#v", i+1, name, after[name], want)
			}
		}
	}
}

// decodedImages are a decoded row message's before and after images, column name
// to value; Avro values stay unions (decoded by hamba/avro).
type decodedImages struct {
	before, after map[string]any
	hasBefore     bool
	hasAfter      bool
}

// decodeImages decodes a row message of any format.
func decodeImages(t *testing.T, format string, value []byte) decodedImages {
	t.Helper()
	var out decodedImages
	switch format {
	case FormatDebezium:
		m := decodeJSON(t, value).(map[string]any)
		out.before, out.hasBefore = asMap(m["before"])
		out.after, out.hasAfter = asMap(m["after"])
	case FormatCanal:
		m := decodeJSON(t, value).(map[string]any)
		if data, ok := m["data"].([]any); ok {
			if len(data) != 1 {
				t.Fatalf("canal data has %d rows", len(data))
			}
			out.after, out.hasAfter = asMap(data[0])
		}
	case FormatAvro:
		rec := decodeAvro(t, value)
		var names []string
		if f, ok := rec["fields"].(map[string]any); ok {
			for _, f := range f["array"].([]any) {
				names = append(names, f.(map[string]any)["name"].(string))
			}
		}
		out.before, out.hasBefore = avroImageMap(t, names, rec["beforeImages"])
		out.after, out.hasAfter = avroImageMap(t, names, rec["afterImages"])
	}
	return out
}

func asMap(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

func decodeAvro(t *testing.T, value []byte) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := avro.Unmarshal(avro.MustParse(AvroSchema()), value, &rec); err != nil {
		t.Fatalf("avro decode: %v", err)
	}
	return rec
}

func avroImageMap(t *testing.T, names []string, v any) (map[string]any, bool) {
	t.Helper()
	u, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	arr, ok := u["array"].([]any)
	if !ok {
		t.Fatalf("avro image is not an array: %#v", v)
	}
	if len(arr) != len(names) {
		t.Fatalf("avro image has %d values for %d fields", len(arr), len(names))
	}
	m := map[string]any{}
	for i, n := range names {
		m[n] = arr[i]
	}
	return m, true
}

// checkValue compares a decoded value with PostgreSQL's expectation.
func checkValue(format string, c proto.Column, got any, want expect) error {
	if format == FormatAvro {
		return checkAvroValue(c, got, want)
	}
	if want.mark != "" {
		return fmt.Errorf("a %s column is in the image as %#v", want.mark, got)
	}
	if !jsonEqual(got, want.v) {
		return fmt.Errorf("got %s, PostgreSQL says %s", short(got), short(want.v))
	}
	return nil
}

// short prints v for a failure message, cut to a readable length.
func short(v any) string {
	if p, ok := v.(*int64); ok && p != nil {
		v = *p
	}
	s := fmt.Sprintf("%#v", v)
	if len(s) > 300 {
		s = s[:300] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// jsonEqual compares decoded JSON, numbers by value: jsonb prints a float
// without exponent ("1e+100" becomes 1 and 100 zeros) and drops -0's sign.
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okA := new(big.Rat).SetString(string(a))
		y, okB := new(big.Rat).SetString(string(b))
		return okA && okB && x.Cmp(y) == 0
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// avroBranches is the union branch each family of types must take;
// TextObject for the others.
var avroBranches = map[pgvalue.Family]string{
	pgvalue.FamilyBool: "Integer", pgvalue.FamilyInt: "Integer", pgvalue.FamilyNumeric: "Decimal", pgvalue.FamilyFloat: "Float",
	pgvalue.FamilyText: "Character", pgvalue.FamilyBytea: "BinaryObject", pgvalue.FamilyTimestamptz: "Timestamp",
	pgvalue.FamilyDate: "DateTime", pgvalue.FamilyTime: "DateTime", pgvalue.FamilyTimestamp: "DateTime",
	pgvalue.FamilyTimetz: "TimestampWithTimeZone",
}

// family is the family of a column's type (FamilyOther for a type of the
// database's own).
func family(oid uint32) pgvalue.Family {
	t, _ := pgvalue.Lookup(oid)
	return t.Family
}

// typeSize is the width of an integer or float type.
func typeSize(oid uint32) int {
	t, _ := pgvalue.Lookup(oid)
	return t.Size
}

// checkAvroValue compares an Avro value union with the expectation.
func checkAvroValue(c proto.Column, got any, want expect) error {
	if got == nil {
		if want.v != nil || want.mark != "" {
			return fmt.Errorf("null, want %#v", want.v)
		}
		return nil
	}
	u := got.(map[string]any)
	if len(u) != 1 {
		return fmt.Errorf("union %#v", got)
	}
	var branch string
	var v any
	for k, val := range u {
		branch, v = strings.TrimPrefix(k, avroNamespace+"."), val
	}
	if want.mark != "" {
		if branch != "EmptyObject" || v != "NONE" {
			return fmt.Errorf("a %s column is %s %#v, want EmptyObject NONE", want.mark, branch, v)
		}
		return nil
	}
	if want.v == nil {
		return fmt.Errorf("%s %#v, want null", branch, v)
	}
	class := family(c.TypeOID)
	wantBranch, ok := avroBranches[class]
	if !ok {
		wantBranch = "TextObject"
	}
	if s, ok := want.v.(string); ok && (s == "infinity" || s == "-infinity") && (class == pgvalue.FamilyTimestamptz || class == pgvalue.FamilyDate || class == pgvalue.FamilyTimestamp) {
		wantBranch = "TextObject" // no number form
	}
	if branch != wantBranch {
		return fmt.Errorf("branch %s, want %s (%#v)", branch, wantBranch, v)
	}
	f := v.(map[string]any)
	switch branch {
	case "Integer":
		wantV, wantP := want.v, typeSize(c.TypeOID)
		if b, ok := want.v.(bool); ok {
			wantV, wantP = json.Number("0"), 1
			if b {
				wantV = json.Number("1")
			}
		}
		if json.Number(f["value"].(string)) != wantV || f["precision"] != wantP {
			return fmt.Errorf("Integer %v, want %v of precision %d", f, wantV, wantP)
		}
	case "Character":
		if string(f["value"].([]byte)) != want.v || f["charset"] != "utf8" {
			return fmt.Errorf("Character %q, want %q", f["value"], want.v)
		}
	case "Decimal":
		p, s, ok := pgvalue.NumericTypmod(c.TypeMod)
		if text := want.v.(string); !ok && strings.Contains(text, ".") {
			s = len(text) - strings.IndexByte(text, '.') - 1
		}
		if f["value"] != want.v || f["precision"] != p || f["scale"] != s {
			return fmt.Errorf("Decimal %v, want %v (%d, %d)", f, want.v, p, s)
		}
	case "Float":
		size := typeSize(c.TypeOID)
		w, err := strconv.ParseFloat(fmt.Sprint(want.v), size*8)
		if err != nil && !math.IsInf(w, 0) {
			return err
		}
		g := f["value"].(float64)
		if !(g == w && math.Signbit(g) == math.Signbit(w) || math.IsNaN(g) && math.IsNaN(w)) || f["precision"] != map[int]int{4: 24, 8: 53}[size] {
			return fmt.Errorf("Float %v, want %v", f, w)
		}
	case "BinaryObject":
		if base64.StdEncoding.EncodeToString(f["value"].([]byte)) != want.v || f["type"] != "bytea" {
			return fmt.Errorf("BinaryObject %v, want base64 %v", f, want.v)
		}
	case "Timestamp":
		us := f["timestamp"].(int64)*1e6 + int64(f["millis"].(int))*1e3 + int64(f["micros"].(int))
		if want.us == nil || us != *want.us || f["millis"].(int) >= 1000 || f["micros"].(int) >= 1000 {
			return fmt.Errorf("Timestamp %v (%d µs), want %v µs", f, us, short(want.us))
		}
	case "DateTime":
		if s := dateTimeText(f); s != string(want.text) {
			return fmt.Errorf("DateTime %v reads %q, want %q", f, s, want.text)
		}
	case "TimestampWithTimeZone":
		tz := f["timezone"].(string)
		for strings.HasSuffix(tz, ":00") { // PostgreSQL leaves out zero minutes
			tz = strings.TrimSuffix(tz, ":00")
		}
		if s := dateTimeText(f["value"].(map[string]any)) + tz; s != string(want.text) {
			return fmt.Errorf("TimestampWithTimeZone %v reads %q, want %q", f, s, want.text)
		}
	case "TextObject":
		if f["type"] != pgvalue.TypeName(c.TypeOID, -1) {
			return fmt.Errorf("TextObject type %v, want %s", f["type"], pgvalue.TypeName(c.TypeOID, -1))
		}
		text := f["value"].(string)
		if s, ok := want.v.(string); ok && s == text {
			return nil
		}
		var g any
		d := json.NewDecoder(strings.NewReader(text))
		d.UseNumber()
		if err := d.Decode(&g); err != nil || !jsonEqual(g, want.v) {
			return fmt.Errorf("TextObject %q, want %#v", text, want.v)
		}
	}
	return nil
}

// dateTimeText prints a DateTime as PostgreSQL's ISO style would.
func dateTimeText(f map[string]any) string {
	var parts []string
	if y, ok := f["year"].(int); ok {
		parts = append(parts, fmt.Sprintf("%04d-%02d-%02d", max(y, 1-y), f["month"], f["day"]))
	}
	if h, ok := f["hour"].(int); ok {
		s := fmt.Sprintf("%02d:%02d:%02d", h, f["minute"], f["second"])
		if us := f["micros"].(int); us != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
		}
		parts = append(parts, s)
	}
	s := strings.Join(parts, " ")
	if y, ok := f["year"].(int); ok && y <= 0 {
		s += " BC"
	}
	return s
}

// eventCase is a change and what every format must make of it.
type eventCase struct {
	name          string
	ev            *Event
	op            string         // Debezium's op
	before, after map[string]any // column → expect; nil: no such image
	key           map[string]any // nil: no key
}

// rowOf reads one row of table.
func rowOf(t *testing.T, conn *pgx.Conn, table, where string) pgRow {
	t.Helper()
	rows := readRows(t, conn, table, "WHERE "+where, tableColumns(t, conn, table))
	if len(rows) != 1 {
		t.Fatalf("%s WHERE %s: %d rows", table, where, len(rows))
	}
	return rows[0]
}

// image is a row's expectations as an image, with marks for the columns
// that are not values.
func image(r pgRow, marks map[string]string) map[string]any {
	m := map[string]any{}
	for name, e := range r.want {
		if mark, ok := marks[name]; ok {
			e = expect{mark: mark}
		}
		m[name] = e
	}
	return m
}

// withKinds returns a copy of t with the named columns' kind changed (a
// TOAST-unchanged value, or NULL for a key-only old row).
func withKinds(t proto.Tuple, cols []proto.Column, kind byte, names ...string) proto.Tuple {
	out := proto.Tuple{Kinds: bytes.Clone(t.Kinds), Values: append([][]byte(nil), t.Values...)}
	for i, c := range cols {
		for _, n := range names {
			if c.Name == n {
				out.Kinds[i], out.Values[i] = kind, nil
			}
		}
	}
	return out
}

func keyOf(r pgRow, names ...string) map[string]any {
	m := map[string]any{}
	for _, n := range names {
		m[n] = r.want[n].v
	}
	return m
}

// eventCases runs the changes in PostgreSQL and builds each event as the
// capture would: pgoutput's old row is key-only under the default replica
// identity (absent when the key did not change), whole under FULL; an
// unchanged TOASTed value comes as KindToast.
func eventCases(t *testing.T, conn *pgx.Conn) []eventCase {
	items, full, logs := tableColumns(t, conn, "items"), tableColumns(t, conn, "items_full"), tableColumns(t, conn, "logs")
	nonKey := []string{"name", "n", "doc", "big"}
	ev := func(table string, cols []proto.Column, op proto.Op, idx uint32, newT, oldT proto.Tuple) *Event {
		return &Event{Database: "postgres", Table: proto.TableID{Schema: "public", Name: table}, Columns: cols,
			Row: &proto.Row{Op: op, Pos: proto.Position{LSN: 0x1000000 + proto.LSN(idx)*0x100, Idx: idx}, Xid: 1000 + idx, CommitTimeUS: 1714557600123456 + int64(idx)*1000, New: newT, Old: oldT}}
	}
	var cases []eventCase
	add := func(c eventCase) { cases = append(cases, c) }

	r1 := rowOf(t, conn, "items", "id = 1")
	add(eventCase{name: "insert", ev: ev("items", items, proto.OpInsert, 1, r1.tuple, proto.Tuple{}), op: "c", after: image(r1, nil), key: keyOf(r1, "id")})
	snap := ev("items", items, proto.OpInsert, 2, r1.tuple, proto.Tuple{})
	snap.Snapshot = true
	add(eventCase{name: "snapshot", ev: snap, op: "r", after: image(r1, nil), key: keyOf(r1, "id")})

	testenv.MustExec(t, conn, "UPDATE items SET name = 'uno' WHERE id = 1")
	r1u := rowOf(t, conn, "items", "id = 1")
	add(eventCase{name: "update default identity, TOAST unchanged", ev: ev("items", items, proto.OpUpdate, 3, withKinds(r1u.tuple, items, proto.KindToast, "big"), proto.Tuple{}),
		op: "u", after: image(r1u, map[string]string{"big": toastMark}), key: keyOf(r1u, "id")})

	testenv.MustExec(t, conn, "UPDATE items SET id = 10 WHERE id = 1")
	r10 := rowOf(t, conn, "items", "id = 10")
	add(eventCase{name: "update of the key, default identity", ev: ev("items", items, proto.OpUpdate, 4, withKinds(r10.tuple, items, proto.KindToast, "big"), withKinds(r1u.tuple, items, proto.KindNull, nonKey...)),
		op: "u", before: image(r1u, map[string]string{"name": absentMark, "n": absentMark, "doc": absentMark, "big": absentMark}),
		after: image(r10, map[string]string{"big": toastMark}), key: keyOf(r10, "id")})
	add(eventCase{name: "delete default identity", ev: ev("items", items, proto.OpDelete, 5, proto.Tuple{}, withKinds(r10.tuple, items, proto.KindNull, nonKey...)),
		op: "d", before: image(r10, map[string]string{"name": absentMark, "n": absentMark, "doc": absentMark, "big": absentMark}), key: keyOf(r10, "id")})

	f1 := rowOf(t, conn, "items_full", "id = 1")
	testenv.MustExec(t, conn, "UPDATE items_full SET name = 'uno', n = n + 1, doc = NULL WHERE id = 1")
	f1u := rowOf(t, conn, "items_full", "id = 1")
	add(eventCase{name: "update FULL identity, TOAST from the old row", ev: ev("items_full", full, proto.OpUpdate, 6, withKinds(f1u.tuple, full, proto.KindToast, "big"), f1.tuple),
		op: "u", before: image(f1, nil), after: image(f1u, nil), key: keyOf(f1u, "id")})
	add(eventCase{name: "delete FULL identity", ev: ev("items_full", full, proto.OpDelete, 7, proto.Tuple{}, f1u.tuple),
		op: "d", before: image(f1u, nil), key: keyOf(f1u, "id")})

	l1 := rowOf(t, conn, "logs", "true")
	add(eventCase{name: "insert keyless", ev: ev("logs", logs, proto.OpInsert, 8, l1.tuple, proto.Tuple{}), op: "c", after: image(l1, nil), key: keyOf(l1, "at", "msg")})
	testenv.MustExec(t, conn, "UPDATE logs SET msg = 'bye'")
	l1u := rowOf(t, conn, "logs", "true")
	add(eventCase{name: "update keyless", ev: ev("logs", logs, proto.OpUpdate, 9, l1u.tuple, l1.tuple), op: "u", before: image(l1, nil), after: image(l1u, nil), key: keyOf(l1u, "at", "msg")})
	add(eventCase{name: "delete keyless", ev: ev("logs", logs, proto.OpDelete, 10, proto.Tuple{}, l1u.tuple), op: "d", before: image(l1u, nil), key: keyOf(l1u, "at", "msg")})

	add(eventCase{name: "truncate", ev: ev("items", items, proto.OpTruncate, 11, proto.Tuple{}, proto.Tuple{}), op: "t"})
	return cases
}

func TestFormatEvents(t *testing.T) {
	conn := source(t)
	cases := eventCases(t, conn)
	for _, enc := range newEncoders(t) {
		for _, c := range cases {
			t.Run(enc.Name()+"/"+c.name, func(t *testing.T) {
				key, value, err := enc.Encode(context.Background(), "topic", c.ev)
				if err != nil {
					t.Fatal(err)
				}
				checkKey(t, key, c.key)
				switch enc.Name() {
				case FormatDebezium:
					checkDebeziumRow(t, c, value)
				case FormatCanal:
					checkCanalRow(t, c, value)
				case FormatAvro:
					checkAvroRow(t, c, value)
				}
			})
		}
	}
}

func checkKey(t *testing.T, key []byte, want map[string]any) {
	t.Helper()
	if want == nil {
		if key != nil {
			t.Errorf("key %s, want none", key)
		}
		return
	}
	if got := decodeJSON(t, key); !reflect.DeepEqual(got, want) {
		t.Errorf("key %s, want %v", key, want)
	}
}

// checkImage compares a decoded image with the expected one. unknown is
// what the format writes for a marked column: the marker's replacement,
// or leave it out (drop).
func checkImage(t *testing.T, format, which string, cols []proto.Column, got map[string]any, has bool, want map[string]any, unknown func(mark string) (v any, drop bool)) {
	t.Helper()
	if want == nil {
		if has {
			t.Errorf("%s: %v, want null", which, got)
		}
		return
	}
	if !has {
		t.Fatalf("%s: null, want %v", which, want)
	}
	for _, c := range cols {
		w := want[c.Name].(expect)
		g, ok := got[c.Name]
		if w.mark != "" && format != FormatAvro {
			v, drop := unknown(w.mark)
			if drop && ok || !drop && !reflect.DeepEqual(g, v) {
				t.Errorf("%s.%s (%s): got %s (present %v)", which, c.Name, w.mark, short(g), ok)
			}
			continue
		}
		if !ok {
			t.Errorf("%s.%s missing", which, c.Name)
			continue
		}
		if err := checkValue(format, c, g, w); err != nil {
			t.Errorf("%s.%s: %v", which, c.Name, err)
		}
	}
	if len(got) > len(cols) {
		t.Errorf("%s has more members than columns: %v", which, got)
	}
}

func checkDebeziumRow(t *testing.T, c eventCase, value []byte) {
	m := decodeJSON(t, value).(map[string]any)
	if m["op"] != c.op {
		t.Errorf("op %v, want %s", m["op"], c.op)
	}
	placeholder := func(mark string) (any, bool) {
		if mark == toastMark {
			return toastPlaceholder, false
		}
		return nil, false // Debezium's key-only before image: null
	}
	img := decodeImages(t, FormatDebezium, value)
	checkImage(t, FormatDebezium, "before", c.ev.Columns, img.before, img.hasBefore, c.before, placeholder)
	checkImage(t, FormatDebezium, "after", c.ev.Columns, img.after, img.hasAfter, c.after, placeholder)
	r := c.ev.Row
	src := m["source"].(map[string]any)
	wantSrc := map[string]any{
		"version": "sluice", "connector": "postgresql", "name": "task1", "db": "postgres", "schema": "public", "table": c.ev.Table.Name,
		"ts_ms": num(r.CommitTimeUS / 1000), "ts_us": num(r.CommitTimeUS), "ts_ns": num(r.CommitTimeUS * 1000),
		"snapshot": strconv.FormatBool(c.op == "r"), "txId": num(int64(r.Xid)), "lsn": num(int64(r.Pos.LSN)), "xmin": nil,
		"sequence": fmt.Sprintf(`["%d","%d"]`, r.Pos.LSN, r.Pos.Idx),
	}
	if !reflect.DeepEqual(src, wantSrc) {
		t.Errorf("source %v\nwant %v", src, wantSrc)
	}
	if m["ts_ms"] != num(fixedNow.UnixMilli()) {
		t.Errorf("ts_ms %v", m["ts_ms"])
	}
	var wantTx any
	if c.op != "r" {
		wantTx = map[string]any{"id": fmt.Sprintf("%d:%d", r.Xid, r.Pos.LSN), "total_order": num(int64(r.Pos.Idx) + 1), "data_collection_order": num(int64(r.Pos.Idx) + 1)}
	}
	if !reflect.DeepEqual(m["transaction"], wantTx) {
		t.Errorf("transaction %v, want %v", m["transaction"], wantTx)
	}
}

func num(v int64) json.Number { return json.Number(strconv.FormatInt(v, 10)) }

func checkCanalRow(t *testing.T, c eventCase, value []byte) {
	m := decodeJSON(t, value).(map[string]any)
	r := c.ev.Row
	wantType := map[string]string{"c": "INSERT", "r": "INSERT", "u": "UPDATE", "d": "DELETE", "t": "TRUNCATE"}[c.op]
	if m["type"] != wantType {
		t.Errorf("type %v, want %s", m["type"], wantType)
	}
	common := map[string]any{"database": "postgres", "schema": "public", "table": c.ev.Table.Name,
		"es": num(r.CommitTimeUS / 1000), "ts": num(fixedNow.UnixMilli()), "id": num(int64(r.Pos.LSN))}
	for k, v := range common {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if c.op == "t" {
		want := map[string]any{"data": nil, "old": nil, "isDdl": true, "sql": `TRUNCATE TABLE "public"."items"`, "pkNames": nil}
		for k, v := range want {
			if !reflect.DeepEqual(m[k], v) {
				t.Errorf("%s = %v, want %v", k, m[k], v)
			}
		}
		return
	}
	if m["isDdl"] != false || m["sql"] != "" {
		t.Errorf("isDdl %v sql %v", m["isDdl"], m["sql"])
	}
	var wantPK any
	if hasKey(c.ev.Columns) {
		wantPK = []any{"id"}
	}
	if !reflect.DeepEqual(m["pkNames"], wantPK) {
		t.Errorf("pkNames %v, want %v", m["pkNames"], wantPK)
	}
	for _, col := range c.ev.Columns {
		if st := m["sqlType"].(map[string]any)[col.Name]; st != num(int64(col.TypeOID)) {
			t.Errorf("sqlType.%s = %v, want %d", col.Name, st, col.TypeOID)
		}
		if mt := m["mysqlType"].(map[string]any)[col.Name]; mt != pgvalue.TypeName(col.TypeOID, col.TypeMod) {
			t.Errorf("mysqlType.%s = %v", col.Name, mt)
		}
	}
	drop := func(string) (any, bool) { return nil, true } // Canal leaves unknown values out
	data := c.after
	if c.op == "d" {
		data = c.before
	}
	img := decodeImages(t, FormatCanal, value)
	checkImage(t, FormatCanal, "data", c.ev.Columns, img.after, img.hasAfter, data, drop)

	// old: the changed columns both images know, with their old values.
	var wantOld map[string]any
	if c.op == "u" && c.before != nil {
		wantOld = map[string]any{}
		for name, b := range c.before {
			b, a := b.(expect), c.after[name].(expect)
			if b.mark == "" && a.mark == "" && !reflect.DeepEqual(a.v, b.v) {
				wantOld[name] = b
			}
		}
		if len(wantOld) == 0 {
			t.Fatal("test case changes nothing")
		}
	}
	var gotOld map[string]any
	old, hasOld := m["old"].([]any)
	if hasOld {
		if len(old) != 1 {
			t.Fatalf("old has %d rows", len(old))
		}
		gotOld = old[0].(map[string]any)
	}
	if len(gotOld) != len(wantOld) || hasOld != (wantOld != nil) {
		t.Errorf("old %v, want %v", m["old"], wantOld)
	}
	for name, w := range wantOld {
		if !reflect.DeepEqual(gotOld[name], w.(expect).v) {
			t.Errorf("old.%s = %#v, want %#v", name, gotOld[name], w.(expect).v)
		}
	}
}

func checkAvroRow(t *testing.T, c eventCase, value []byte) {
	rec := decodeAvro(t, value)
	r := c.ev.Row
	wantOp := map[string]string{"c": "INSERT", "r": "INSERT", "u": "UPDATE", "d": "DELETE", "t": "TRUNCATE"}[c.op]
	want := map[string]any{
		"version": 1, "id": int64(r.Pos.LSN), "sourceTimestamp": r.CommitTimeUS / 1e6,
		"sourcePosition": r.Pos.String(), "safeSourcePosition": r.Pos.LSN.String(), "sourceTxid": strconv.Itoa(int(r.Xid)),
		"source": map[string]any{"sourceType": "PostgreSQL", "version": ""}, "operation": wantOp,
		"objectName":        "postgres.public." + c.ev.Table.Name,
		"processTimestamps": map[string]any{"array": []any{fixedNow.UnixMilli()}},
	}
	for k, v := range want {
		if !reflect.DeepEqual(rec[k], v) {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
	tags := rec["tags"].(map[string]any)
	if (tags["snapshot"] == "true") != (c.op == "r") {
		t.Errorf("tags %v", tags)
	}
	if hasKey(c.ev.Columns) && tags["pk_uk_info"] != `{"PRIMARY":["id"]}` || !hasKey(c.ev.Columns) && tags["pk_uk_info"] != nil {
		t.Errorf("tags %v", tags)
	}
	if c.op == "t" {
		if rec["beforeImages"] != nil || rec["afterImages"] != nil || rec["fields"] != nil {
			t.Errorf("truncate has images or fields: %v", rec)
		}
		return
	}
	var fields []any
	for _, col := range c.ev.Columns {
		fields = append(fields, map[string]any{"name": col.Name, "dataTypeNumber": int(col.TypeOID)})
	}
	if !reflect.DeepEqual(rec["fields"], map[string]any{"array": fields}) {
		t.Errorf("fields %v", rec["fields"])
	}
	img := decodeImages(t, FormatAvro, value)
	checkImage(t, FormatAvro, "beforeImages", c.ev.Columns, img.before, img.hasBefore, c.before, nil)
	checkImage(t, FormatAvro, "afterImages", c.ev.Columns, img.after, img.hasAfter, c.after, nil)
}

// ddlEvent changes items: a column added, a primary key with an odd name.
func ddlEvent() *Event {
	cols := []proto.ColumnDef{
		{Num: 1, Name: "id", Type: "integer", NotNull: true, Identity: 'd'},
		{Num: 2, Name: `Odd "Name"`, Type: "text", NotNull: true, Default: "'x'::text"},
	}
	old := &proto.TableDef{ID: proto.TableID{Schema: "public", Name: "items"}, Columns: cols, ReplicaIdentity: 'd', PrimaryKey: []string{"id", `Odd "Name"`},
		Constraints: []proto.ConstraintDef{{Name: "items_pkey", Kind: 'p', Def: `PRIMARY KEY (id, "Odd ""Name""")`}}}
	newShape := *old
	newShape.Columns = append(append([]proto.ColumnDef(nil), cols...), proto.ColumnDef{Num: 4, Name: "note", Type: "character varying(20)"})
	return &Event{Database: "postgres", Table: proto.TableID{Schema: "public", Name: "items"},
		DDL: &proto.DDLEvent{Pos: proto.Position{LSN: 0x2000000, Idx: 3}, Tag: "ALTER TABLE", Query: "ALTER TABLE items ADD COLUMN note varchar(20)", Old: old, New: &newShape}}
}

func TestFormatDDLAndHeartbeat(t *testing.T) {
	ctx := context.Background()
	ddl := ddlEvent()
	hb := &Event{Database: "postgres", Heartbeat: true, Row: &proto.Row{Pos: proto.Position{LSN: 0x3000000}, CommitTimeUS: 1714557600999000}}
	for _, enc := range newEncoders(t) {
		key, value, err := enc.Encode(ctx, "topic", ddl)
		if err != nil || key != nil {
			t.Fatalf("%s DDL: key %s, %v", enc.Name(), key, err)
		}
		hbKey, hbValue, err := enc.Encode(ctx, "topic", hb)
		if err != nil || hbKey != nil {
			t.Fatalf("%s heartbeat: key %s, %v", enc.Name(), hbKey, err)
		}
		switch enc.Name() {
		case FormatDebezium:
			m := decodeJSON(t, value).(map[string]any)
			change := m["tableChanges"].([]any)[0].(map[string]any)
			table := change["table"].(map[string]any)
			cols := table["columns"].([]any)
			if m["ddl"] != ddl.DDL.Query || m["databaseName"] != "postgres" || m["schemaName"] != "public" ||
				change["type"] != "ALTER" || change["id"] != `"public"."items"` ||
				!reflect.DeepEqual(table["primaryKeyColumnNames"], []any{"id", `Odd "Name"`}) || len(cols) != 3 {
				t.Errorf("debezium DDL %s", value)
			}
			wantCol := map[string]any{"name": "note", "typeName": "character varying(20)", "typeExpression": "character varying(20)",
				"position": num(3), "optional": true, "autoIncremented": false, "generated": false, "defaultValueExpression": nil}
			if !reflect.DeepEqual(cols[2], wantCol) || cols[0].(map[string]any)["autoIncremented"] != true ||
				cols[1].(map[string]any)["defaultValueExpression"] != "'x'::text" || cols[1].(map[string]any)["optional"] != false {
				t.Errorf("debezium DDL columns %v", cols)
			}
			if src := m["source"].(map[string]any); src["lsn"] != num(0x2000000) || src["table"] != "items" {
				t.Errorf("debezium DDL source %v", src)
			}
			drop := *ddl
			drop.DDL = &proto.DDLEvent{Tag: "DROP TABLE", Query: "DROP TABLE items", Old: ddl.DDL.Old}
			_, v, err := enc.Encode(ctx, "topic", &drop)
			if err != nil {
				t.Fatal(err)
			}
			change = decodeJSON(t, v).(map[string]any)["tableChanges"].([]any)[0].(map[string]any)
			if change["type"] != "DROP" || len(change["table"].(map[string]any)["columns"].([]any)) != 2 {
				t.Errorf("debezium DROP %s", v)
			}

			h := decodeJSON(t, hbValue).(map[string]any)
			if _, ok := h["op"]; ok || h["ts_ms"] != num(1714557600999) || h["source"].(map[string]any)["lsn"] != num(0x3000000) {
				t.Errorf("debezium heartbeat %s", hbValue)
			}
		case FormatCanal:
			m := decodeJSON(t, value).(map[string]any)
			want := map[string]any{"isDdl": true, "type": "ALTER", "sql": ddl.DDL.Query, "data": nil, "old": nil, "database": "postgres",
				"schema": "public", "table": "items", "id": num(0x2000000)}
			for k, v := range want {
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("canal DDL %s = %v, want %v", k, m[k], v)
				}
			}
			h := decodeJSON(t, hbValue).(map[string]any)
			if h["type"] != "HEARTBEAT" || h["isDdl"] != false || h["data"] != nil || h["es"] != num(1714557600999) || h["id"] != num(0x3000000) {
				t.Errorf("canal heartbeat %s", hbValue)
			}
		case FormatAvro:
			rec := decodeAvro(t, value)
			if rec["operation"] != "DDL" || !reflect.DeepEqual(rec["afterImages"], map[string]any{"string": ddl.DDL.Query}) ||
				rec["beforeImages"] != nil || rec["objectName"] != "postgres.public.items" || rec["sourcePosition"] != "0/2000000#3" {
				t.Errorf("avro DDL %v", rec)
			}
			h := decodeAvro(t, hbValue)
			if h["operation"] != "HEARTBEAT" || h["sourceTimestamp"] != int64(1714557600) || h["id"] != int64(0x3000000) || h["objectName"] != nil {
				t.Errorf("avro heartbeat %v", h)
			}
		}
	}
}

// testRegistry is the part of a Confluent schema registry the encoder and
// a consumer use: POST /subjects/{s}/versions and GET /schemas/ids/{id}.
type testRegistry struct {
	mu       sync.Mutex
	schemas  []string       // id-1 → schema
	subjects map[string]int // subject → registrations
	auth     []string
	fail     bool
}

func (r *testRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	user, pass, _ := req.BasicAuth()
	r.auth = append(r.auth, user+":"+pass)
	if r.fail {
		http.Error(w, `{"error_code":50001,"message":"store down `+strings.Repeat("x", 2000)+`"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	switch {
	case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, "/subjects/") && strings.HasSuffix(req.URL.Path, "/versions"):
		if req.Header.Get("Content-Type") != "application/vnd.schemaregistry.v1+json" {
			http.Error(w, "content type", http.StatusUnsupportedMediaType)
			return
		}
		var body struct{ Schema string }
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		subject := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/subjects/"), "/versions")
		r.subjects[subject]++
		id := len(r.schemas) + 1
		for i, s := range r.schemas {
			if s == body.Schema {
				id = i + 1
			}
		}
		if id > len(r.schemas) {
			r.schemas = append(r.schemas, body.Schema)
		}
		fmt.Fprintf(w, `{"id":%d}`, id)
	case req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/schemas/ids/"):
		id, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/schemas/ids/"))
		if err != nil || id < 1 || id > len(r.schemas) {
			http.Error(w, `{"error_code":40403}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"schema": r.schemas[id-1]})
	default:
		http.NotFound(w, req)
	}
}

func TestFormatAvroRegistry(t *testing.T) {
	reg := &testRegistry{subjects: map[string]int{}, schemas: []string{`"string"`}} // id 1 is taken
	srv := httptest.NewServer(reg)
	defer srv.Close()
	ctx := context.Background()
	enc, err := NewEncoder(FormatConfig{Format: FormatAvro, SchemaRegistry: srv.URL + "/", RegistryUser: "u", RegistryPassword: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "v", TypeOID: 25}}
	ev := func(i int) *Event {
		return &Event{Database: "db", Table: proto.TableID{Schema: "s", Name: "t"}, Columns: cols, Row: &proto.Row{Op: proto.OpInsert, Pos: proto.Position{LSN: 99, Idx: uint32(i)},
			New: proto.Tuple{Kinds: []byte("tt"), Values: [][]byte{[]byte(strconv.Itoa(i)), []byte("v")}}}}
	}
	for i, topic := range []string{"t1", "t1", "t2", "t1"} {
		key, value, err := enc.Encode(ctx, topic, ev(i))
		if err != nil {
			t.Fatal(err)
		}
		if string(key) != fmt.Sprintf(`{"id":%d}`, i) {
			t.Errorf("key %s", key)
		}
		if len(value) < 5 || value[0] != 0 {
			t.Fatalf("not in the wire format: % x", value[:min(len(value), 8)])
		}
		id := binary.BigEndian.Uint32(value[1:5])
		if id != 2 {
			t.Errorf("schema id %d, want 2", id)
		}
		// A consumer fetches the schema by the id in the message.
		resp, err := http.Get(fmt.Sprintf("%s/schemas/ids/%d", srv.URL, id))
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Schema string }
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := avro.Unmarshal(avro.MustParse(got.Schema), value[5:], &rec); err != nil {
			t.Fatal(err)
		}
		if rec["operation"] != "INSERT" || rec["objectName"] != "db.s.t" || rec["sourcePosition"] != fmt.Sprintf("0/63#%d", i) {
			t.Errorf("record %v", rec)
		}
	}
	if !reflect.DeepEqual(reg.subjects, map[string]int{"t1-value": 1, "t2-value": 1}) {
		t.Errorf("registrations %v, want one per subject", reg.subjects)
	}
	if reg.auth[0] != "u:s3cret" {
		t.Errorf("basic auth %q", reg.auth[0])
	}

	// A failing registry: the error names the URL and status and carries
	// the start of the body, never the password.
	reg.fail = true
	_, _, err = enc.Encode(ctx, "t3", ev(9))
	var regErr *RegistryError
	if !errors.As(err, &regErr) || regErr.StatusCode != 500 {
		t.Fatalf("error %v, want a RegistryError with status 500", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, srv.URL+"/subjects/t3-value/versions") || !strings.Contains(msg, "500") || !strings.Contains(msg, "store down") ||
		len(msg) > 1000 || strings.Contains(msg, "s3cret") {
		t.Errorf("error %q", msg)
	}
	// Credentials in the URL are used, and kept out of errors.
	enc, err = NewEncoder(FormatConfig{Format: FormatAvro, SchemaRegistry: strings.Replace(srv.URL, "://", "://ursula:pw%3Dsecret@", 1)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = enc.Encode(ctx, "t4", ev(1))
	if err == nil || strings.Contains(err.Error(), "secret") || reg.auth[len(reg.auth)-1] != "ursula:pw=secret" {
		t.Errorf("error %v, auth %q", err, reg.auth[len(reg.auth)-1])
	}
	srv.Close()
	_, _, err = enc.Encode(ctx, "t5", ev(1))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable registry: %v", err)
	}
}

func TestFormatBadInput(t *testing.T) {
	if _, err := NewEncoder(FormatConfig{Format: "protobuf"}); err == nil || !strings.Contains(err.Error(), `"protobuf"`) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := NewEncoder(FormatConfig{Format: FormatCanal, SchemaRegistry: "http://registry:8081"}); err == nil || !strings.Contains(err.Error(), "canal") {
		t.Errorf("registry for canal: %v", err)
	}
	for _, url := range []string{"registry:8081", "ftp://registry", "http://"} {
		if _, err := NewEncoder(FormatConfig{Format: FormatAvro, SchemaRegistry: url}); err == nil {
			t.Errorf("registry URL %q accepted", url)
		}
	}
	if _, err := NewEncoder(FormatConfig{Format: FormatAvro, SchemaRegistry: "http//u:topsecret@registry"}); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("bad registry URL with a password: %v", err)
	}
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}}
	bad := []*Event{
		{Table: proto.TableID{Schema: "s", Name: "t"}, Columns: cols},
		{Columns: cols, Row: &proto.Row{Op: proto.OpInsert, New: proto.Tuple{Kinds: []byte("tt"), Values: [][]byte{{'1'}, {'2'}}}}},
		{Columns: cols, Row: &proto.Row{Op: proto.OpDelete, New: proto.Tuple{Kinds: []byte("t"), Values: [][]byte{{'1'}}}}, Snapshot: true},
		{Columns: cols, Row: &proto.Row{Op: 9, New: proto.Tuple{Kinds: []byte("t"), Values: [][]byte{{'1'}}}}},
	}
	for _, enc := range newEncoders(t) {
		for i, ev := range bad {
			if _, _, err := enc.Encode(context.Background(), "t", ev); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("%s: bad event %d: %v", enc.Name(), i, err)
			}
		}
	}
}

// The encoders are used from several goroutines at once.
func TestFormatConcurrent(t *testing.T) {
	reg := &testRegistry{subjects: map[string]int{}}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	avroReg, err := NewEncoder(FormatConfig{Format: FormatAvro, SchemaRegistry: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}, {Name: "a", TypeOID: 1007}}
	row := &proto.Row{Op: proto.OpInsert, New: proto.Tuple{Kinds: []byte("tt"), Values: [][]byte{[]byte("1"), []byte("{1,2}")}}}
	for _, enc := range append(newEncoders(t), avroReg) {
		var wg sync.WaitGroup
		var first []byte
		var mu sync.Mutex
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					_, v, err := enc.Encode(context.Background(), "t", &Event{Table: proto.TableID{Schema: "s", Name: "t"}, Columns: cols, Row: row})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if first == nil {
						first = v
					} else if !bytes.Equal(v, first) && enc.Name() != FormatAvro { // Avro has the wall clock in processTimestamps
						t.Errorf("%s: different encodings of one event", enc.Name())
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
}
