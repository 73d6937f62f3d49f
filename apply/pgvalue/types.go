package pgvalue

import (
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// Family is what a type's text form is, as far as parsing goes: types of
// one family share a parser and a meaning (int2, int4 and int8 are
// integers of different widths).
type Family uint8

const (
	FamilyOther       Family = iota // no parser here: xml, money, geometric, network, bit strings, tsvector, ... (the text as it is)
	FamilyBool                      // ParseBool
	FamilyInt                       // int2, int4, int8 and oid (unsigned, 4 bytes: parse with bitSize 64): ParseInt
	FamilyFloat                     // float4, float8: ParseFloat
	FamilyNumeric                   // ParseNumeric
	FamilyText                      // text, varchar, bpchar, name, "char": the text is the value
	FamilyBytea                     // ParseBytea
	FamilyDate                      // ParseDateTime: a date
	FamilyTime                      // ParseDateTime: a time of day
	FamilyTimetz                    // ParseDateTime: a time of day with an offset
	FamilyTimestamp                 // ParseDateTime: date and time
	FamilyTimestamptz               // ParseDateTime: date, time and the session's offset
	FamilyInterval                  // ParseInterval
	FamilyUUID                      // ParseUUID
	FamilyJSON                      // json, jsonb: the text is the JSON document
	FamilyArray                     // ArrayReader; Type.Elem, Type.Delim
	FamilyRange                     // ParseRange; Type.Elem is the subtype
	FamilyMultirange                // ParseMultirange; Type.Elem is the range type
)

var familyNames = [...]string{
	FamilyOther: "other", FamilyBool: "bool", FamilyInt: "int", FamilyFloat: "float", FamilyNumeric: "numeric",
	FamilyText: "text", FamilyBytea: "bytea", FamilyDate: "date", FamilyTime: "time", FamilyTimetz: "timetz",
	FamilyTimestamp: "timestamp", FamilyTimestamptz: "timestamptz", FamilyInterval: "interval", FamilyUUID: "uuid",
	FamilyJSON: "json", FamilyArray: "array", FamilyRange: "range", FamilyMultirange: "multirange",
}

func (f Family) String() string {
	if int(f) < len(familyNames) {
		return familyNames[f]
	}
	return "family(" + strconv.Itoa(int(f)) + ")"
}

// Type is what is known of a built-in type.
type Type struct {
	OID    uint32
	Name   string // pg_type.typname; for arrays the element's name and "[]"
	Family Family
	Size   int    // FamilyInt and FamilyFloat: the width in bytes
	Elem   uint32 // arrays: the element type; ranges: the subtype; multiranges: the range type
	Delim  byte   // arrays: the element delimiter, ',' for all but box's ';'
}

// OIDs of built-in types that pgtype does not name.
const (
	moneyOID         = 790
	moneyArrayOID    = 791
	macaddr8ArrayOID = 775
	tsqueryOID       = 3615
	tsqueryArrayOID  = 3645
	pgLSNOID         = 3220
	pgLSNArrayOID    = 3221
)

// types are the built-in types by OID, each scalar with its array type.
// The OIDs come from PostgreSQL's bootstrap catalog, the same in every
// database and release (types_test.go checks them against pg_type).
var types = buildTypes()

func buildTypes() map[uint32]Type {
	scalars := []struct {
		array uint32
		t     Type
	}{
		{pgtype.BoolArrayOID, Type{OID: pgtype.BoolOID, Name: "bool", Family: FamilyBool}},
		{pgtype.ByteaArrayOID, Type{OID: pgtype.ByteaOID, Name: "bytea", Family: FamilyBytea}},
		{pgtype.QCharArrayOID, Type{OID: pgtype.QCharOID, Name: "char", Family: FamilyText}},
		{pgtype.NameArrayOID, Type{OID: pgtype.NameOID, Name: "name", Family: FamilyText}},
		{pgtype.Int8ArrayOID, Type{OID: pgtype.Int8OID, Name: "int8", Family: FamilyInt, Size: 8}},
		{pgtype.Int2ArrayOID, Type{OID: pgtype.Int2OID, Name: "int2", Family: FamilyInt, Size: 2}},
		{pgtype.Int4ArrayOID, Type{OID: pgtype.Int4OID, Name: "int4", Family: FamilyInt, Size: 4}},
		{pgtype.TextArrayOID, Type{OID: pgtype.TextOID, Name: "text", Family: FamilyText}},
		{pgtype.OIDArrayOID, Type{OID: pgtype.OIDOID, Name: "oid", Family: FamilyInt, Size: 4}},
		{pgtype.JSONArrayOID, Type{OID: pgtype.JSONOID, Name: "json", Family: FamilyJSON}},
		{pgtype.XMLArrayOID, Type{OID: pgtype.XMLOID, Name: "xml"}},
		{pgtype.PointArrayOID, Type{OID: pgtype.PointOID, Name: "point"}},
		{pgtype.LsegArrayOID, Type{OID: pgtype.LsegOID, Name: "lseg"}},
		{pgtype.PathArrayOID, Type{OID: pgtype.PathOID, Name: "path"}},
		{pgtype.BoxArrayOID, Type{OID: pgtype.BoxOID, Name: "box"}},
		{pgtype.PolygonArrayOID, Type{OID: pgtype.PolygonOID, Name: "polygon"}},
		{pgtype.LineArrayOID, Type{OID: pgtype.LineOID, Name: "line"}},
		{pgtype.CIDRArrayOID, Type{OID: pgtype.CIDROID, Name: "cidr"}},
		{pgtype.Float4ArrayOID, Type{OID: pgtype.Float4OID, Name: "float4", Family: FamilyFloat, Size: 4}},
		{pgtype.Float8ArrayOID, Type{OID: pgtype.Float8OID, Name: "float8", Family: FamilyFloat, Size: 8}},
		{pgtype.CircleArrayOID, Type{OID: pgtype.CircleOID, Name: "circle"}},
		{macaddr8ArrayOID, Type{OID: pgtype.Macaddr8OID, Name: "macaddr8"}},
		{moneyArrayOID, Type{OID: moneyOID, Name: "money"}},
		{pgtype.MacaddrArrayOID, Type{OID: pgtype.MacaddrOID, Name: "macaddr"}},
		{pgtype.InetArrayOID, Type{OID: pgtype.InetOID, Name: "inet"}},
		{pgtype.BPCharArrayOID, Type{OID: pgtype.BPCharOID, Name: "bpchar", Family: FamilyText}},
		{pgtype.VarcharArrayOID, Type{OID: pgtype.VarcharOID, Name: "varchar", Family: FamilyText}},
		{pgtype.DateArrayOID, Type{OID: pgtype.DateOID, Name: "date", Family: FamilyDate}},
		{pgtype.TimeArrayOID, Type{OID: pgtype.TimeOID, Name: "time", Family: FamilyTime}},
		{pgtype.TimestampArrayOID, Type{OID: pgtype.TimestampOID, Name: "timestamp", Family: FamilyTimestamp}},
		{pgtype.TimestamptzArrayOID, Type{OID: pgtype.TimestamptzOID, Name: "timestamptz", Family: FamilyTimestamptz}},
		{pgtype.IntervalArrayOID, Type{OID: pgtype.IntervalOID, Name: "interval", Family: FamilyInterval}},
		{pgtype.TimetzArrayOID, Type{OID: pgtype.TimetzOID, Name: "timetz", Family: FamilyTimetz}},
		{pgtype.BitArrayOID, Type{OID: pgtype.BitOID, Name: "bit"}},
		{pgtype.VarbitArrayOID, Type{OID: pgtype.VarbitOID, Name: "varbit"}},
		{pgtype.NumericArrayOID, Type{OID: pgtype.NumericOID, Name: "numeric", Family: FamilyNumeric}},
		{pgtype.UUIDArrayOID, Type{OID: pgtype.UUIDOID, Name: "uuid", Family: FamilyUUID}},
		{pgLSNArrayOID, Type{OID: pgLSNOID, Name: "pg_lsn"}},
		{pgtype.TSVectorArrayOID, Type{OID: pgtype.TSVectorOID, Name: "tsvector"}},
		{tsqueryArrayOID, Type{OID: tsqueryOID, Name: "tsquery"}},
		{pgtype.JSONBArrayOID, Type{OID: pgtype.JSONBOID, Name: "jsonb", Family: FamilyJSON}},
		{pgtype.JSONPathArrayOID, Type{OID: pgtype.JSONPathOID, Name: "jsonpath"}},
		{pgtype.Int4rangeArrayOID, Type{OID: pgtype.Int4rangeOID, Name: "int4range", Family: FamilyRange, Elem: pgtype.Int4OID}},
		{pgtype.NumrangeArrayOID, Type{OID: pgtype.NumrangeOID, Name: "numrange", Family: FamilyRange, Elem: pgtype.NumericOID}},
		{pgtype.TsrangeArrayOID, Type{OID: pgtype.TsrangeOID, Name: "tsrange", Family: FamilyRange, Elem: pgtype.TimestampOID}},
		{pgtype.TstzrangeArrayOID, Type{OID: pgtype.TstzrangeOID, Name: "tstzrange", Family: FamilyRange, Elem: pgtype.TimestamptzOID}},
		{pgtype.DaterangeArrayOID, Type{OID: pgtype.DaterangeOID, Name: "daterange", Family: FamilyRange, Elem: pgtype.DateOID}},
		{pgtype.Int8rangeArrayOID, Type{OID: pgtype.Int8rangeOID, Name: "int8range", Family: FamilyRange, Elem: pgtype.Int8OID}},
		{pgtype.Int4multirangeArrayOID, Type{OID: pgtype.Int4multirangeOID, Name: "int4multirange", Family: FamilyMultirange, Elem: pgtype.Int4rangeOID}},
		{pgtype.NummultirangeArrayOID, Type{OID: pgtype.NummultirangeOID, Name: "nummultirange", Family: FamilyMultirange, Elem: pgtype.NumrangeOID}},
		{pgtype.TsmultirangeArrayOID, Type{OID: pgtype.TsmultirangeOID, Name: "tsmultirange", Family: FamilyMultirange, Elem: pgtype.TsrangeOID}},
		{pgtype.TstzmultirangeArrayOID, Type{OID: pgtype.TstzmultirangeOID, Name: "tstzmultirange", Family: FamilyMultirange, Elem: pgtype.TstzrangeOID}},
		{pgtype.DatemultirangeArrayOID, Type{OID: pgtype.DatemultirangeOID, Name: "datemultirange", Family: FamilyMultirange, Elem: pgtype.DaterangeOID}},
		{pgtype.Int8multirangeArrayOID, Type{OID: pgtype.Int8multirangeOID, Name: "int8multirange", Family: FamilyMultirange, Elem: pgtype.Int8rangeOID}},
	}
	m := make(map[uint32]Type, 2*len(scalars))
	for _, s := range scalars {
		m[s.t.OID] = s.t
		delim := byte(',')
		if s.t.OID == pgtype.BoxOID {
			delim = ';' // a box's text has commas
		}
		m[s.array] = Type{OID: s.array, Name: s.t.Name + "[]", Family: FamilyArray, Elem: s.t.OID, Delim: delim}
	}
	return m
}

// Lookup returns the built-in type oid names; ok is false for any other
// OID (a type created in the database, or a built-in type this package
// does not list).
func Lookup(oid uint32) (t Type, ok bool) {
	t, ok = types[oid]
	return t, ok
}

// TypeName names a column's type for people and consumers: pg_type's name
// with the type modifier as format_type prints it ("varchar(10)",
// "numeric(12,2)", "timestamptz(3)", "interval year to month", "int4[]"),
// or "oid:N" for a type only the source database can name (enums,
// domains, composites, extensions). typmod is pg_attribute.atttypmod, -1
// for none; an array column's typmod is its element's.
func TypeName(oid uint32, typmod int32) string {
	t, ok := types[oid]
	if !ok {
		return "oid:" + strconv.FormatUint(uint64(oid), 10)
	}
	if t.Family == FamilyArray {
		return TypeName(t.Elem, typmod) + "[]"
	}
	if typmod < 0 {
		return t.Name
	}
	switch oid {
	case pgtype.VarcharOID, pgtype.BPCharOID:
		if typmod >= 4 {
			return t.Name + "(" + strconv.Itoa(int(typmod-4)) + ")"
		}
	case pgtype.NumericOID:
		if p, s, ok := NumericTypmod(typmod); ok {
			return t.Name + "(" + strconv.Itoa(p) + "," + strconv.Itoa(s) + ")"
		}
	case pgtype.IntervalOID:
		return t.Name + intervalTypmod(typmod)
	case pgtype.BitOID, pgtype.VarbitOID, pgtype.TimeOID, pgtype.TimetzOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return t.Name + "(" + strconv.Itoa(int(typmod)) + ")"
	}
	return t.Name
}

// NumericTypmod decodes numeric(precision, scale) from a type modifier;
// ok is false for an unconstrained numeric (typmod -1). The scale may be
// negative (-1000 to 1000, PostgreSQL 15) or above the precision.
func NumericTypmod(typmod int32) (precision, scale int, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	t := typmod - 4
	// The scale is an 11-bit two's complement number in the low bits.
	return int(t>>16) & 0xffff, int((t&0x7ff)^1024) - 1024, true
}

// intervalFields are the field restrictions of interval's type modifier
// (its high 16 bits, a mask of the datetime.h field bits), as
// intervaltypmodout prints them.
var intervalFields = map[int32]string{
	1 << 2:                       "year",
	1 << 1:                       "month",
	1 << 3:                       "day",
	1 << 10:                      "hour",
	1 << 11:                      "minute",
	1 << 12:                      "second",
	1<<2 | 1<<1:                  "year to month",
	1<<3 | 1<<10:                 "day to hour",
	1<<3 | 1<<10 | 1<<11:         "day to minute",
	1<<3 | 1<<10 | 1<<11 | 1<<12: "day to second",
	1<<10 | 1<<11:                "hour to minute",
	1<<10 | 1<<11 | 1<<12:        "hour to second",
	1<<11 | 1<<12:                "minute to second",
	0x7fff:                       "", // every field: no restriction
}

// intervalTypmod is the modifier of interval(p) or interval fields(p):
// " year to month", "(3)", " day to second(3)".
func intervalTypmod(typmod int32) string {
	var s string
	if f := intervalFields[typmod>>16&0x7fff]; f != "" {
		s = " " + f
	}
	if p := typmod & 0xffff; p != 0xffff { // 0xffff: full precision
		s += "(" + strconv.Itoa(int(p)) + ")"
	}
	return s
}

// SyntaxError reports text that is not the text form of the type it was
// parsed as.
type SyntaxError struct {
	Type string // what the text was parsed as: "int", "array", "COPY text row"...
	Text string // the text, cut to 100 bytes
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	return "pgvalue: invalid " + e.Type + " " + strconv.Quote(e.Text) + ": " + e.Msg
}

// syntaxError builds a *SyntaxError; only failures pay for the copy of
// the text.
func syntaxError[T string | []byte](typ string, text T, msg string) error {
	const max = 100
	s := string(text[:min(len(text), max)])
	if len(text) > max {
		s += "..."
	}
	return &SyntaxError{Type: typ, Text: s, Msg: msg}
}
