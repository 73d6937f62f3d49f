package pgvalue

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// walked is what ArrayReader made of an array's text.
type walked struct {
	elems   []any  // flattened in storage order: string, or nil for NULL
	dims    string // as array_dims prints them: "[1:2][1:3]"; "" for an empty array
	rebuilt string // the text again, from the tokens, quoted by AppendArrayElement
}

// walkArray reads text with an ArrayReader.
func walkArray(text []byte, delim byte) (walked, error) {
	var w walked
	var r ArrayReader
	r.Reset(text, delim)
	var body []byte
	item := false // an item precedes in the open list: a delimiter is due
	for {
		tok, elem, err := r.Next()
		if err != nil {
			return w, err
		}
		if item && (tok == ArrayOpen || tok == ArrayElement || tok == ArrayNull) {
			body = append(body, delim)
		}
		switch tok {
		case ArrayOpen:
			body, item = append(body, '{'), false
		case ArrayClose:
			body, item = append(body, '}'), true
		case ArrayNull:
			body, item = append(body, "NULL"...), true
			w.elems = append(w.elems, nil)
		case ArrayElement:
			body, item = AppendArrayElement(body, elem, delim), true
			w.elems = append(w.elems, string(elem))
		case ArrayEnd:
			var dims, decoration strings.Builder
			for _, d := range r.Dims() {
				fmt.Fprintf(&dims, "[%d:%d]", d.Lower, d.Lower+d.Length-1)
				if d.Lower != 1 {
					decoration = dims // array_out decorates when any lower bound is not 1
				}
			}
			if decoration.Len() > 0 {
				decoration.Reset()
				decoration.WriteString(dims.String() + "=")
			}
			w.dims, w.rebuilt = dims.String(), decoration.String()+string(body)
			return w, nil
		}
	}
}

// arrayFacts is PostgreSQL's account of an array expression x: array_dims
// and the elements unnest gives, each printed by its output function
// (format's %s), as a JSON array with null for NULL.
func arrayFacts(x string) string {
	return fmt.Sprintf(`coalesce(array_dims(%[1]s), ''),
		(SELECT coalesce(jsonb_agg(CASE WHEN e IS NULL THEN NULL ELSE format('%%s', e) END ORDER BY i), '[]')::text
		FROM unnest(%[1]s) WITH ORDINALITY AS u(e, i))`, x)
}

// checkWalk compares a walk with PostgreSQL's facts of the same array.
func checkWalk(t *testing.T, what string, w walked, dims, elems []byte) {
	t.Helper()
	var want []any
	if err := json.Unmarshal(elems, &want); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if want == nil {
		want = []any{}
	}
	if w.elems == nil {
		w.elems = []any{}
	}
	if w.dims != string(dims) || !reflect.DeepEqual(w.elems, want) {
		t.Errorf("%s: dims %s, elements %q; PostgreSQL says %s, %q", what, w.dims, w.elems, dims, want)
	}
}

