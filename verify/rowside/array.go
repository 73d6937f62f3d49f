package rowside

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/sluicedb/sluice/apply/pgvalue"
)

// byteaText is a bytea in hex output: \x and two lower-case digits a
// byte. v is the bytes, or text: hex output (\x...), base64 (as the Kafka
// sink's JSON carries bytea; its alphabet has no backslash) or escape
// output.
func byteaText(v any) string {
	if b, ok := v.([]byte); ok {
		return `\x` + hex.EncodeToString(b)
	}
	s := plainText(v)
	if rest, ok := strings.CutPrefix(s, `\x`); ok {
		if b, err := hex.DecodeString(rest); err == nil {
			return `\x` + hex.EncodeToString(b)
		}
		return s
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return `\x` + hex.EncodeToString(b)
	}
	if b, err := pgvalue.ParseBytea(nil, []byte(s)); err == nil {
		return `\x` + hex.EncodeToString(b)
	}
	return s
}

// arrayText is an array as array_out prints it with pgverify's settings:
// {1,2}, {{a,b},{c,d}}, NULL elements as NULL, an element quoted when
// it is empty, reads as NULL, or holds a brace, the delimiter, a quote,
// a backslash or white space. elem is the element's base type ("array":
// not known; elements are then printed as their JSON says). v is a JSON
// array (json.RawMessage, []any; elements as the Kafka sink's JSON gives
// them), or the array's text form, kept as it is.
func arrayText(elem string, v any) string {
	items, ok := arrayItems(v)
	if !ok {
		return plainText(v)
	}
	delim := byte(',')
	if elem == "box" {
		delim = ';' // a box's text has commas
	}
	var b strings.Builder
	appendArray(&b, elem, delim, items)
	return b.String()
}

// isDimension reports whether items, the elements of one level of a
// JSON array, are the sub-arrays of a dimension. For json and jsonb
// elements a JSON array may be an element too: the level is then a
// dimension only when it could be one at all (a PostgreSQL array is
// rectangular: every sub-array non-empty, of one length).
func isDimension(elem string, items []any) bool {
	if len(items) == 0 {
		return false
	}
	width := -1
	for _, item := range items {
		nested, ok := nestedArray(item)
		if !ok {
			return false
		}
		if family(elem) != famJSON {
			continue
		}
		if len(nested) == 0 || width >= 0 && len(nested) != width {
			return false
		}
		width = len(nested)
	}
	return true
}

// arrayItems is v's elements when v is a JSON array. Elements of JSON
// text stay raw, so a json element keeps the text it was written with.
func arrayItems(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case json.RawMessage, []byte, string:
		text := bytes.TrimSpace([]byte(plainText(x)))
		if len(text) == 0 || text[0] != '[' {
			return nil, false
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(text, &raw); err != nil {
			return nil, false // "[0:1]={1,2}": the text form of an array with other bounds
		}
		out := make([]any, len(raw))
		for i, r := range raw {
			out[i] = r
		}
		return out, true
	}
	return nil, false
}

func appendArray(b *strings.Builder, elem string, delim byte, items []any) {
	b.WriteByte('{')
	dimension := isDimension(elem, items)
	for i, item := range items {
		if i > 0 {
			b.WriteByte(delim)
		}
		if dimension {
			nested, _ := nestedArray(item)
			appendArray(b, elem, delim, nested)
			continue
		}
		text, null := elementText(elem, item)
		if null {
			b.WriteString("NULL")
			continue
		}
		if text == "" || strings.EqualFold(text, "NULL") || strings.ContainsAny(text, "{}\"\\ \t\n\r\v\f"+string(delim)) {
			b.WriteByte('"')
			for j := 0; j < len(text); j++ {
				if text[j] == '"' || text[j] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(text[j])
			}
			b.WriteByte('"')
			continue
		}
		b.WriteString(text)
	}
	b.WriteByte('}')
}

// nestedArray is an item's elements when the item is itself an array (a
// dimension of a multidimensional array).
func nestedArray(item any) ([]any, bool) {
	switch x := item.(type) {
	case []any:
		return x, true
	case json.RawMessage:
		if t := bytes.TrimSpace(x); len(t) > 0 && t[0] == '[' {
			return arrayItems(x)
		}
	}
	return nil, false
}

// elementText is an element's output text (its type's output function,
// not the canonical form); null for NULL.
func elementText(elem string, item any) (text string, null bool) {
	v := item
	if raw, ok := item.(json.RawMessage); ok {
		if elem == "json" {
			return string(raw), false // json keeps the text it was given
		}
		decoded, ok := jsonScalar(raw)
		if !ok {
			return string(raw), false // an object: a json or jsonb element of an array of unknown type
		}
		v = decoded
	}
	if v == nil {
		return "", true
	}
	switch family(elem) {
	case famInt:
		return intText(v), false
	case famBool:
		if b, ok := boolOf(v); ok {
			if b {
				return "t", false
			}
			return "f", false
		}
	case famNumeric:
		return numericText(v, false), false
	case famFloat4:
		return floatText(v, 32), false
	case famFloat8:
		return floatText(v, 64), false
	case famUUID:
		return uuidText(v), false
	case famBytea:
		return byteaText(v), false
	case famTimestamptz, famTimestamp:
		if out, ok := dateTimeOutput(v, elem); ok {
			return out, false
		}
	case famJSON:
		return jsonbText(item), false
	case famOther, famBpchar, famArray:
		if b, ok := v.(bool); ok && elem == "array" {
			// An element of unknown type written as a JSON boolean is a
			// bool.
			if b {
				return "t", false
			}
			return "f", false
		}
	}
	return plainText(v), false
}

// jsonScalar decodes a JSON scalar (a number keeps its text); ok is
// false for an object or an array.
func jsonScalar(raw json.RawMessage) (any, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] == '{' || t[0] == '[' {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(t))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}
