package kafka

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/proto"
)

// What appendValue makes of text its parsers refuse, and of values JSON
// has no literal for: a string, never a dropped value or invalid JSON.
// The parsing itself is tested in apply/pgvalue; the common forms against
// PostgreSQL in format_test.go.
func TestValueEdgeCases(t *testing.T) {
	cases := []struct {
		oid  uint32
		text string
		want string // JSON
	}{
		// bytea_output = escape
		{pgtype.ByteaOID, `a\000\\\377`, `"YQBc/w=="`},
		{pgtype.ByteaOID, `\x0`, `"\\x0"`}, // odd hex: kept as text
		{pgtype.ByteaOID, `bad\9`, `"bad\\9"`},
		// numbers that are not JSON numbers stay strings
		{pgtype.Int4OID, "007", `"007"`},
		{pgtype.Int8OID, "-", `"-"`},
		{pgtype.Float8OID, "1.", `"1."`},
		{pgtype.Float8OID, "NaN", `"NaN"`},
		{pgtype.Float4OID, "-Infinity", `"-Infinity"`},
		{pgtype.Float8OID, "-1.5E+300", `-1.5E+300`},
		{pgtype.BoolOID, "true", `"true"`},
		// arrays: nested, NULL elements, elements converted by type,
		// malformed literals and lower bounds other than 1 as text
		{pgtype.Int4ArrayOID, " { 1 , NULL ,\t3 } ", `[1,null,3]`},
		{pgtype.TextArrayOID, `{a\,b,"NULL",null,\ x\ }`, `["a,b","NULL",null," x "]`},
		{pgtype.Int8ArrayOID, `{{1,2},{3,NULL}}`, `[[1,2],[3,null]]`},
		{pgtype.TextArrayOID, `{{},{}}`, `"{{},{}}"`},
		{pgtype.TextArrayOID, `{a,}`, `"{a,}"`},
		{pgtype.Int4ArrayOID, `[1:2][3:4]={{1,2},{3,4}}`, `"[1:2][3:4]={{1,2},{3,4}}"`},
		{pgtype.Int4ArrayOID, `[1:2]={1,2}`, `[1,2]`},
		{pgtype.BoxArrayOID, `{(1,1),(0,0);(2,2),(1,1)}`, `["(1,1),(0,0)","(2,2),(1,1)"]`},
		{pgtype.JSONBArrayOID, `{"{\"a\": 1}",NULL,"[1, {}]"}`, `[{"a": 1},null,[1, {}]]`},
		{pgtype.TimestamptzArrayOID, `{"2024-05-01 23:30:00.5-01",infinity}`, `["2024-05-02T00:30:00.5Z","infinity"]`},
		{pgtype.JSONOID, `{"a": }`, `"{\"a\": }"`},
		// timestamptz: in UTC, BC after the zone; other styles as text
		{pgtype.TimestamptzOID, "Wed May 01 10:00:00 2024 UTC", `"Wed May 01 10:00:00 2024 UTC"`},
		{pgtype.TimestamptzOID, "2024-05-01 10:00:00", `"2024-05-01 10:00:00"`},
		{pgtype.TimestamptzOID, "2024-05-01 23:30:00.5-01", `"2024-05-02T00:30:00.5Z"`},
		{pgtype.TimestamptzOID, "0001-01-01 00:00:00-00:00:01", `"0001-01-01T00:00:01Z"`},
		{pgtype.TimestamptzOID, "0001-01-01 00:00:00+00:00:01", `"0001-12-31T23:59:59Z BC"`},
		{pgtype.TimestamptzOID, "-infinity", `"-infinity"`},
		// strings: control characters and invalid UTF-8
		{pgtype.TextOID, "a\x00\x1f\x7f\u2028é", `"a\u0000\u001f` + "\x7f\u2028é" + `"`},
		{pgtype.TextOID, "\xff\xc3(x\xe2\x82", `"\ufffd\ufffd(x\ufffd\ufffd"`},
		{99999, "anything", `"anything"`},
	}
	for _, c := range cases {
		got := string(appendValue(nil, c.oid, []byte(c.text)))
		if got != c.want {
			t.Errorf("%s %q: %s, want %s", pgvalue.TypeName(c.oid, -1), c.text, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s %q: invalid JSON %s", pgvalue.TypeName(c.oid, -1), c.text, got)
		}
	}
}

func TestFormatHelpers(t *testing.T) {
	for offset, want := range map[int]string{-(4*3600 + 56*60 + 2): "-04:56:02", 0: "+00:00", 5*3600 + 30*60: "+05:30"} {
		if got := offsetText(offset); got != want {
			t.Errorf("offsetText(%d) = %s, want %s", offset, got, want)
		}
	}
	if floorDiv(-1, 1e6) != -1 || floorDiv(1e6, 1e6) != 1 {
		t.Error("floorDiv")
	}
}

func BenchmarkFormatEncode(b *testing.B) {
	cols := []proto.Column{
		{Name: "id", TypeOID: pgtype.Int8OID, Key: true}, {Name: "name", TypeOID: pgtype.TextOID},
		{Name: "at", TypeOID: pgtype.TimestamptzOID}, {Name: "price", TypeOID: pgtype.NumericOID},
		{Name: "tags", TypeOID: pgtype.TextArrayOID}, {Name: "doc", TypeOID: pgtype.JSONBOID},
	}
	vals := [][]byte{[]byte("123456789"), []byte("a product name"), []byte("2024-05-01 10:00:00.123456+02"),
		[]byte("1234.50"), []byte(`{red,"dark blue",NULL}`), []byte(`{"a": 1, "b": [true, null]}`)}
	ev := &Event{Database: "db", Table: proto.TableID{Schema: "public", Name: "t"}, Columns: cols,
		Row: &proto.Row{Op: proto.OpUpdate, New: proto.Tuple{Kinds: []byte("tttttt"), Values: vals}, Old: proto.Tuple{Kinds: []byte("tttttt"), Values: vals}}}
	for _, f := range []string{FormatDebezium, FormatCanal, FormatAvro} {
		enc, err := NewEncoder(FormatConfig{Format: f})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := enc.Encode(b.Context(), "t", ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