// Arrays of every family, and the element strings that need quoting or
// escapes: ArrayReader finds the elements and dimensions unnest and
// array_dims report, and AppendArrayElement quotes as array_out does.
func TestArrayReaderAgainstPostgres(t *testing.T) {
	conn := connect(t)
	cases := []struct {
		typ   string
		exprs []string
	}{
		{"text[]", []string{
			`ARRAY['NULL', NULL, '', ' lead', 'trail ', 'a,b', 'q"uote', 'back\slash', '{brace}', 'x}', 'ünï 🚀', E'tab\tnl\n', 'null', 'a b',
				E'\\', '"', ',', ';', E'\r\v\f', 'NuLl', 'plain', E'\\"', '\N', 'a=b', '[1:2]']`,
			`'{}'`, `ARRAY[NULL]::text[]`, `ARRAY[ARRAY['a', 'b'], ARRAY['c d', 'e"f'], ARRAY[NULL, '']]`, `'[0:1]={x,y}'`,
			`'[-3:-2][5:6]={{a,NULL},{"",d}}'`, `'{{{{{{x}}}}}}'`, `'[1:1][0:0][1:1][1:1][1:1][1:2]={{{{{{x,y}}}}}}'`,
		}},
		{"int[]", []string{`'{1,NULL,3}'`, `'{{1,2},{3,NULL}}'`, `'{{{1},{2}},{{3},{4}}}'`, `'{}'`, `'[5:7]={1,2,3}'`, `'{-2147483648}'`}},
		{"box[]", []string{`'{(1,1),(0,0);(2,2),(1,1)}'`, `ARRAY[box '((0,0),(1,1))', NULL]`, `'{{(1,1),(0,0)};{(3,3),(2,2)}}'`}},
		{"point[]", []string{`ARRAY[point(1, 2), point(-1.5, 0), NULL]`}},
		{"float8[]", []string{`'{NaN,Infinity,-Infinity,1e+100,-0,1.5e-07}'`}},
		{"float4[]", []string{`'{3.4028235e+38,NaN,1e-45}'`}},
		{"numeric[]", []string{`'{1.10,NaN,-0.000000000000000000001,Infinity}'`}},
		{"bytea[]", []string{`ARRAY['\x00ff'::bytea, '', NULL, '\x5c22', 'a\\b']`}},
		{"date[]", []string{`'{2000-02-29,infinity,4713-01-01 BC}'`}},
		{"timestamp[]", []string{`'{"2000-01-01 00:00:00.5",-infinity,"0001-01-01 00:00:00 BC"}'`}},
		{"timestamptz[]", []string{`'{"1999-12-31 23:59:59.123456+05:30",infinity,NULL,"0001-01-01 00:30:00+01 BC"}'`}},
		{"time[]", []string{`'{00:00:00,24:00:00,12:34:56.789}'`}},
		{"timetz[]", []string{`'{00:00:00+00,23:59:59.999999-15:59}'`}},
		{"interval[]", []string{`'{"1 day",-00:00:01,"-1 years +2 mons"}'`}},
		{"uuid[]", []string{`'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'`}},
		{"json[]", []string{`ARRAY['{"k" : "v\"w"}'::json, '[]', 'null', NULL, '"\\"']`}},
		{"jsonb[]", []string{`ARRAY['{"a": "x\"y", "b": [1, 2.50]}'::jsonb, '"s"', '{}']`}},
		{"bool[]", []string{`'{t,f,NULL}'`}},
		{"varchar(3)[]", []string{`'{ab," c",""}'`}},
		{"bpchar(3)[]", []string{`'{a,"b c"}'`}},
		{`"char"[]`, []string{`ARRAY['a'::"char", ' ', '"', '\']`}},
		{"name[]", []string{`'{a,"b c",NULL}'`}},
		{"int4range[]", []string{`ARRAY['[1,5)'::int4range, 'empty', '(,3]', NULL]`}},
		{"tstzrange[]", []string{`ARRAY[tstzrange('2020-01-01', 'infinity', '[]')]`}},
		{"int4multirange[]", []string{`ARRAY['{[1,3),[5,7)}'::int4multirange, '{}']`}},
		{"tsvector[]", []string{`ARRAY['a fat:1 cat:2'::tsvector, '''with space'' x']`}},
		{"xml[]", []string{`ARRAY['<a b="c">x, y</a>'::xml]`}},
		{"inet[]", []string{`'{10.0.0.1/8,::1,NULL}'`}},
		{"money[]", []string{`'{1000,-2.50}'`}},
		{"bit(3)[]", []string{`'{101,000}'`}},
		{"oid[]", []string{`'{0,4294967295}'`}},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			all := samplesOf(t, conn, c.typ, c.exprs)
			facts := textRows(t, conn, "SELECT "+arrayFacts("v")+" FROM samples ORDER BY n")
			delim := byte(',')
			if strings.HasPrefix(c.typ, "box") {
				delim = ';'
			}
			for i, s := range all {
				w, err := walkArray(s.text, delim)
				if err != nil {
					t.Errorf("%s: %v", s.literal, err)
					continue
				}
				checkWalk(t, s.literal, w, facts[i][0], facts[i][1])
				if w.rebuilt != string(s.text) {
					t.Errorf("%s: rebuilt as %s, PostgreSQL printed %s", s.literal, w.rebuilt, s.text)
				}
			}
		})
	}
}

