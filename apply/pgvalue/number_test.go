package pgvalue

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"testing"
)

// Integers, floats and booleans: the text PostgreSQL prints parses to the
// value its binary send form holds, bit for bit.
func TestParseNumbersAgainstBinary(t *testing.T) {
	conn := connect(t)
	ints := []struct {
		typ      string
		bits     int
		literals []string
	}{
		{"int2", 16, []string{"0", "1", "-1", "32767", "-32768", "007", "+42"}},
		{"int4", 32, []string{"0", "2147483647", "-2147483648", "10", "-100"}},
		{"int8", 64, []string{"0", "9223372036854775807", "-9223372036854775808", "9007199254740993", "-1000000"}},
		{"oid", 64, []string{"0", "4294967295", "2147483648", "16384"}},
	}
	for _, c := range ints {
		for _, s := range samples(t, conn, c.typ, c.literals) {
			got, err := ParseInt(s.text, c.bits)
			var want int64
			switch len(s.bin) {
			case 2:
				want = int64(int16(binary.BigEndian.Uint16(s.bin)))
			case 4:
				want = int64(int32(binary.BigEndian.Uint32(s.bin)))
				if c.typ == "oid" {
					want = int64(binary.BigEndian.Uint32(s.bin))
				}
			case 8:
				want = int64(binary.BigEndian.Uint64(s.bin))
			}
			if err != nil || got != want {
				t.Errorf("%s %s: text %q parses to %d (%v), PostgreSQL holds %d", c.typ, s.literal, s.text, got, err, want)
			}
		}
	}

	floats := []struct {
		typ      string
		bits     int
		literals []string
	}{
		{"float8", 64, []string{"0", "-0", "1", "-1.5", "NaN", "Infinity", "-Infinity", "1e100", "1e-300", "4.9e-324", "1.7976931348623157e308",
			"0.1", "1000000", "1e15", "1e16", "123456789012345678", "0.0001", "0.00001", "1.0000000000000002", "-2.2250738585072014e-308"}},
		{"float4", 32, []string{"0", "-0", "NaN", "Infinity", "-Infinity", "3.4028235e38", "1e-45", "1.17549435e-38", "0.1", "1e6", "1e5", "1234567", "16777217"}},
	}
	for _, c := range floats {
		for _, s := range samples(t, conn, c.typ, c.literals) {
			got, err := ParseFloat(s.text, c.bits)
			same := false
			if c.bits == 32 {
				same = math.Float32bits(float32(got)) == binary.BigEndian.Uint32(s.bin) || math.IsNaN(got) && math.IsNaN(float64(math.Float32frombits(binary.BigEndian.Uint32(s.bin))))
			} else {
				same = math.Float64bits(got) == binary.BigEndian.Uint64(s.bin) || math.IsNaN(got) && math.IsNaN(math.Float64frombits(binary.BigEndian.Uint64(s.bin)))
			}
			if err != nil || !same {
				t.Errorf("%s %s: text %q parses to %v (%v), PostgreSQL holds % x", c.typ, s.literal, s.text, got, err, s.bin)
			}
		}
	}

	for _, s := range samples(t, conn, "bool", []string{"t", "f", "true", "no", "on", "0"}) {
		got, err := ParseBool(s.text)
		if err != nil || got != (s.bin[0] == 1) {
			t.Errorf("bool %s: text %q parses to %t (%v), PostgreSQL holds % x", s.literal, s.text, got, err, s.bin)
		}
	}
}

// Numerics: sign, integer digits and fraction digits agree with what
// PostgreSQL computes of the value (its scale, its integer part, its
// fraction), and AppendNumeric prints the text back.
func TestParseNumericAgainstPostgres(t *testing.T) {
	conn := connect(t)
	literals := []string{"0", "0.00", "-0.0", "1.10", "-1.10", "NaN", "Infinity", "-Infinity", "123456789012345678901234567890.123456789012345678901234567890",
		"0.000000000000000000001", "-0.000000000000000000001", "1e20", "12e-5", "-987654321", "99999999999999999999999999999999999999999999999999",
		"1" + strings.Repeat("0", 1000) + ".5", "0." + strings.Repeat("0", 999) + "1"}
	values := samples(t, conn, "numeric", literals)
	facts := textRows(t, conn, `SELECT CASE WHEN v = 'NaN' THEN 'NaN' WHEN v IN ('Infinity', '-Infinity') THEN v::text ELSE 'finite' END,
		sign(v) < 0, abs(trunc(v))::text, scale(v), abs(v - trunc(v))::text FROM samples ORDER BY n`)
	for i, s := range values {
		n, err := ParseNumeric(s.text)
		if err != nil {
			t.Errorf("numeric %s: %q: %v", s.literal, s.text, err)
			continue
		}
		if got := string(AppendNumeric(nil, n)); got != string(s.text) {
			t.Errorf("numeric %s: AppendNumeric gives %q, PostgreSQL printed %q", s.literal, got, s.text)
		}
		f := facts[i]
		switch kind := string(f[0]); kind {
		case "NaN", "Infinity", "-Infinity":
			want := map[string]Special{"NaN": NaN, "Infinity": PosInfinity, "-Infinity": NegInfinity}[kind]
			if n.Special != want {
				t.Errorf("numeric %s: special %v, PostgreSQL says %s", s.literal, n.Special, kind)
			}
			continue
		}
		scale, _ := strconv.Atoi(string(f[3]))
		// abs(v - trunc(v)) prints "0.xxx" with the value's scale, or
		// "0" for a scale of 0.
		_, frac, _ := strings.Cut(string(f[4]), ".")
		if n.Special != Finite || n.Negative != (string(f[1]) == "t") || string(n.Int) != string(f[2]) || len(n.Frac) != scale || string(n.Frac) != frac {
			t.Errorf("numeric %s: %+v; PostgreSQL says negative %s, integer part %s, scale %d, fraction %s", s.literal, n, f[1], f[2], scale, f[4])
		}
	}
}

// Text PostgreSQL's output functions do not print: refused, so that a
// caller keeps it as text rather than misreading it.
func TestParseNumbersRefuse(t *testing.T) {
	for _, s := range []string{"", "-", "007", "-0", "+1", "1.0", " 1", "1 ", "0x10", "9223372036854775808", "-9223372036854775809", "12345678901234567890"} {
		if v, err := ParseInt([]byte(s), 64); err == nil {
			t.Errorf("ParseInt(%q) = %d", s, v)
		}
	}
	for _, c := range []struct {
		s    string
		bits int
	}{{"32768", 16}, {"-32769", 16}, {"2147483648", 32}, {"4294967296", 32}} {
		if v, err := ParseInt([]byte(c.s), c.bits); err == nil {
			t.Errorf("ParseInt(%q, %d) = %d", c.s, c.bits, v)
		}
	}
	for _, s := range []string{"", "1.", ".5", "01", "-", "inf", "nan", "infinity", "+1", "1e", "1e+", "0x1p-2", "1_000", "1e400"} {
		if v, err := ParseFloat([]byte(s), 64); err == nil {
			t.Errorf("ParseFloat(%q) = %v", s, v)
		}
	}
	for _, s := range []string{"", "1.", ".5", "-", "1e5", "nan", "+1", "1,5", " 1"} {
		if v, err := ParseNumeric([]byte(s)); err == nil {
			t.Errorf("ParseNumeric(%q) = %+v", s, v)
		}
	}
	for _, s := range []string{"", "true", "T", "1", "yes"} {
		if v, err := ParseBool([]byte(s)); err == nil {
			t.Errorf("ParseBool(%q) = %t", s, v)
		}
	}
}
