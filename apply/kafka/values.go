package kafka

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// Column values arrive in PostgreSQL's text form (what `SELECT col::text`
// prints) with the column's type OID. appendValue turns one into JSON in a
// single pass over the bytes, keeping PostgreSQL's meaning:
//
//	type (by OID)                         JSON value
//	------------------------------------  ---------------------------------------------------
//	bool                                  true / false
//	int2, int4, int8, oid                 number, digits as PostgreSQL printed them (int8 exact)
//	float4, float8                        number; "NaN", "Infinity", "-Infinity" as strings
//	numeric                               string, exact ("1.10", "NaN", "Infinity")
//	money                                 string, as printed (locale-formatted: "$1.00")
//	text, varchar, bpchar, name, "char"   string
//	date, time, timetz, timestamp         string of the text form (as the session's DateStyle
//	                                      prints it, ISO by default: "2024-05-01 10:00:00.5")
//	timestamptz                           RFC 3339 string in UTC: "2024-05-01T10:00:00.123456Z";
//	                                      BC instants get " BC" ("0002-12-31T23:30:00Z BC", as
//	                                      PostgreSQL's own to_json writes BC); "infinity",
//	                                      "-infinity" and any text not in ISO style as printed
//	bytea                                 string, base64 (standard alphabet, padded) of the bytes
//	json, jsonb                           the JSON document itself, embedded
//	arrays of the built-in types below    JSON array, nested per dimension, NULL elements null,
//	                                      elements converted as their type; an array printed
//	                                      with bounds ("[0:1]={1,2}") stays the text string, since
//	                                      a JSON array cannot keep a lower bound other than 1
//	everything else: uuid, xml, interval, string of the text form
//	bit, varbit, network, geometric,
//	tsvector, ranges, multiranges, enums,
//	domains, composites, extension types
//	(citext...), arrays of those
//
// Domains, enums, composites and extension types have OIDs assigned per
// database, so an OID alone does not say what they are: they keep the text
// form. Arrays of them do too, even though "{a,b}" looks like an array: a
// multirange prints as "{[1,3),[5,7)}" and an unknown OID cannot tell the two
// apart. Text that does not parse as its type says (a bool that is not t or
// f, an int8 that is not digits...) is written as a string rather than
// dropped.

// valueClass says how a type's text form converts.
type valueClass uint8

const (
	classString      valueClass = iota // any other type: the text form as a string
	classText                          // character types: a string
	classBool                          // true / false
	classInt                           // integer types: a JSON number
	classFloat                         // binary floats: a number, or a string for NaN and infinities
	classNumeric                       // numeric: an exact string
	classDate                          // date: a string (Avro: DateTime)
	classTime                          // time: a string (Avro: DateTime)
	classTimetz                        // timetz: a string (Avro: TimestampWithTimeZone)
	classTimestamp                     // timestamp: a string (Avro: DateTime)
	classTimestamptz                   // timestamptz: a UTC RFC 3339 string (Avro: Timestamp)
	classBytea                         // bytea: base64
	classJSON                          // json, jsonb: embedded
	classArray                         // an array of a built-in type
)

// pgType is what the encoders know of a built-in type.
type pgType struct {
	name  string // pg_type.typname; arrays: the element's name and "[]"
	class valueClass
	size  int    // integer and float types: width in bytes
	elem  uint32 // arrays: the element type
	delim byte   // arrays: the element delimiter (',' for all but box)
}

// OIDs of built-in types that pgtype does not name.
const (
	moneyOID          = 790
	moneyArrayOID     = 791
	macaddr8ArrayOID  = 775
	tsqueryOID        = 3615
	tsqueryArrayOID   = 3645
	pgLSNOID          = 3220
	pgLSNArrayOID     = 3221
	datemultirangeOID = 4535
)

// pgTypes are the built-in types by OID. Scalar OIDs are fixed in every
// PostgreSQL database (they come from the bootstrap catalog).
var pgTypes = buildTypes()

