package kafka

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicedb/sluice/apply/sinktest"
)

// canonical turns a value of a Debezium message back into the suite's
// canonical form (sinktest.Row), by the mapping the README and values.go
// document, written out here again rather than taken from values.go's
// tables, so that a value written otherwise than documented fails:
// booleans are true/false, integers exact numbers, floats numbers or the
// strings NaN and ±Infinity, numeric an exact string, bytea base64,
// timestamptz RFC 3339 in UTC, json and jsonb the document itself, arrays
// of built-in types JSON arrays; every other type is its text form as a
// string. Debezium's placeholder for an unchanged TOAST value stands for
// itself whatever the type.
func canonical(oid uint32, raw json.RawMessage) (string, error) {
	if string(raw) == "null" {
		return sinktest.Null, nil
	}
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	if isString && s == toastPlaceholder {
		return s, nil
	}
	bad := func() (string, error) { return "", fmt.Errorf("type %d written as %s, not as documented", oid, raw) }
	switch oid {
	case pgtype.BoolOID:
		switch string(raw) {
		case "true":
			return "t", nil
		case "false":
			return "f", nil
		}
		return bad()
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		if isString || !json.Valid(raw) {
			return bad()
		}
		return string(raw), nil
	case pgtype.Float4OID, pgtype.Float8OID:
		switch {
		case !isString:
			return string(raw), nil
		case s == "NaN" || s == "Infinity" || s == "-Infinity":
			return s, nil
		}
		return bad()
	case pgtype.JSONOID, pgtype.JSONBOID:
		return string(raw), nil // embedded as PostgreSQL printed it
	case pgtype.Int4ArrayOID, pgtype.TextArrayOID:
		return pgArray(map[uint32]uint32{pgtype.Int4ArrayOID: pgtype.Int4OID, pgtype.TextArrayOID: pgtype.TextOID}[oid], raw)
	}
	if !isString {
		return bad()
	}
	switch oid {
	case pgtype.ByteaOID:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return bad()
		}
		return `\x` + hex.EncodeToString(b), nil
	case pgtype.TimestamptzOID:
		// "2024-05-01T10:00:00.5Z" is PostgreSQL's "2024-05-01 10:00:00.5+00".
		if len(s) > 20 && s[10] == 'T' && strings.HasSuffix(s, "Z") {
			return s[:10] + " " + s[11:len(s)-1] + "+00", nil
		}
	}
	return s, nil
}

// pgArray is PostgreSQL's output of a JSON array of elem values: braces
// per dimension, elements separated by commas.
func pgArray(elem uint32, raw json.RawMessage) (string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return "", fmt.Errorf("array written as %s, not as a JSON array", raw)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, item := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := pgElement(elem, item)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	b.WriteByte('}')
	return b.String(), nil
}

// pgElement is an array element as array_out prints it: a nested array,
// NULL, or the value, quoted when it is empty, reads as NULL, or holds a
// delimiter, brace, quote, backslash or white space.
func pgElement(elem uint32, item json.RawMessage) (string, error) {
	if strings.HasPrefix(string(item), "[") {
		return pgArray(elem, item)
	}
	v, err := canonical(elem, item)
	switch {
	case err != nil:
		return "", err
	case v == sinktest.Null:
		return "NULL", nil
	case v == "" || strings.EqualFold(v, "NULL") || strings.ContainsAny(v, "{},\"\\ \t\n\r\v\f"):
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`, nil
	}
	return v, nil
}
