package pgvalue

import "bytes"

// Range is a range value: its bounds in the text form of the range's
// subtype (Type.Elem of the range type).
type Range struct {
	Empty              bool   // "empty": no bounds
	Lower, Upper       []byte // the bounds, unquoted and unescaped; nil when unbounded
	LowerInf, UpperInf bool   // unbounded on that side: no bound, never inclusive
	LowerInc, UpperInc bool   // the bound belongs to the range: "[" or "]"
}

// ParseRange parses a range's text form, as range_out prints it
// ("[1,5)", "(,3.5]", "empty", "[\"2020-01-01 00:00:00+00\",infinity)")
// and as range_in reads it (bounds quoted in part or in whole, with
// backslash escapes or doubled quotes inside quotes). The bounds alias s
// unless they hold escapes, or quotes anywhere but around the whole bound.
func ParseRange(s []byte) (Range, error) {
	r, rest, err := parseRange(s)
	if err == nil && len(bytes.TrimLeft(rest, arraySpaces)) != 0 {
		err = arrayError("text after the range")
	}
	if err != nil {
		return Range{}, syntaxError("range", s, err.Error())
	}
	return r, nil
}

// arraySpaces are the characters isArraySpace accepts, which are also
// those range_in skips (C's isspace).
const arraySpaces = " \t\n\r\v\f"

// parseRange reads a range from the start of s and returns what follows.
func parseRange(s []byte) (r Range, rest []byte, err error) {
	s = bytes.TrimLeft(s, arraySpaces)
	if len(s) >= 5 && bytes.EqualFold(s[:5], []byte("empty")) {
		return Range{Empty: true}, s[5:], nil
	}
	if len(s) == 0 || s[0] != '[' && s[0] != '(' {
		return r, nil, arrayError(`expected "[", "(" or "empty"`)
	}
	r.LowerInc = s[0] == '['
	if r.Lower, r.LowerInf, s, err = parseRangeBound(s[1:]); err != nil {
		return r, nil, err
	}
	if len(s) == 0 || s[0] != ',' {
		return r, nil, arrayError("expected a comma between the bounds")
	}
	if r.Upper, r.UpperInf, s, err = parseRangeBound(s[1:]); err != nil {
		return r, nil, err
	}
	if len(s) == 0 || s[0] != ']' && s[0] != ')' {
		return r, nil, arrayError(`expected "]" or ")"`)
	}
	r.UpperInc = s[0] == ']'
	// An unbounded side is never inclusive, whatever the bracket said.
	r.LowerInc = r.LowerInc && !r.LowerInf
	r.UpperInc = r.UpperInc && !r.UpperInf
	return r, s[1:], nil
}

// parseRangeBound reads a bound up to the comma or bracket after it;
// nothing at all is an unbounded side. A bound without escapes, bare or
// quoted whole (as range_out quotes), aliases s.
func parseRangeBound(s []byte) (bound []byte, inf bool, rest []byte, err error) {
	end, quotes, escaped, quoted := 0, 0, false, false
	for ; quoted || end < len(s) && s[end] != ',' && s[end] != ')' && s[end] != ']'; end++ {
		if end == len(s) {
			return nil, false, nil, arrayError("ended inside a bound")
		}
		switch s[end] {
		case '\\':
			escaped = true
			if end++; end == len(s) {
				return nil, false, nil, arrayError("ended after a backslash")
			}
		case '"':
			if quoted && end+1 < len(s) && s[end+1] == '"' {
				escaped = true
				end++ // a doubled quote inside quotes
			} else {
				quoted = !quoted
				quotes++
			}
		}
	}
	switch {
	case end == 0:
		return nil, true, s, nil
	case !escaped && quotes == 0:
		return s[:end], false, s[end:], nil
	case !escaped && quotes == 2 && s[0] == '"' && s[end-1] == '"':
		return s[1 : end-1], false, s[end:], nil
	}
	out := make([]byte, 0, end)
	quoted = false
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			c = s[i]
		case c == '"' && quoted && i+1 < end && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
			continue
		}
		out = append(out, c)
	}
	return out, false, s[end:], nil
}

// ParseMultirange appends to dst the ranges of a multirange's text form
// ("{}", "{[1,3),[5,7)}"), as ParseRange parses each.
func ParseMultirange(dst []Range, s []byte) ([]Range, error) {
	fail := func(msg string) ([]Range, error) { return dst, syntaxError("multirange", s, msg) }
	rest := bytes.TrimLeft(s, arraySpaces)
	if len(rest) == 0 || rest[0] != '{' {
		return fail(`expected "{"`)
	}
	rest = bytes.TrimLeft(rest[1:], arraySpaces)
	if len(rest) > 0 && rest[0] == '}' {
		rest = rest[1:]
	} else {
		for {
			r, after, err := parseRange(rest)
			if err != nil {
				return fail(err.Error())
			}
			dst = append(dst, r)
			rest = bytes.TrimLeft(after, arraySpaces)
			if len(rest) > 0 && rest[0] == ',' {
				rest = rest[1:]
				continue
			}
			if len(rest) == 0 || rest[0] != '}' {
				return fail(`expected "," or "}" after a range`)
			}
			rest = rest[1:]
			break
		}
	}
	if len(bytes.TrimLeft(rest, arraySpaces)) != 0 {
		return fail(`text after the last "}"`)
	}
	return dst, nil
}

// AppendRange appends r's text form as range_out prints it: "empty", or
// the brackets around the bounds, each quoted when it is empty or holds
// whitespace, a quote, a backslash, a bracket, a parenthesis or a comma
// (inside the quotes, quotes and backslashes are doubled); an unbounded
// side is left empty.
func AppendRange(dst []byte, r Range) []byte {
	if r.Empty {
		return append(dst, "empty"...)
	}
	dst = append(dst, "(["[b2i(r.LowerInc && !r.LowerInf)])
	if !r.LowerInf {
		dst = appendRangeBound(dst, r.Lower)
	}
	dst = append(dst, ',')
	if !r.UpperInf {
		dst = appendRangeBound(dst, r.Upper)
	}
	return append(dst, ")]"[b2i(r.UpperInc && !r.UpperInf)])
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func appendRangeBound(dst, b []byte) []byte {
	quote := len(b) == 0 || bytes.ContainsAny(b, "\"\\()[],"+arraySpaces)
	if !quote {
		return append(dst, b...)
	}
	dst = append(dst, '"')
	for _, c := range b {
		if c == '"' || c == '\\' {
			dst = append(dst, c)
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// AppendMultirange appends the text form of a multirange of rs, as
// multirange_out prints it: "{", the ranges separated by commas, "}".
func AppendMultirange(dst []byte, rs []Range) []byte {
	dst = append(dst, '{')
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendRange(dst, r)
	}
	return append(dst, '}')
}