func buildTypes() map[uint32]pgType {
	scalars := []struct {
		oid, array uint32
		t          pgType
	}{
		{pgtype.BoolOID, pgtype.BoolArrayOID, pgType{name: "bool", class: classBool}},
		{pgtype.ByteaOID, pgtype.ByteaArrayOID, pgType{name: "bytea", class: classBytea}},
		{pgtype.QCharOID, pgtype.QCharArrayOID, pgType{name: "char", class: classText}},
		{pgtype.NameOID, pgtype.NameArrayOID, pgType{name: "name", class: classText}},
		{pgtype.Int8OID, pgtype.Int8ArrayOID, pgType{name: "int8", class: classInt, size: 8}},
		{pgtype.Int2OID, pgtype.Int2ArrayOID, pgType{name: "int2", class: classInt, size: 2}},
		{pgtype.Int4OID, pgtype.Int4ArrayOID, pgType{name: "int4", class: classInt, size: 4}},
		{pgtype.TextOID, pgtype.TextArrayOID, pgType{name: "text", class: classText}},
		{pgtype.OIDOID, pgtype.OIDArrayOID, pgType{name: "oid", class: classInt, size: 4}},
		{pgtype.JSONOID, pgtype.JSONArrayOID, pgType{name: "json", class: classJSON}},
		{pgtype.XMLOID, pgtype.XMLArrayOID, pgType{name: "xml"}},
		{pgtype.PointOID, pgtype.PointArrayOID, pgType{name: "point"}},
		{pgtype.LsegOID, pgtype.LsegArrayOID, pgType{name: "lseg"}},
		{pgtype.PathOID, pgtype.PathArrayOID, pgType{name: "path"}},
		{pgtype.BoxOID, pgtype.BoxArrayOID, pgType{name: "box"}},
		{pgtype.PolygonOID, pgtype.PolygonArrayOID, pgType{name: "polygon"}},
		{pgtype.LineOID, pgtype.LineArrayOID, pgType{name: "line"}},
		{pgtype.CIDROID, pgtype.CIDRArrayOID, pgType{name: "cidr"}},
		{pgtype.Float4OID, pgtype.Float4ArrayOID, pgType{name: "float4", class: classFloat, size: 4}},
		{pgtype.Float8OID, pgtype.Float8ArrayOID, pgType{name: "float8", class: classFloat, size: 8}},
		{pgtype.CircleOID, pgtype.CircleArrayOID, pgType{name: "circle"}},
		{pgtype.Macaddr8OID, macaddr8ArrayOID, pgType{name: "macaddr8"}},
		{moneyOID, moneyArrayOID, pgType{name: "money"}},
		{pgtype.MacaddrOID, pgtype.MacaddrArrayOID, pgType{name: "macaddr"}},
		{pgtype.InetOID, pgtype.InetArrayOID, pgType{name: "inet"}},
		{pgtype.BPCharOID, pgtype.BPCharArrayOID, pgType{name: "bpchar", class: classText}},
		{pgtype.VarcharOID, pgtype.VarcharArrayOID, pgType{name: "varchar", class: classText}},
		{pgtype.DateOID, pgtype.DateArrayOID, pgType{name: "date", class: classDate}},
		{pgtype.TimeOID, pgtype.TimeArrayOID, pgType{name: "time", class: classTime}},
		{pgtype.TimestampOID, pgtype.TimestampArrayOID, pgType{name: "timestamp", class: classTimestamp}},
		{pgtype.TimestamptzOID, pgtype.TimestamptzArrayOID, pgType{name: "timestamptz", class: classTimestamptz}},
		{pgtype.IntervalOID, pgtype.IntervalArrayOID, pgType{name: "interval"}},
		{pgtype.TimetzOID, pgtype.TimetzArrayOID, pgType{name: "timetz", class: classTimetz}},
		{pgtype.BitOID, pgtype.BitArrayOID, pgType{name: "bit"}},
		{pgtype.VarbitOID, pgtype.VarbitArrayOID, pgType{name: "varbit"}},
		{pgtype.NumericOID, pgtype.NumericArrayOID, pgType{name: "numeric", class: classNumeric}},
		{pgtype.UUIDOID, pgtype.UUIDArrayOID, pgType{name: "uuid"}},
		{pgLSNOID, pgLSNArrayOID, pgType{name: "pg_lsn"}},
		{pgtype.TSVectorOID, pgtype.TSVectorArrayOID, pgType{name: "tsvector"}},
		{tsqueryOID, tsqueryArrayOID, pgType{name: "tsquery"}},
		{pgtype.JSONBOID, pgtype.JSONBArrayOID, pgType{name: "jsonb", class: classJSON}},
		{pgtype.Int4rangeOID, pgtype.Int4rangeArrayOID, pgType{name: "int4range"}},
		{pgtype.NumrangeOID, pgtype.NumrangeArrayOID, pgType{name: "numrange"}},
		{pgtype.TsrangeOID, pgtype.TsrangeArrayOID, pgType{name: "tsrange"}},
		{pgtype.TstzrangeOID, pgtype.TstzrangeArrayOID, pgType{name: "tstzrange"}},
		{pgtype.DaterangeOID, pgtype.DaterangeArrayOID, pgType{name: "daterange"}},
		{pgtype.Int8rangeOID, pgtype.Int8rangeArrayOID, pgType{name: "int8range"}},
		{pgtype.JSONPathOID, pgtype.JSONPathArrayOID, pgType{name: "jsonpath"}},
		{pgtype.Int4multirangeOID, pgtype.Int4multirangeArrayOID, pgType{name: "int4multirange"}},
		{pgtype.NummultirangeOID, pgtype.NummultirangeArrayOID, pgType{name: "nummultirange"}},
		{pgtype.TsmultirangeOID, pgtype.TsmultirangeArrayOID, pgType{name: "tsmultirange"}},
		{pgtype.TstzmultirangeOID, pgtype.TstzmultirangeArrayOID, pgType{name: "tstzmultirange"}},
		{datemultirangeOID, pgtype.DatemultirangeArrayOID, pgType{name: "datemultirange"}},
		{pgtype.Int8multirangeOID, pgtype.Int8multirangeArrayOID, pgType{name: "int8multirange"}},
	}
	m := make(map[uint32]pgType, 2*len(scalars))
	for _, s := range scalars {
		m[s.oid] = s.t
		delim := byte(',')
		if s.oid == pgtype.BoxOID {
			delim = ';' // boxes contain commas
		}
		m[s.array] = pgType{name: s.t.name + "[]", class: classArray, elem: s.oid, delim: delim}
	}
	return m
}