// The literals array_in accepts and refuses, most of which array_out never
// prints: ArrayReader accepts the same, and reads what array_in reads.
func TestArrayReaderAgainstArrayIn(t *testing.T) {
	conn := connect(t)
	literals := []string{
		// accepted
		`{}`, ` { } `, `{a}`, ` {a , b} `, `{"a" , "b" }`, `{a b}`, `{ a b }`, `{NULL}`, `{"NULL"}`, `{nuLL}`, `{\NULL}`, `{NULL\ }`,
		`{{1},{NULL}}`, `{"\a"}`, `{a\ }`, `{ab\\}`, `[3]={1,2,3}`, ` [1:2] = {1,2}`, `[-2:-1]={1,2}`, `[0:0][1:2]={{a,b}}`, `{a\,b}`,
		`{"a\"b"}`, `{\{\}}`, `{ "a b" }`, "{\t a \n}", `{{a,b},{c,d}}`, `{{{{{{x}}}}}}`, `[1:1][1:1][1:1][1:1][1:1][1:1]={{{{{{x}}}}}}`,
		`{ {a} , {b} }`, `{"",""}`, `{a\"b}`, `[+1:+2]={a,b}`, "{\"a\"\t}",
		// refused
		`{{},{}}`, `{{}}`, `{1,,2}`, `{,}`, `{a}b`, `{"a"b}`, `{a"b"}`, `[1:2]={1}`, `{{1,2},{3}}`, `{1,{2}}`, `{{1},2}`,
		`{{{{{{{x}}}}}}}`, `{`, `}`, ``, `a`, `{"a}`, `{a`, `{a\}`, `[1:2]{1,2}`, `[2:1]={}`, `[1:1]={}`, `{a,}`, `{,a}`, `[a]={1}`,
		`{a}}`, `{{a}`, `[1:1]={{a}}`, `{a"b}`, `[1:1][1:1]={a}`, `{a\`, `{"a\`, `[1:2`, `[1]`, `[1:2]=`, `{}}`, `{{a},{b}}{c}`,
	}
	for _, lit := range literals {
		w, err := walkArray([]byte(lit), ',')
		rows, qerr := conn.Query(withTimeout(t), "SELECT "+arrayFacts("$1::text[]"), lit)
		var dims, elems []byte
		if qerr == nil {
			for rows.Next() {
				var d, e string
				qerr = rows.Scan(&d, &e)
				dims, elems = []byte(d), []byte(e)
			}
			rows.Close()
			if qerr == nil {
				qerr = rows.Err()
			}
		}
		switch {
		case (err == nil) != (qerr == nil):
			t.Errorf("%q: ArrayReader says %v, array_in says %v", lit, err, qerr)
		case err == nil:
			checkWalk(t, strconv.Quote(lit), w, dims, elems)
		}
	}
}

// Arrays pgvalue writes (AppendArrayElement, in a COPY text row) load
// back as the arrays they were built from.
func TestAppendArrayLoadsBack(t *testing.T) {
	conn := connect(t)
	str := func(s string) *string { return &s }
	oneDim := [][]*string{
		{str(""), nil, str("NULL"), str("null"), str(" "), str("a b"), str(`"`), str(`\`), str(`\"`), str("{}"), str(","), str("\t\n\r\v\f"),
			str("ünï 🚀"), str("plain"), str("x}"), str("[1:2]={3}"), str("\\N"), str("'")},
		{},
		{nil},
	}
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS loaded, expected; CREATE TEMP TABLE loaded (n int, v text[]); CREATE TEMP TABLE expected (n int, v text[])")
	var data []byte
	for n, elems := range oneDim {
		text := []byte{'{'}
		for i, e := range elems {
			if i > 0 {
				text = append(text, ',')
			}
			if e == nil {
				text = append(text, "NULL"...)
			} else {
				text = AppendArrayElement(text, []byte(*e), ',')
			}
		}
		text = append(text, '}')
		var err error
		data, err = AppendCopyTextRow(data, proto.Tuple{Kinds: []byte{proto.KindText, proto.KindText}, Values: [][]byte{[]byte(strconv.Itoa(n)), text}})
		if err != nil {
			t.Fatal(err)
		}
		testenv.MustExec(t, conn, "INSERT INTO expected VALUES ($1, $2)", n, elems)
	}
	// Two dimensions, the box delimiter.
	data = append(data, "100\t{{"...)
	data = AppendCopyText(data, AppendArrayElement(nil, []byte(`a"b`), ','))
	data = append(data, ',')
	data = AppendCopyText(data, AppendArrayElement(nil, []byte("c\td"), ','))
	data = append(data, "},{NULL,"...)
	data = AppendCopyText(data, AppendArrayElement(nil, []byte(""), ','))
	data = append(data, "}}\n"...)
	testenv.MustExec(t, conn, "INSERT INTO expected VALUES (100, $1)", [][]*string{{str(`a"b`), str("c\td")}, {nil, str("")}})
	copyIn(t, conn, "COPY loaded FROM STDIN", data)
	differ := textRows(t, conn, `SELECT n, l.v, e.v FROM loaded l FULL JOIN expected e USING (n) WHERE l.v IS DISTINCT FROM e.v`)
	for _, d := range differ {
		t.Errorf("array %s loaded as %q, built from %q", d[0], d[1], d[2])
	}
	if n := scalar(t, conn, "SELECT count(*) FROM loaded"); n != strconv.Itoa(len(oneDim)+1) {
		t.Errorf("%s arrays loaded", n)
	}

	var boxes []byte
	for i, b := range []string{"(1,1),(0,0)", "(3,3),(2,2)"} {
		if i > 0 {
			boxes = append(boxes, ';')
		}
		boxes = AppendArrayElement(boxes, []byte(b), ';')
	}
	if got := scalar(t, conn, "SELECT array_length('{"+string(boxes)+"}'::box[], 1) || ' ' || ('{"+string(boxes)+"}'::box[])[2]::text"); got != "2 (3,3),(2,2)" {
		t.Errorf("boxes %s read as %s", boxes, got)
	}
}

// An element without escapes aliases the array's text: a walk allocates
// nothing.
func TestArrayReaderAllocations(t *testing.T) {
	text := []byte(`{{1,NULL,"a b"},{"2",3,4}}`)
	var r ArrayReader
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(text, ',')
		for {
			tok, _, err := r.Next()
			if err != nil || tok == ArrayEnd {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations a walk", allocs)
	}
	// An escaped element is unescaped into memory the reader keeps.
	r.Reset([]byte(`{"a\"b","c\\d"}`), ',')
	var got []string
	for {
		tok, elem, err := r.Next()
		if err != nil || tok == ArrayEnd {
			break
		}
		if tok == ArrayElement {
			got = append(got, string(elem))
		}
	}
	if !reflect.DeepEqual(got, []string{`a"b`, `c\d`}) {
		t.Errorf("escaped elements %q", got)
	}
	if _, _, err := r.Next(); err != nil {
		t.Errorf("Next after the end: %v", err)
	}
	if d := r.Dims(); len(d) != 1 || d[0] != (ArrayDim{Lower: 1, Length: 2}) {
		t.Errorf("dims %v", d)
	}
}
