package kafka

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"

	"github.com/sluicedb/sluice/apply/pgvalue"
	"github.com/sluicedb/sluice/internal/jsonstr"
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
//	                                      elements converted as their type; an array with a
//	                                      lower bound other than 1 ("[0:1]={1,2}") stays the text
//	                                      string, since a JSON array cannot keep it
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

// appendValue appends the JSON form of one value of type oid given in
// text form, as the table at the top of this file says.
func appendValue(b []byte, oid uint32, text []byte) []byte {
	t, known := pgvalue.Lookup(oid)
	if !known {
		return jsonstr.Append(b, text)
	}
	switch t.Family {
	case pgvalue.FamilyBool:
		if v, err := pgvalue.ParseBool(text); err == nil {
			return strconv.AppendBool(b, v)
		}
	case pgvalue.FamilyInt:
		// The canonical form ParseInt accepts is a JSON number, exact
		// as printed (an int8 beyond 2^53 included).
		if _, err := pgvalue.ParseInt(text, 64); err == nil {
			return append(b, text...)
		}
	case pgvalue.FamilyFloat:
		// Finite floats print as JSON numbers ("1e+100", "-0",
		// "1.5e-07"); NaN and the infinities are strings.
		if f, err := pgvalue.ParseFloat(text, 8*t.Size); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return append(b, text...)
		}
	case pgvalue.FamilyTimestamptz:
		if dt, err := pgvalue.ParseDateTime(text); err == nil && dt.HasDate && dt.HasOffset {
			b = append(b, '"')
			b = appendUTC(b, dt)
			return append(b, '"')
		}
	case pgvalue.FamilyBytea:
		if raw, err := pgvalue.ParseBytea(nil, text); err == nil {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			return append(b, '"')
		}
	case pgvalue.FamilyJSON:
		// json keeps the client's text, which PostgreSQL has checked;
		// Valid guards the message against anything it let through.
		if json.Valid(text) {
			return append(b, text...)
		}
	case pgvalue.FamilyArray:
		if out, ok := appendArray(b, t.Elem, t.Delim, text); ok {
			return out
		}
	}
	return jsonstr.Append(b, text)
}

// appendArray appends the JSON array of an array's text form, elements
// converted as elem's values; ok is false for text that is not an array
// a JSON array can stand for (malformed, or with a lower bound other than
// 1), and then b is unchanged.
func appendArray(b []byte, elem uint32, delim byte, text []byte) ([]byte, bool) {
	start := len(b)
	var r pgvalue.ArrayReader
	r.Reset(text, delim)
	comma := false // an item precedes in the open list
	for {
		tok, v, err := r.Next()
		if err != nil {
			return b[:start], false
		}
		if comma && tok != pgvalue.ArrayClose && tok != pgvalue.ArrayEnd {
			b = append(b, ',')
		}
		switch tok {
		case pgvalue.ArrayOpen:
			b, comma = append(b, '['), false
		case pgvalue.ArrayClose:
			b, comma = append(b, ']'), true
		case pgvalue.ArrayNull:
			b, comma = append(b, "null"...), true
		case pgvalue.ArrayElement:
			b, comma = appendValue(b, elem, v), true
		case pgvalue.ArrayEnd:
			for _, d := range r.Dims() {
				if d.Lower != 1 {
					return b[:start], false
				}
			}
			return b, true
		}
	}
}

// appendUTC appends a timestamptz's instant in UTC as RFC 3339 with
// microseconds, trailing zeros of the fraction dropped; years before 1 AD
// are written as PostgreSQL writes them, counted back from 1 BC with " BC"
// after the zone ("0002-12-31T23:30:00Z BC", as its to_json does).
func appendUTC(b []byte, dt pgvalue.DateTime) []byte {
	u := dt.UTC()
	u.HasOffset = false
	start := len(b)
	b = pgvalue.AppendDateTime(b, u) // "2024-05-01 10:00:00.5", " BC" after
	b[start+bytes.IndexByte(b[start:], ' ')] = 'T'
	if bc := []byte(" BC"); bytes.HasSuffix(b, bc) {
		return append(append(b[:len(b)-len(bc)], 'Z'), bc...)
	}
	return append(b, 'Z')
}