// lookupType is what is known of oid; unknown OIDs are strings named by
// their number.
func lookupType(oid uint32) pgType {
	if t, ok := pgTypes[oid]; ok {
		return t
	}
	return pgType{name: "oid:" + strconv.FormatUint(uint64(oid), 10)}
}

// typeName names a column's type for consumers: pg_type's name with the
// type modifier as format_type shows it ("varchar(10)", "numeric(12,2)",
// "timestamptz(3)", "int4[]"), or "oid:N" for a type only the source
// database can name (enums, domains, composites, extensions).
func typeName(oid uint32, typmod int32) string {
	t := lookupType(oid)
	if t.class == classArray {
		// An array column's typmod is its element's.
		return typeName(t.elem, typmod) + "[]"
	}
	if typmod < 0 {
		return t.name
	}
	switch oid {
	case pgtype.VarcharOID, pgtype.BPCharOID:
		if typmod >= 4 {
			return t.name + "(" + strconv.Itoa(int(typmod-4)) + ")"
		}
	case pgtype.NumericOID:
		if p, s, ok := numericTypmod(typmod); ok {
			return t.name + "(" + strconv.Itoa(p) + "," + strconv.Itoa(s) + ")"
		}
	case pgtype.BitOID, pgtype.VarbitOID, pgtype.TimeOID, pgtype.TimetzOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return t.name + "(" + strconv.Itoa(int(typmod)) + ")"
	}
	return t.name
}

// numericTypmod decodes numeric(precision, scale) from atttypmod; ok is
// false for an unconstrained numeric. Scale may be negative (PostgreSQL 15).
func numericTypmod(typmod int32) (precision, scale int, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	t := typmod - 4
	return int(t>>16) & 0xffff, int((t&0x7ff)^1024) - 1024, true
}

// appendValue appends the JSON form of one value of type oid given in
// text form, as the table at the top of this file says.
func appendValue(b []byte, oid uint32, text []byte) []byte {
	t, known := pgTypes[oid]
	if !known {
		return appendJSONString(b, text)
	}
	switch t.class {
	case classBool:
		switch string(text) {
		case "t":
			return append(b, "true"...)
		case "f":
			return append(b, "false"...)
		}
	case classInt:
		if isJSONInt(text) {
			return append(b, text...)
		}
	case classFloat:
		// PostgreSQL prints finite floats in a form that is a JSON number
		// ("1e+100", "-0", "1.5e-07"); NaN and the infinities are not.
		if isJSONNumber(text) {
			return append(b, text...)
		}
	case classTimestamptz:
		if dt, ok := parseDateTime(text); ok && dt.date && dt.zone {
			b = append(b, '"')
			b = appendUTC(b, dt.instant())
			return append(b, '"')
		}
	case classBytea:
		if raw, ok := decodeBytea(text); ok {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			return append(b, '"')
		}
	case classJSON:
		// json keeps the client's text, which PostgreSQL has checked;
		// Valid guards the message against anything it let through.
		if json.Valid(text) {
			return append(b, text...)
		}
	case classArray:
		if out, ok := appendArray(b, t.elem, t.delim, text); ok {
			return out
		}
	}
	return appendJSONString(b, text)
}

