package doris

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/apply/pgvalue"
)

// Doris's limits that the type mapping honours.
const (
	maxVarchar        = 65533 // bytes
	maxDecimalDigits  = 38
	defaultDatetimeFS = 6
)

// PostgreSQL type OIDs the mapping names.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidMoney       = 790
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidInterval    = 1186
	oidTimetz      = 1266
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// dorisType is the Doris type of a PostgreSQL column, by the guide's
// table: integers keep their width, REAL and DOUBLE become DOUBLE,
// NUMERIC(p,s) DECIMAL(p,s) up to 38 digits, CHAR(n)/VARCHAR(n)
// VARCHAR(4n) (characters of up to 4 bytes) while that fits 65533 bytes,
// VARCHAR without a length VARCHAR(65533), timestamps DATETIMEV2 with
// their fraction digits, DATE DATEV2, JSON and JSONB JSON, and every other
// type (TEXT, MONEY, BYTEA, TIME, INTERVAL, UUID, geometric, network,
// bit strings, XML, TSVECTOR, arrays, ranges, enums) STRING holding
// PostgreSQL's text form. A key column cannot be STRING in Doris: it gets
// VARCHAR(65533) (a UUID VARCHAR(36)). lossy says when a value may lose
// its meaning (the precheck warns).
func dorisType(oid uint32, pgType string, key bool) (typ string, lossy string) {
	switch oid {
	case oidBool:
		return "BOOLEAN", ""
	case oidInt2:
		return "SMALLINT", ""
	case oidInt4:
		return "INT", ""
	case oidInt8:
		return "BIGINT", ""
	case oidFloat4, oidFloat8:
		return "DOUBLE", ""
	case oidNumeric:
		if p, s, ok := typmodArgs(pgType); ok && p <= maxDecimalDigits {
			return fmt.Sprintf("DECIMAL(%d, %d)", p, s), "NaN and infinities load as NULL"
		}
		return stringType(key), ""
	case oidBpchar, oidVarchar:
		if n, _, ok := typmodArgs(pgType); ok {
			if 4*n <= maxVarchar {
				return fmt.Sprintf("VARCHAR(%d)", 4*n), ""
			}
			return stringType(key), ""
		}
		if oid == oidBpchar {
			return "VARCHAR(4)", "" // character without a length is character(1)
		}
		return fmt.Sprintf("VARCHAR(%d)", maxVarchar), ""
	case oidDate:
		return "DATEV2", "infinity and -infinity load as 9999-12-31 and 0000-01-01; dates BC as NULL"
	case oidTimestamp, oidTimestamptz:
		p := defaultDatetimeFS
		if n, _, ok := typmodArgs(pgType); ok && n < p {
			p = n
		}
		lossy := "infinity and -infinity load as 9999-12-31 23:59:59.999999 and 0000-01-01 00:00:00; years outside 1..9999 as NULL"
		if oid == oidTimestamptz {
			lossy = "loads as a UTC DATETIMEV2 (the time zone is not kept); " + lossy
		}
		return fmt.Sprintf("DATETIMEV2(%d)", p), lossy
	case oidJSON, oidJSONB:
		if key {
			return stringType(key), ""
		}
		return "JSON", "Doris keeps a JSON document's meaning, not its spacing or key order"
	case oidUUID:
		if key {
			return "VARCHAR(36)", ""
		}
	}
	return stringType(key), ""
}

func stringType(key bool) string {
	if key {
		return fmt.Sprintf("VARCHAR(%d)", maxVarchar)
	}
	return "STRING"
}

