package pgvalue

import (
	"strconv"
	"testing"
)

// rangeFacts is what PostgreSQL says of a range expression x: empty,
// bounds (printed by the subtype's output function), inclusive,
// unbounded.
func rangeFacts(x string) string {
	return `isempty(` + x + `), coalesce(format('%s', lower(` + x + `)), ''), coalesce(format('%s', upper(` + x + `)), ''),
		lower_inc(` + x + `), upper_inc(` + x + `), lower_inf(` + x + `), upper_inf(` + x + `)`
}

// checkRange compares a parsed range with rangeFacts.
func checkRange(t *testing.T, what string, r Range, f [][]byte) {
	t.Helper()
	b := func(v []byte) bool { return string(v) == "t" }
	empty := b(f[0])
	ok := r.Empty == empty
	if !empty {
		ok = ok && r.LowerInc == b(f[3]) && r.UpperInc == b(f[4]) && r.LowerInf == b(f[5]) && r.UpperInf == b(f[6]) &&
			(r.LowerInf || string(r.Lower) == string(f[1])) && (r.UpperInf || string(r.Upper) == string(f[2]))
	}
	if !ok {
		t.Errorf("%s: %+v (lower %q, upper %q); PostgreSQL says empty %s, lower %q, upper %q, inc %s %s, inf %s %s",
			what, r, r.Lower, r.Upper, f[0], f[1], f[2], f[3], f[4], f[5], f[6])
	}
}

// Ranges of the built-in subtypes and of text (whose bounds need quotes
// and escapes): ParseRange finds what lower(), upper() and their kin say,
// and AppendRange prints as range_out does.
func TestParseRangeAgainstPostgres(t *testing.T) {
	conn := connect(t)
	cases := []struct {
		typ      string
		literals []string
	}{
		{"int4range", []string{"[1,5)", "(1,5]", "empty", "(,5)", "[1,)", "(,)", "[-2147483648,2147483647)", "[3,3]", "[ 1 , 7 )"}},
		{"int8range", []string{"[-9223372036854775808,0]", "(,)"}},
		{"numrange", []string{"(,3.5]", "[1.10,NaN)", "[-0.000001,1e10]", "empty"}},
		{"daterange", []string{"[2020-01-01,2020-01-02)", "[4713-01-01 BC,infinity)", "(-infinity,2000-02-29]"}},
		{"tsrange", []string{`["2020-01-01 00:00:00.5","2020-01-01 10:00")`, "(,infinity]"}},
		{"tstzrange", []string{`["2020-01-01 00:00+00",infinity)`, `("0001-01-01 00:00:00+00 BC","2024-05-01 10:00:00.123456-04:56:02"]`}},
		{"textrange", []string{`["",z)`, `[" ","a b"]`, `["a\"b","a,b"]`, `["a\\b",c(d)`, `[a"b,c"d,e]`, `("""",NULL]`, `[ü,ü]`, `(,"")`,
			`["[x]",y)`, "[\"\t\",\"\n\"]", `(a""b,c)`, `[\),\,)`, "empty", " EMPTY "}},
	}
	for _, c := range cases {
		all := samples(t, conn, c.typ, c.literals)
		facts := textRows(t, conn, "SELECT "+rangeFacts("v")+" FROM samples ORDER BY n")
		for i, s := range all {
			r, err := ParseRange(s.text)
			if err != nil {
				t.Errorf("%s %s: %q: %v", c.typ, s.literal, s.text, err)
				continue
			}
			checkRange(t, c.typ+" "+s.literal, r, facts[i])
			if back := AppendRange(nil, r); string(back) != string(s.text) {
				t.Errorf("%s %s: AppendRange gives %s, PostgreSQL printed %s", c.typ, s.literal, back, s.text)
			}
		}
	}

	// Spellings only range_in reads: the bounds come out as written
	// (whitespace and all), unquoted as range_in unquotes them.
	for _, lit := range []string{`[a"b,c"d,e]`, `( a , b )`, `["a""b",c]`, `[\",\a]`, `[a\,b,c]`, ` [a,b] `, `[,]`, `["",""]`} {
		r, err := ParseRange([]byte(lit))
		if err != nil {
			t.Errorf("%s: %v", lit, err)
			continue
		}
		f := textRows(t, conn, "SELECT "+rangeFacts("'"+lit+"'::textrange"))
		checkRange(t, "textrange "+lit, r, f[0])
	}
	for _, lit := range []string{``, `[`, `[a`, `[a,b`, `[a,b)x`, `(a;b)`, `[a,b,c]`, `["a,b)`, `emptyx`, `{[a,b]}`, `[a,b\`} {
		if r, err := ParseRange([]byte(lit)); err == nil {
			t.Errorf("ParseRange(%q) = %+v", lit, r)
		}
		if _, err := conn.Exec(withTimeout(t), "SELECT $1::textrange", lit); err == nil {
			t.Errorf("range_in reads %q, which ParseRange refuses", lit)
		}
	}
}

// Multiranges: ParseMultirange finds the ranges unnest gives, and
// AppendMultirange prints as multirange_out does.
func TestParseMultirangeAgainstPostgres(t *testing.T) {
	conn := connect(t)
	cases := []struct {
		typ      string
		literals []string
	}{
		{"int4multirange", []string{"{}", "{[1,3), [5,7)}", "{[1,4),[2,3),(,0]}", " { [1,2) , empty } ", "{(,)}"}},
		{"tstzmultirange", []string{`{["2020-01-01 00:00+00","2020-02-01 00:00+00"),["2021-01-01 00:00+00",infinity)}`}},
		{"nummultirange", []string{"{[1.5,2.5],(3,)}"}},
	}
	for _, c := range cases {
		all := samples(t, conn, c.typ, c.literals)
		for i, s := range all {
			rs, err := ParseMultirange(nil, s.text)
			if err != nil {
				t.Errorf("%s %s: %q: %v", c.typ, s.literal, s.text, err)
				continue
			}
			facts := textRows(t, conn, "SELECT "+rangeFacts("r")+" FROM samples, unnest(v) WITH ORDINALITY AS u(r, i) WHERE n = "+strconv.Itoa(i)+" ORDER BY i")
			if len(facts) != len(rs) {
				t.Errorf("%s %s: %d ranges, PostgreSQL says %d", c.typ, s.literal, len(rs), len(facts))
				continue
			}
			for j, r := range rs {
				checkRange(t, c.typ+" "+s.literal+" range "+strconv.Itoa(j), r, facts[j])
			}
			if back := AppendMultirange(nil, rs); string(back) != string(s.text) {
				t.Errorf("%s %s: AppendMultirange gives %s, PostgreSQL printed %s", c.typ, s.literal, back, s.text)
			}
		}
	}
	for _, lit := range []string{``, `{`, `{[1,2)`, `{[1,2),}`, `{,[1,2)}`, `{[1,2)}x`, `[1,2)`, `{[1,2) [3,4)}`} {
		if rs, err := ParseMultirange(nil, []byte(lit)); err == nil {
			t.Errorf("ParseMultirange(%q) = %+v", lit, rs)
		}
		if _, err := conn.Exec(withTimeout(t), "SELECT $1::int4multirange", lit); err == nil {
			t.Errorf("multirange_in reads %q, which ParseMultirange refuses", lit)
		}
	}
}