// isJSONInt reports whether s is an integer in JSON's grammar.
func isJSONInt(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	return digits(s) == len(s)
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	n := digits(s)
	if n == 0 || (s[0] == '0' && n > 1) {
		return false
	}
	s = s[n:]
	if len(s) > 0 && s[0] == '.' {
		n = digits(s[1:])
		if n == 0 {
			return false
		}
		s = s[1+n:]
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		n = digits(s)
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return len(s) == 0
}

// digits counts the leading ASCII digits of s.
func digits(s []byte) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// decodeBytea decodes bytea's text form: hex ("\x00ff", the default) or
// the older escape format (bytea_output = escape: "a\000\\").
func decodeBytea(s []byte) ([]byte, bool) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		out := make([]byte, hex.DecodedLen(len(s)-2))
		if _, err := hex.Decode(out, s[2:]); err != nil {
			return nil, false
		}
		return out, true
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]):
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return nil, false
		}
	}
	return out, true
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// appendArray appends the JSON array of an array's text form, elements
// converted as elem's values; ok is false for text that is not a plain
// array literal (bounds decoration, malformed), and then b is unchanged.
func appendArray(b []byte, elem uint32, delim byte, s []byte) ([]byte, bool) {
	p := arrayParser{s: s, elem: elem, delim: delim}
	start := len(b)
	p.skipSpace()
	b, ok := p.array(b)
	p.skipSpace()
	if !ok || p.i != len(s) {
		return b[:start], false
	}
	return b, true
}

// arrayParser reads PostgreSQL's array output syntax: braces per
// dimension, elements unquoted or double-quoted with backslash escapes,
// and an unquoted NULL for a null element.
type arrayParser struct {
	s     []byte
	i     int
	elem  uint32
	delim byte
	buf   []byte // the current element, unescaped
}

func (p *arrayParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && isArraySpace(p.s[p.i]) {
		p.i++
	}
}

// isArraySpace is the whitespace array_in skips around elements.
func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func (p *arrayParser) array(b []byte) ([]byte, bool) {
	if p.peek() != '{' {
		return b, false
	}
	p.i++
	b = append(b, '[')
	p.skipSpace()
	if p.peek() == '}' {
		p.i++
		return append(b, ']'), true
	}
	for n := 0; ; n++ {
		if n > 0 {
			b = append(b, ',')
		}
		p.skipSpace()
		var ok bool
		switch p.peek() {
		case '{':
			b, ok = p.array(b)
		case '"':
			b, ok = p.quoted(b)
		default:
			b, ok = p.unquoted(b)
		}
		if !ok {
			return b, false
		}
		p.skipSpace()
		switch p.peek() {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return append(b, ']'), true
		default:
			return b, false
		}
	}
}

func (p *arrayParser) quoted(b []byte) ([]byte, bool) {
	p.i++ // the opening quote
	p.buf = p.buf[:0]
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i == len(p.s) {
				return b, false
			}
			p.buf = append(p.buf, p.s[p.i])
			p.i++
		case '"':
			return appendValue(b, p.elem, p.buf), true
		default:
			p.buf = append(p.buf, c)
		}
	}
	return b, false
}

func (p *arrayParser) unquoted(b []byte) ([]byte, bool) {
	p.buf = p.buf[:0]
	keep, escaped := 0, false // keep: length without trailing unescaped spaces
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == p.delim || c == '}' {
			break
		}
		switch {
		case c == '{' || c == '"':
			return b, false
		case c == '\\':
			if p.i+1 == len(p.s) {
				return b, false
			}
			p.buf = append(p.buf, p.s[p.i+1])
			p.i += 2
			keep, escaped = len(p.buf), true
			continue
		}
		p.buf = append(p.buf, c)
		p.i++
		if !isArraySpace(c) {
			keep = len(p.buf)
		}
	}
	p.buf = p.buf[:keep]
	if len(p.buf) == 0 {
		return b, false
	}
	if !escaped && bytes.EqualFold(p.buf, []byte("NULL")) {
		return append(b, "null"...), true
	}
	return appendValue(b, p.elem, p.buf), true
}

// pgDateTime is a date, a time of day or both, read from PostgreSQL's ISO
// output ("2024-05-01", "10:00:00.5", "10:00:00+05:30",
// "0002-12-31 18:33:58-04:56:02 BC").
type pgDateTime struct {
	year, month, day            int // year counted astronomically: 1 BC is 0
	hour, minute, second, micro int
	offset                      int  // zone: seconds east of UTC
	date, clock, zone           bool // which parts the text had
}