// typmodArgs reads the modifiers of a type as format_type prints it:
// "numeric(12,2)" → 12, 2; "character varying(8)" → 8, 0;
// "timestamp(3) with time zone" → 3, 0.
func typmodArgs(pgType string) (a, b int, ok bool) {
	open := strings.IndexByte(pgType, '(')
	end := strings.IndexByte(pgType, ')')
	if open < 0 || end < open {
		return 0, 0, false
	}
	first, second, two := strings.Cut(pgType[open+1:end], ",")
	a, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, 0, false
	}
	if two {
		if b, err = strconv.Atoi(strings.TrimSpace(second)); err != nil {
			return 0, 0, false
		}
	}
	return a, b, true
}

// keyable: Doris takes a column of this type into a key.
func keyable(dorisTyp string) bool {
	t := strings.ToUpper(dorisTyp)
	for _, no := range []string{"STRING", "TEXT", "JSON", "DOUBLE", "FLOAT", "ARRAY", "MAP", "STRUCT", "VARIANT", "HLL", "BITMAP"} {
		if strings.HasPrefix(t, no) {
			return false
		}
	}
	return true
}

// valueKind is how a value is written to a column of a Doris type.
type valueKind uint8

const (
	asText valueKind = iota
	asBool
	asDate
	asDatetime
	asDecimal
	asJSON
)

func kindOf(dorisTyp string) valueKind {
	t := strings.ToUpper(dorisTyp)
	switch {
	case t == "BOOLEAN" || t == "BOOL":
		return asBool
	case strings.HasPrefix(t, "DATETIME"):
		return asDatetime
	case strings.HasPrefix(t, "DATE"):
		return asDate
	case strings.HasPrefix(t, "DECIMAL"):
		return asDecimal
	case t == "JSON" || t == "JSONB":
		return asJSON
	}
	return asText
}

// convert turns a value in PostgreSQL's text form into what Doris loads
// into a column of kind k; null reports a value Doris cannot hold (it
// loads as NULL; the precheck warned).
func convert(k valueKind, prec int, v []byte) (out []byte, null bool) {
	switch k {
	case asBool:
		if len(v) > 0 && (v[0] == 't' || v[0] == 'T' || v[0] == '1') {
			return []byte("1"), false
		}
		return []byte("0"), false
	case asDecimal:
		switch string(v) {
		case "NaN", "Infinity", "-Infinity":
			return nil, true
		}
	case asDatetime:
		return convertDateTime(k, prec, v)
	case asDate:
		return convertDateTime(k, 0, v)
	}
	return v, false
}

// datetimePrecision is the fraction digits of a DATETIME[V2](p) type
// (6 when it does not say).
func datetimePrecision(dorisTyp string) int {
	if p, _, ok := typmodArgs(dorisTyp); ok && p >= 0 && p <= 6 {
		return p
	}
	if strings.Contains(dorisTyp, "(") {
		return defaultDatetimeFS
	}
	return 0 // DATETIME without a precision holds whole seconds
}

// convertDateTime writes a date or timestamp for Doris: in UTC, infinity
// as the last instant the column holds at its precision (a rounded
// 23:59:59.999999 would be the year 10000), -infinity as the first.
func convertDateTime(k valueKind, prec int, v []byte) ([]byte, bool) {
	dt, err := pgvalue.ParseDateTime(v)
	if err != nil {
		return nil, true
	}
	switch dt.Special {
	case pgvalue.PosInfinity:
		if k == asDate {
			return []byte("9999-12-31"), false
		}
		out := []byte("9999-12-31 23:59:59")
		if prec > 0 {
			out = append(append(out, '.'), strings.Repeat("9", prec)...)
		}
		return out, false
	case pgvalue.NegInfinity:
		if k == asDate {
			return []byte("0000-01-01"), false
		}
		return []byte("0000-01-01 00:00:00"), false
	}
	dt = dt.UTC()
	if dt.Year < 1 || dt.Year > 9999 {
		return nil, true
	}
	// PostgreSQL's ISO form without the offset (now UTC) is Doris's.
	dt.HasOffset = false
	if k == asDate {
		dt.HasTime = false
	}
	return pgvalue.AppendDateTime(nil, dt), false
}
