package sinktest

import (
	"strconv"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// family is a column of the type-family table and its values in rows A
// and B (row C holds NULL but in the float columns, see typeFamilies).
type family struct {
	col  column
	a, b sample
}

// sample is a value as capture delivers it (PostgreSQL's text output,
// as a source session prints it) and its canonical form when that
// differs (see Row).
type sample struct{ in, want string }

func (v sample) canonical() string {
	if v.want != "" {
		return v.want
	}
	return v.in
}

// families covers every type family a destination converts: the edges
// of each (the extremes of the integers, numeric's NaN and a value
// wider than any float, the floats' NaN and infinities, text that COPY
// and JSON must escape, empty values that are not NULL, time zones).
var families = []family{
	{column{name: "i2", typ: "smallint", oid: 21}, sample{in: "-32768"}, sample{in: "0"}},
	{column{name: "i4", typ: "integer", oid: 23}, sample{in: "2147483647"}, sample{in: "-1"}},
	{column{name: "i8", typ: "bigint", oid: 20}, sample{in: "-9223372036854775808"}, sample{in: "9007199254740993"}},
	{column{name: "num", typ: "numeric", oid: 1700}, sample{in: "123456789012345678901234567890.000000000000000000001"}, sample{in: "NaN"}},
	{column{name: "f4", typ: "real", oid: 700}, sample{in: "3.14"}, sample{in: "NaN"}},
	{column{name: "f8", typ: "double precision", oid: 701}, sample{in: "1e+100"}, sample{in: "-Infinity"}},
	{column{name: "bool", typ: "boolean", oid: 16}, sample{in: "t"}, sample{in: "f"}},
	{column{name: "txt", typ: "text", oid: 25},
		sample{in: "tab\there\nline two\r\\back\\slash \"double\" 'single' \\N ünïcødé 日本語 🙂"}, sample{in: ""}},
	{column{name: "vc", typ: "character varying(8)", oid: 1043, mod: 8 + 4}, sample{in: "ÄÖÜ ß-vc"}, sample{in: ""}},
	{column{name: "bin", typ: "bytea", oid: 17}, sample{in: `\x00ff5c0a22`}, sample{in: `\x`}},
	{column{name: "d", typ: "date", oid: 1082}, sample{in: "2024-02-29"}, sample{in: "infinity"}},
	{column{name: "tm", typ: "time without time zone", oid: 1083}, sample{in: "23:59:59.999999"}, sample{in: "00:00:00"}},
	{column{name: "ttz", typ: "time with time zone", oid: 1266}, sample{in: "10:00:00+05:30"}, sample{in: "23:59:59-08"}},
	{column{name: "ts", typ: "timestamp without time zone", oid: 1114}, sample{in: "2024-05-01 10:00:00.5"}, sample{in: "-infinity"}},
	{column{name: "tstz", typ: "timestamp with time zone", oid: 1184},
		sample{in: "2024-05-01 15:30:00.123456+05:30", want: "2024-05-01 10:00:00.123456+00"}, sample{in: "infinity"}},
	{column{name: "iv", typ: "interval", oid: 1186}, sample{in: "1 year 2 mons 3 days 04:05:06.789"}, sample{in: "-00:00:01"}},
	{column{name: "u", typ: "uuid", oid: 2950}, sample{in: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, sample{in: "00000000-0000-0000-0000-000000000000"}},
	// json keeps the document as written, spaces and key order included.
	{column{name: "js", typ: "json", oid: 114}, sample{in: `{"b": [1, 2.50],  "a": "x\ty\"z\\"}`}, sample{in: `[]`}},
	{column{name: "jb", typ: "jsonb", oid: 3802}, sample{in: `{"a": "x", "b": [1, 2.50, null], "nested": {"k": true}}`}, sample{in: `{}`}},
	{column{name: "ints", typ: "integer[]", oid: 1007}, sample{in: "{1,NULL,-3}"}, sample{in: "{}"}},
	{column{name: "texts", typ: "text[]", oid: 1009},
		sample{in: `{"a b",NULL,"q\"uote","back\\slash","NULL","",é,"c,d"}`}, sample{in: `{}`}},
	{column{name: "r", typ: "int4range", oid: 3904}, sample{in: "[1,5)"}, sample{in: "empty"}},
}

// Row C's floats: the infinity and the negative zero rows A and B lack.
var floatsC = map[string]string{"f4": "Infinity", "f8": "-0"}

// typesTable is the type-family table.
func typesTable() tableSpec {
	s := tableSpec{id: table("conf_types"), identity: proto.IdentityDefault, cols: []column{idCol}}
	for _, f := range families {
		s.cols = append(s.cols, f.col)
	}
	return s
}

// typeRows are rows A, B and C with keys first+0, +1 and +2: as written
// (in) and as read back (want).
func typeRows(first int) (in, want [3][]string) {
	for i := range in {
		id := strconv.Itoa(first + i)
		in[i], want[i] = []string{id}, []string{id}
	}
	for _, f := range families {
		c, ok := floatsC[f.col.name]
		if !ok {
			c = Null
		}
		in[0], want[0] = append(in[0], f.a.in), append(want[0], f.a.canonical())
		in[1], want[1] = append(in[1], f.b.in), append(want[1], f.b.canonical())
		in[2], want[2] = append(in[2], c), append(want[2], c)
	}
	return in, want
}

// Values of every type family keep their meaning through the full sync
// (COPY's text format) and through incremental changes (the text form
// with the type's OID), inserted and updated: the destination's read-back
// turns them back into canonical form, equal for every destination.
func typeFamilies(t *testing.T, d Destination) {
	s := typesTable()
	d.Create(t, s.def())
	copied, copiedWant := typeRows(1)
	applied, appliedWant := typeRows(11)
	s.load(t, d, "types", proto.EndOf(5), copied[:]...)

	// Incremental: 11 is inserted as A; 12 goes from C to B and 13 from
	// B to C, so every value is also written over another and over NULL.
	a := d.Open(t, "types.apply.0")
	_, err := a.Offsets(t.Context(), "types")
	must(t, err)
	b, c := withID(applied[1], applied[2][0]), withID(applied[2], applied[1][0])
	must(t, a.Apply(t.Context(), s.changes("types", 1, ins(at(10, 0), applied[0]...), ins(at(10, 1), c...), ins(at(10, 2), b...))))
	must(t, a.Apply(t.Context(), s.changes("types", 1, upd(at(11, 0), nil, applied[1]), upd(at(11, 1), nil, applied[2]))))
	// One row per batch (a destination may write a single row its own
	// way): 11 goes from A to C, 12 from B to A, 14 is inserted as A, and
	// 15, inserted as B, is deleted.
	for i, r := range []proto.Row{
		upd(at(12, 0), nil, withID(applied[2], "11")),
		upd(at(12, 1), nil, withID(applied[0], "12")),
		ins(at(12, 2), withID(applied[0], "14")...),
		ins(at(12, 3), withID(applied[1], "15")...),
		del(at(12, 4), withID(applied[1], "15")...),
	} {
		if err := a.Apply(t.Context(), s.changes("types", 1, r)); err != nil {
			t.Fatalf("single-row batch %d: %v", i, err)
		}
	}

	var want []Row
	for _, r := range append(copiedWant[:],
		withID(appliedWant[2], "11"), withID(appliedWant[0], "12"), appliedWant[2], withID(appliedWant[0], "14")) {
		want = append(want, s.row(r...))
	}
	wantTable(t, d, "types", s, want)
}

// withID is vals with another key (its first value).
func withID(vals []string, id string) []string {
	return append([]string{id}, vals[1:]...)
}