// parseDateTime parses the ISO DateStyle output of date, time, timetz,
// timestamp and timestamptz; ok is false for anything else (infinity,
// other DateStyles).
func parseDateTime(s []byte) (dt pgDateTime, ok bool) {
	if n := digits(s); n >= 4 && n < len(s) && s[n] == '-' {
		dt.year, _ = strconv.Atoi(string(s[:n]))
		s = s[n+1:]
		if !num2(&s, &dt.month, '-') || !num2(&s, &dt.day, 0) {
			return dt, false
		}
		if dt.month < 1 || dt.month > 12 || dt.day < 1 || dt.day > 31 {
			return dt, false
		}
		dt.date = true
		if len(s) > 1 && s[0] == ' ' && s[1] != 'B' {
			s = s[1:]
		}
	}
	if len(s) >= 8 && s[2] == ':' {
		if !num2(&s, &dt.hour, ':') || !num2(&s, &dt.minute, ':') || !num2(&s, &dt.second, 0) {
			return dt, false
		}
		if dt.hour > 24 || dt.minute > 59 || dt.second > 60 {
			return dt, false
		}
		if len(s) > 0 && s[0] == '.' {
			n := digits(s[1:])
			if n == 0 || n > 6 {
				return dt, false
			}
			dt.micro, _ = strconv.Atoi(string(s[1 : 1+n]))
			for i := n; i < 6; i++ {
				dt.micro *= 10
			}
			s = s[1+n:]
		}
		dt.clock = true
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			if !parseOffset(&s, &dt.offset) {
				return dt, false
			}
			dt.zone = true
		}
	}
	if bytes.HasPrefix(s, []byte(" BC")) && dt.date {
		dt.year = 1 - dt.year
		s = s[3:]
	}
	return dt, len(s) == 0 && (dt.date || dt.clock)
}

// num2 reads two digits into v, then the separator sep unless it is 0.
func num2(s *[]byte, v *int, sep byte) bool {
	b := *s
	if len(b) < 2 || digits(b[:2]) != 2 {
		return false
	}
	*v = int(b[0]-'0')*10 + int(b[1]-'0')
	b = b[2:]
	if sep != 0 {
		if len(b) == 0 || b[0] != sep {
			return false
		}
		b = b[1:]
	}
	*s = b
	return true
}

// parseOffset reads a zone offset: +HH, +HH:MM or +HH:MM:SS (historical
// local mean times have seconds).
func parseOffset(s *[]byte, offset *int) bool {
	sign := 1
	if (*s)[0] == '-' {
		sign = -1
	}
	*s = (*s)[1:]
	var h, m, sec int
	if !num2(s, &h, 0) {
		return false
	}
	if len(*s) > 0 && (*s)[0] == ':' {
		*s = (*s)[1:]
		if !num2(s, &m, 0) {
			return false
		}
		if len(*s) > 0 && (*s)[0] == ':' {
			*s = (*s)[1:]
			if !num2(s, &sec, 0) {
				return false
			}
		}
	}
	*offset = sign * (h*3600 + m*60 + sec)
	return true
}

// instant is the moment a date, time and zone name (proleptic Gregorian,
// as PostgreSQL counts).
func (dt pgDateTime) instant() time.Time {
	return time.Date(dt.year, time.Month(dt.month), dt.day, dt.hour, dt.minute, dt.second,
		dt.micro*1000, time.FixedZone("", dt.offset))
}

// appendUTC appends t in UTC as RFC 3339 with microseconds, trailing
// zeros of the fraction dropped; years before 1 AD are written as PostgreSQL
// writes them, counted back from 1 BC with " BC" after the zone.
func appendUTC(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, bc := t.Year(), false
	if year <= 0 {
		year, bc = 1-year, true
	}
	b = appendPadded(b, year, 4)
	b = append(b, '-')
	b = appendPadded(b, int(t.Month()), 2)
	b = append(b, '-')
	b = appendPadded(b, t.Day(), 2)
	b = append(b, 'T')
	b = appendPadded(b, t.Hour(), 2)
	b = append(b, ':')
	b = appendPadded(b, t.Minute(), 2)
	b = append(b, ':')
	b = appendPadded(b, t.Second(), 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		frac := appendPadded(nil, us, 6)
		b = append(b, bytes.TrimRight(frac, "0")...)
	}
	b = append(b, 'Z')
	if bc {
		b = append(b, " BC"...)
	}
	return b
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does, so the message stays valid JSON.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most UTFMax bytes are converted, which stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
