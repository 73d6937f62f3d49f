package rowside

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// jsonbText is a json or jsonb value as col::jsonb::text prints it:
// object keys ordered by length, then bytes (jsonb's order), the last of
// duplicate keys kept, ": " and ", " between, numbers as numeric prints
// them, strings escaped as escape_json does. v is the document's text
// (json.RawMessage, string, []byte) or a decoded document.
func jsonbText(v any) string {
	doc, ok := jsonDocument(v)
	if !ok {
		return plainText(v)
	}
	var b strings.Builder
	appendJSONB(&b, doc)
	return b.String()
}

// JSONBText prints a JSON document as PostgreSQL prints it as jsonb;
// ok is false when doc is not one JSON document.
func JSONBText(doc string) (text string, ok bool) {
	v, ok := jsonDocument(doc)
	if !ok {
		return doc, false
	}
	var b strings.Builder
	appendJSONB(&b, v)
	return b.String(), true
}

// jsonDocument decodes v into a document whose numbers keep their text.
func jsonDocument(v any) (any, bool) {
	var text []byte
	switch x := v.(type) {
	case json.RawMessage:
		text = x
	case []byte:
		text = x
	case string:
		text = []byte(x)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, false
		}
		text = b
	}
	d := json.NewDecoder(bytes.NewReader(text))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil || d.More() {
		return nil, false
	}
	return doc, true
}

func appendJSONB(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		fmt.Fprint(b, x)
	case json.Number:
		b.WriteString(jsonNumber(x))
	case string:
		appendJSONString(b, x)
	case []any:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			appendJSONB(b, item)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, jsonbKeyOrder)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			appendJSONString(b, k)
			b.WriteString(": ")
			appendJSONB(b, x[k])
		}
		b.WriteByte('}')
	}
}

// jsonbKeyOrder is the order jsonb keeps an object's keys in: shorter
// first, then by bytes.
func jsonbKeyOrder(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// appendJSONString writes s as escape_json does: the two-character
// escapes for \b \f \n \r \t " and \, \u00XX for the other control
// characters, everything else as it is.
func appendJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if c < ' ' {
				fmt.Fprintf(b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}
