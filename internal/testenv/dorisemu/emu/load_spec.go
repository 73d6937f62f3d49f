package emu

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// mergeType is the stream load merge_type header.
type mergeType uint8

const (
	mergeAppend mergeType = iota
	mergeDelete
	mergeMerge
)

// loadSpec is a stream load's headers, parsed and checked against the
// table: which data column feeds which table column, the delete
// condition, the sequence source.
type loadSpec struct {
	label           string
	format          string // csv or json
	colSep, lineSep string
	enclose, escape byte
	trimQuotes      bool
	jsonByLine      bool
	stripOuterArray bool
	// loadCols are the data's column names (table columns or load-only
	// ones); tableCols says, per table column, which load column feeds it
	// (-1: none).
	loadCols  []string
	tableCols []int
	merge     mergeType
	delCol    int // load column of the delete condition, -1 without one
	delValue  string
	seqCol    int // load column feeding the sequence, -1 without one
	twoPC     bool
	maxFilter float64
	strict    bool
	partial   bool
}

// parseLoadSpec reads the stream load headers Doris documents. Its errors
// are answered as a failed load with the message as is.
func parseLoadSpec(h http.Header, t *Table) (*loadSpec, error) {
	s := &loadSpec{label: h.Get("label"), format: strings.ToLower(h.Get("format")), colSep: "\t", lineSep: "\n", delCol: -1, seqCol: -1}
	if s.format == "" {
		s.format = "csv"
	}
	if s.format != "csv" && s.format != "json" {
		return nil, fmt.Errorf("[INVALID_ARGUMENT]unknown data format, format=%s", s.format)
	}
	if v := h.Get("column_separator"); v != "" {
		s.colSep = unhexSeparator(v)
	}
	if v := h.Get("line_delimiter"); v != "" {
		s.lineSep = unhexSeparator(v)
	}
	if v := h.Get("enclose"); v != "" {
		s.enclose = v[0]
	}
	if v := h.Get("escape"); v != "" {
		s.escape = v[0]
	}
	s.trimQuotes = isTrue(h.Get("trim_double_quotes"))
	s.jsonByLine = isTrue(h.Get("read_json_by_line"))
	s.stripOuterArray = isTrue(h.Get("strip_outer_array"))
	s.twoPC = isTrue(h.Get("two_phase_commit"))
	s.strict = isTrue(h.Get("strict_mode"))
	s.partial = isTrue(h.Get("partial_columns"))
	if v := h.Get("max_filter_ratio"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return nil, fmt.Errorf("[INVALID_ARGUMENT]Invalid max_filter_ratio: %s", v)
		}
		s.maxFilter = f
	}
	switch strings.ToUpper(h.Get("merge_type")) {
	case "", "APPEND":
	case "DELETE":
		s.merge = mergeDelete
	case "MERGE":
		s.merge = mergeMerge
	default:
		return nil, fmt.Errorf("[INVALID_ARGUMENT]Invalid merge type %s", h.Get("merge_type"))
	}

	if v := h.Get("columns"); v != "" {
		for _, c := range strings.Split(v, ",") {
			c = strings.Trim(strings.TrimSpace(c), "`")
			if strings.ContainsAny(c, "=()") {
				return nil, fmt.Errorf("[INVALID_ARGUMENT]dorisemu supports only plain column names in columns, not %q", c)
			}
			s.loadCols = append(s.loadCols, c)
		}
	} else {
		for _, c := range t.Columns {
			s.loadCols = append(s.loadCols, c.Name)
		}
	}
	find := func(name string) int {
		for i, c := range s.loadCols {
			if strings.EqualFold(c, name) {
				return i
			}
		}
		return -1
	}
	// A JSON load reads columns by name, so names used only by the
	// delete condition or the sequence may be read without a columns header.
	addJSON := func(name string) int {
		if i := find(name); i >= 0 || s.format != "json" || h.Get("columns") != "" {
			return i
		}
		s.loadCols = append(s.loadCols, name)
		return len(s.loadCols) - 1
	}

	if v := h.Get("delete"); v != "" {
		if s.merge != mergeMerge {
			return nil, fmt.Errorf("[INVALID_ARGUMENT]delete condition only works with merge_type MERGE")
		}
		col, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("[INVALID_ARGUMENT]dorisemu supports only delete: <column>=<value>, not %q", v)
		}
		col = strings.Trim(strings.TrimSpace(col), "`")
		s.delValue = strings.Trim(strings.TrimSpace(val), `'"`)
		if s.delCol = addJSON(col); s.delCol < 0 {
			return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Unknown column '%s' in delete condition", col)
		}
	} else if s.merge == mergeMerge {
		return nil, fmt.Errorf("[INVALID_ARGUMENT]Excepted DELETE ON clause when merge type is MERGE.")
	}
	if s.merge != mergeAppend && t.Model != ModelUnique {
		return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = load by MERGE or DELETE is only supported in unique tables.")
	}
	if s.partial && t.Model != ModelUnique {
		return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Partial update is only allowed on unique table with merge-on-write enabled.")
	}

	if v := h.Get("function_column.sequence_col"); v != "" {
		if t.SeqType == nil {
			return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = There is no sequence column in the table %s.", t.Name)
		}
		if s.seqCol = addJSON(strings.Trim(strings.TrimSpace(v), "`")); s.seqCol < 0 {
			return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Unknown column '%s' for the sequence", v)
		}
	} else if t.SeqCol != "" {
		s.seqCol = find(t.SeqCol)
	}
	if t.SeqType != nil && s.seqCol < 0 && !s.partial {
		return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Table %s has sequence column, need to specify the sequence column", t.Name)
	}

	s.tableCols = make([]int, len(t.Columns))
	for i, c := range t.Columns {
		s.tableCols[i] = find(c.Name)
		if s.tableCols[i] >= 0 || s.partial {
			continue
		}
		if c.Key {
			return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Key column %s must be loaded", c.Name)
		}
		if !c.Nullable && c.Default == nil && c.DefaultExpr == "" {
			return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Column has no default value. column: %s", c.Name)
		}
	}
	if s.partial {
		for _, c := range t.Columns {
			if c.Key && find(c.Name) < 0 {
				return nil, fmt.Errorf("[ANALYSIS_ERROR]errCode = 2, detailMessage = Partial update should include all key columns, missing: %s", c.Name)
			}
		}
	}
	return s, nil
}

// unhexSeparator decodes Doris's "\x01" separator notation.
func unhexSeparator(v string) string {
	if strings.HasPrefix(strings.ToLower(v), `\x`) && len(v) > 2 {
		var out []byte
		hex := v[2:]
		for i := 0; i+1 < len(hex); i += 2 {
			b, err := strconv.ParseUint(hex[i:i+2], 16, 8)
			if err != nil {
				return v
			}
			out = append(out, byte(b))
		}
		return string(out)
	}
	return v
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }
