package rowside

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Values come from a destination decoded into Go: nil (NULL), Unknown,
// bool, the integer and float types, json.Number (a number as written),
// string, []byte, time.Time, json.RawMessage (a JSON document), [16]byte
// (a uuid) and what encoding/json decodes into any ([]any,
// map[string]any). A string is the value's PostgreSQL text form, or the
// form the Kafka sink's JSON gives it (timestamptz in RFC 3339, bytea in
// base64, timestamp with a T). Text turns each into exactly the text
// pgverify's SQL computes for the source column (pgverify.canonical).

// Unknown stands for a value the destination does not know: an unchanged
// TOAST value a change did not carry. It equals no source value.
var Unknown any = unknownValue{}

type unknownValue struct{}

// unknownText is Unknown's canonical text: PostgreSQL text holds no NUL,
// so no source value reads the same.
const unknownText = "\x00unknown"

// Text is the canonical text of v, the value of a column whose source
// type is typ (proto.VerifyTable.Types): nil for NULL. A value that is
// not of its type's form keeps a text of its own, which differs from the
// source's: a difference to report, not an error.
func Text(typ string, v any) *string {
	canon, _ := texts(typ, v)
	return canon
}

// texts is v's canonical text and its text as an item of the row's
// record: they differ only for bool, whose record holds its output (t/f)
// where the canonical text is its cast to text (true/false).
func texts(typ string, v any) (canon, item *string) {
	if v == nil {
		return nil, nil
	}
	if _, ok := v.(unknownValue); ok {
		s := unknownText
		return &s, &s
	}
	var s string
	switch family(typ) {
	case famInt:
		s = intText(v)
	case famBool:
		b, ok := boolOf(v)
		if !ok {
			s = plainText(v)
			return &s, &s
		}
		c, i := "false", "f"
		if b {
			c, i = "true", "t"
		}
		return &c, &i
	case famBpchar:
		// bpchar::text drops the padding.
		s = strings.TrimRight(plainText(v), " ")
	case famUUID:
		s = uuidText(v)
	case famNumeric:
		s = numericText(v, true)
	case famFloat4:
		s = floatText(v, 32)
	case famFloat8:
		s = floatText(v, 64)
	case famTimestamptz:
		s = timestampText(v, true)
	case famTimestamp:
		s = timestampText(v, false)
	case famJSON:
		s = jsonbText(v)
	case famBytea:
		s = byteaText(v)
	case famArray:
		s = arrayText(strings.TrimSuffix(typ, "[]"), v)
	default:
		s = plainText(v)
	}
	return &s, &s
}

// typeFamily groups source types by how their canonical text is made.
type typeFamily int

const (
	famOther typeFamily = iota // col::text: the text form as it is
	famInt
	famBool
	famBpchar
	famUUID
	famNumeric
	famFloat4
	famFloat8
	famTimestamptz
	famTimestamp // timestamp and date
	famJSON
	famBytea
	famArray
)

// family is the family of a base type name (pg_type.typname; an array
// as its element's name and "[]", or "array").
func family(typ string) typeFamily {
	switch typ {
	case "int2", "int4", "int8", "oid":
		return famInt
	case "bool":
		return famBool
	case "bpchar":
		return famBpchar
	case "uuid":
		return famUUID
	case "numeric":
		return famNumeric
	case "float4":
		return famFloat4
	case "float8":
		return famFloat8
	case "timestamptz":
		return famTimestamptz
	case "timestamp", "date":
		return famTimestamp
	case "json", "jsonb":
		return famJSON
	case "bytea":
		return famBytea
	case "array":
		return famArray
	}
	if strings.HasSuffix(typ, "[]") {
		return famArray
	}
	return famOther
}

// plainText is v as text: a string as it is, a number in decimal.
func plainText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case json.Number:
		return string(x)
	case json.RawMessage:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	if i, ok := integer(v); ok {
		return strconv.FormatInt(i, 10)
	}
	return fmt.Sprint(v)
}

// integer is v as an int64 when it is of a Go integer type.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// intText is an integer in decimal, as int8out prints it.
func intText(v any) string {
	if i, ok := integer(v); ok {
		return strconv.FormatInt(i, 10)
	}
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10)
	}
	s := plainText(v)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil { // an oid above 2^31 written unsigned
		return strconv.FormatUint(u, 10)
	}
	return s
}

func boolOf(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string, json.Number, []byte:
		switch strings.ToLower(plainText(x)) {
		case "t", "true", "1":
			return true, true
		case "f", "false", "0":
			return false, true
		}
	}
	if i, ok := integer(v); ok && (i == 0 || i == 1) {
		return i == 1, true
	}
	return false, false
}

// uuidText is a uuid as uuid_out prints it: lower-case hex in groups of
// 8-4-4-4-12.
func uuidText(v any) string {
	var raw []byte
	switch x := v.(type) {
	case [16]byte:
		raw = x[:]
	default:
		s := plainText(v)
		digits := strings.NewReplacer("-", "", "{", "", "}", "").Replace(s)
		b, err := hex.DecodeString(digits)
		if err != nil || len(b) != 16 {
			return s
		}
		raw = b
	}
	h := hex.EncodeToString(raw)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// JSONValue is a value as JSON carries it (the Kafka sink's Debezium and
// Canal messages, values.go there) for a column of source type typ: a
// json or jsonb column's document, or a JSON array, stays raw (a json
// value keeps the text it was written with); a string, number or boolean
// is decoded (a number keeps its digits); null is NULL.
func JSONValue(typ string, raw json.RawMessage) any {
	t := strings.TrimSpace(string(raw))
	switch {
	case t == "null":
		return nil
	case family(typ) == famJSON:
		return raw
	case t == "true" || t == "false":
		return t == "true"
	case strings.HasPrefix(t, `"`):
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{"):
		return raw
	case t != "":
		return json.Number(t)
	}
	return raw
}
