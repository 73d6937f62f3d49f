package emu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// record is one row of loaded data: a value (nil for NULL) per load
// column, the source text for the error log, or why it could not be read.
type record struct {
	vals []*string
	src  string
	bad  string
}

// readCSV splits a body into records. Without an enclose character
// fields are taken as is (no escapes), as Doris does; \N is NULL.
// Empty lines are skipped.
func readCSV(body []byte, s *loadSpec) []record {
	var out []record
	add := func(fields []*string, src string) {
		r := record{src: src}
		switch {
		case len(fields) < len(s.loadCols):
			r.bad = fmt.Sprintf("actual column number in csv file is less than schema column number.actual number: %d, schema column number: %d", len(fields), len(s.loadCols))
		case len(fields) > len(s.loadCols):
			r.bad = fmt.Sprintf("actual column number in csv file is more than schema column number.actual number: %d, schema column number: %d", len(fields), len(s.loadCols))
		default:
			r.vals = fields
		}
		out = append(out, r)
	}
	if s.enclose == 0 {
		for _, line := range strings.Split(string(body), s.lineSep) {
			if line == "" {
				continue
			}
			parts := strings.Split(line, s.colSep)
			fields := make([]*string, len(parts))
			for i, p := range parts {
				if s.trimQuotes && len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
					p = p[1 : len(p)-1]
				}
				if p != `\N` {
					v := p
					fields[i] = &v
				}
			}
			add(fields, line)
		}
		return out
	}
	// With enclose, a field may hold separators and line delimiters; the
	// escape character makes the next byte literal.
	text := string(body)
	i := 0
	for i < len(text) {
		start := i
		var fields []*string
		for {
			var b strings.Builder
			quoted := false
			if i < len(text) && text[i] == s.enclose {
				quoted = true
				i++
				for i < len(text) {
					c := text[i]
					if s.escape != 0 && c == s.escape && i+1 < len(text) {
						b.WriteByte(text[i+1])
						i += 2
						continue
					}
					if c == s.enclose {
						if i+1 < len(text) && text[i+1] == s.enclose {
							b.WriteByte(c)
							i += 2
							continue
						}
						i++
						break
					}
					b.WriteByte(c)
					i++
				}
			}
			for i < len(text) && !strings.HasPrefix(text[i:], s.colSep) && !strings.HasPrefix(text[i:], s.lineSep) {
				b.WriteByte(text[i])
				i++
			}
			v := b.String()
			if !quoted && v == `\N` {
				fields = append(fields, nil)
			} else {
				fields = append(fields, &v)
			}
			if i < len(text) && strings.HasPrefix(text[i:], s.colSep) {
				i += len(s.colSep)
				continue
			}
			break
		}
		src := text[start:i]
		if strings.HasPrefix(text[i:], s.lineSep) {
			i += len(s.lineSep)
		}
		if src == "" {
			continue
		}
		add(fields, src)
	}
	return out
}

// readJSON reads one object, an outer array of objects
// (strip_outer_array) or one object per line (read_json_by_line), taking
// load columns by name. Numbers keep their text; objects and arrays become
// compact JSON text.
func readJSON(body []byte, s *loadSpec) ([]record, error) {
	var objs []json.RawMessage
	switch {
	case s.jsonByLine:
		for _, line := range bytes.Split(body, []byte(s.lineSep)) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if s.stripOuterArray {
				var arr []json.RawMessage
				if err := json.Unmarshal(line, &arr); err != nil {
					objs = append(objs, line)
					continue
				}
				objs = append(objs, arr...)
				continue
			}
			objs = append(objs, json.RawMessage(line))
		}
	case s.stripOuterArray:
		if err := json.Unmarshal(body, &objs); err != nil {
			return nil, fmt.Errorf("[DATA_QUALITY_ERROR]JSON data is array-object, `strip_outer_array` must be TRUE and the data must be a JSON array: %v", err)
		}
	default:
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) > 0 && trimmed[0] == '[' {
			return nil, fmt.Errorf("[DATA_QUALITY_ERROR]JSON data is array-object, `strip_outer_array` must be TRUE.")
		}
		if len(trimmed) > 0 {
			objs = append(objs, trimmed)
		}
	}
	out := make([]record, 0, len(objs))
	for _, raw := range objs {
		out = append(out, jsonRecord(raw, s))
	}
	return out, nil
}

func jsonRecord(raw json.RawMessage, s *loadSpec) record {
	r := record{src: string(raw)}
	// Values stay raw so nested objects keep their key order and numbers
	// their text.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		r.bad = "Parse json data failed: not a JSON object"
		return r
	}
	r.vals = make([]*string, len(s.loadCols))
	for i, name := range s.loadCols {
		v, ok := obj[name]
		if !ok {
			for k, kv := range obj {
				if strings.EqualFold(k, name) {
					v, ok = kv, true
					break
				}
			}
		}
		v = bytes.TrimSpace(v)
		if !ok || len(v) == 0 || string(v) == "null" {
			continue
		}
		var text string
		switch v[0] {
		case '"':
			if err := json.Unmarshal(v, &text); err != nil {
				r.bad = "Parse json data failed: bad string"
				return r
			}
		case '{', '[':
			var b bytes.Buffer
			_ = json.Compact(&b, v)
			text = b.String()
		default:
			text = string(v)
		}
		r.vals[i] = &text
	}
	return r
}
