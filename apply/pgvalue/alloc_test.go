package pgvalue

import (
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// The parsers run once a value, on every row a destination writes: they
// allocate nothing unless the result needs memory of its own.
func TestParseAllocations(t *testing.T) {
	buf := make([]byte, 0, 256)
	row := proto.Tuple{Kinds: make([]byte, 0, 8), Values: make([][]byte, 0, 8)}
	line := []byte("1\tsome text\t\\N\t{a,b}\t2024-05-01 10:00:00+00")
	cases := map[string]func(){
		"ParseInt":           func() { _, _ = ParseInt([]byte("-9223372036854775808"), 64) },
		"ParseFloat":         func() { _, _ = ParseFloat([]byte("1.2345678901234568e+17"), 64) },
		"ParseFloat special": func() { _, _ = ParseFloat([]byte("-Infinity"), 64) },
		"ParseNumeric":       func() { _, _ = ParseNumeric([]byte("-1234567890.123456789")) },
		"ParseBool":          func() { _, _ = ParseBool([]byte("t")) },
		"ParseDateTime and UTC": func() {
			dt, _ := ParseDateTime([]byte("1999-12-31 23:59:59.123456-04:56:02"))
			_ = dt.UTC().Time()
		},
		"AppendDateTime": func() {
			_ = AppendDateTime(buf[:0], DateTime{Year: -4712, Month: 1, Day: 1, HasDate: true, HasTime: true, HasOffset: true, Offset: 19800})
		},
		"ParseInterval":      func() { _, _ = ParseInterval([]byte("-1 years -2 mons +3 days -04:05:06.789")) },
		"AppendInterval":     func() { _ = AppendInterval(buf[:0], Interval{Months: -14, Days: 3, Microseconds: -14706789000}) },
		"ParseUUID":          func() { _, _ = ParseUUID([]byte("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")) },
		"ParseBytea":         func() { _, _ = ParseBytea(buf[:0], []byte(`\x00ff10`)) },
		"ParseRange":         func() { _, _ = ParseRange([]byte(`["2020-01-01 00:00:00+00",infinity)`)) },
		"AppendRange":        func() { _ = AppendRange(buf[:0], Range{Lower: []byte("a b"), UpperInf: true, LowerInc: true}) },
		"AppendArrayElement": func() { _ = AppendArrayElement(buf[:0], []byte(`say "hi"`), ',') },
		"ParseCopyTextRow":   func() { row = ParseCopyTextRow(row, line) },
		"AppendCopyTextRow":  func() { _, _ = AppendCopyTextRow(buf[:0], row) },
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

func BenchmarkParseDateTime(b *testing.B) {
	text := []byte("2024-05-01 10:00:00.123456+02")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDateTime(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkArrayReader(b *testing.B) {
	text := []byte(`{{red,"dark blue"},{NULL,"with \"quotes\""}}`)
	var r ArrayReader
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(text, ',')
		for {
			tok, _, err := r.Next()
			if err != nil {
				b.Fatal(err)
			}
			if tok == ArrayEnd {
				break
			}
		}
	}
}
