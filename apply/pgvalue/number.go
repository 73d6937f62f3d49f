package pgvalue

import (
	"math"
	"strconv"
)

// Special marks the values outside the ordinary ones some types have:
// NaN and the infinities of floats and numeric, the infinities of dates
// and timestamps.
type Special int8

const (
	Finite      Special = iota // an ordinary value
	NaN                        // "NaN" (float, numeric)
	PosInfinity                // "Infinity" (float, numeric), "infinity" (date, timestamp, timestamptz)
	NegInfinity                // "-Infinity" (float, numeric), "-infinity" (date, timestamp, timestamptz)
)

func (s Special) String() string {
	switch s {
	case Finite:
		return "finite"
	case NaN:
		return "NaN"
	case PosInfinity:
		return "infinity"
	case NegInfinity:
		return "-infinity"
	}
	return "special(" + strconv.Itoa(int(s)) + ")"
}

// ParseBool parses bool's text form: "t" or "f".
func ParseBool(s []byte) (bool, error) {
	switch string(s) {
	case "t":
		return true, nil
	case "f":
		return false, nil
	}
	return false, syntaxError("bool", s, `not "t" or "f"`)
}

// ParseInt parses an integer as int2out, int4out, int8out and oidout print
// it: an optional minus and decimal digits without leading zeros. bitSize
// (16, 32 or 64) is the type's width; oid is unsigned, parse it with 64.
// Its text is also a JSON number, which destinations writing JSON rely on.
func ParseInt(s []byte, bitSize int) (int64, error) {
	d, neg := s, len(s) > 0 && s[0] == '-'
	if neg {
		d = s[1:]
	}
	if n := digits(d); n == 0 || n != len(d) || d[0] == '0' && (n > 1 || neg) {
		return 0, syntaxError("int", s, "not an integer in canonical form")
	}
	if len(d) > 19 { // more than any int64 has
		return 0, syntaxError("int", s, "out of range")
	}
	var u uint64
	for _, c := range d {
		u = u*10 + uint64(c-'0')
	}
	if bitSize <= 0 || bitSize > 64 {
		bitSize = 64
	}
	limit := uint64(1) << (bitSize - 1)
	if neg && u > limit || !neg && u >= limit {
		return 0, syntaxError("int", s, "out of range for "+strconv.Itoa(bitSize)+" bits")
	}
	if neg {
		return -int64(u), nil
	}
	return int64(u), nil
}

// ParseFloat parses a float as float4out and float8out print it: "NaN",
// "Infinity", "-Infinity", or a decimal number with an optional exponent
// ("1e+100", "-0", "1.5e-07"), which is then also a JSON number. bitSize
// is 32 for float4 and 64 for float8.
func ParseFloat(s []byte, bitSize int) (float64, error) {
	switch numberSpecial(s) {
	case NaN:
		return math.NaN(), nil
	case PosInfinity:
		return math.Inf(1), nil
	case NegInfinity:
		return math.Inf(-1), nil
	}
	if !isDecimal(s, true) {
		return 0, syntaxError("float", s, "not a number")
	}
	// strconv keeps the string out of its errors, so the conversion
	// does not escape (and short texts do not allocate).
	f, err := strconv.ParseFloat(string(s), bitSize)
	if err != nil {
		return 0, syntaxError("float", s, "out of range")
	}
	return f, nil
}

// numberSpecials are the special values as float and numeric print them.
var numberSpecials = [...]string{NaN: "NaN", PosInfinity: "Infinity", NegInfinity: "-Infinity"}

// numberSpecial is the special value s prints, or Finite.
func numberSpecial(s []byte) Special {
	for sp, text := range numberSpecials {
		if text != "" && string(s) == text {
			return Special(sp)
		}
	}
	return Finite
}

// isDecimal reports whether s is -?(0|[1-9][0-9]*)(\.[0-9]+)?, followed,
// when exponent, by an optional ([eE][+-]?[0-9]+).
func isDecimal(s []byte, exponent bool) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	n := digits(s)
	if n == 0 || (s[0] == '0' && n > 1) {
		return false
	}
	s = s[n:]
	if len(s) > 0 && s[0] == '.' {
		n = digits(s[1:])
		if n == 0 {
			return false
		}
		s = s[1+n:]
	}
	if exponent && len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		n = digits(s)
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return len(s) == 0
}

// digits counts the leading ASCII digits of s.
func digits(s []byte) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// Numeric is a numeric value as numeric_out prints it. The digits alias
// the parsed text.
type Numeric struct {
	Special  Special // Finite, or NaN, PosInfinity, NegInfinity (PostgreSQL 14 and later)
	Negative bool
	Int      []byte // the integer part's digits: "0" when it is zero
	Frac     []byte // the fraction's digits: len(Frac) is the value's scale
}

// ParseNumeric parses numeric's text form: "NaN", "Infinity",
// "-Infinity", or an optional minus, digits, and a point with more digits
// (numeric_out never writes an exponent).
func ParseNumeric(s []byte) (Numeric, error) {
	if sp := numberSpecial(s); sp != Finite {
		return Numeric{Special: sp}, nil
	}
	var n Numeric
	d := s
	if len(d) > 0 && d[0] == '-' {
		n.Negative, d = true, d[1:]
	}
	i := digits(d)
	n.Int, d = d[:i], d[i:]
	if len(d) > 0 && d[0] == '.' {
		f := digits(d[1:])
		n.Frac, d = d[1:1+f], d[1+f:]
		if f == 0 {
			return Numeric{}, syntaxError("numeric", s, "no digit after the point")
		}
	}
	if i == 0 || len(d) != 0 {
		return Numeric{}, syntaxError("numeric", s, "not a number")
	}
	return n, nil
}

// AppendNumeric appends n's text form, as numeric_out prints it.
func AppendNumeric(dst []byte, n Numeric) []byte {
	switch n.Special {
	case NaN, PosInfinity, NegInfinity:
		return append(dst, numberSpecials[n.Special]...)
	}
	if n.Negative {
		dst = append(dst, '-')
	}
	if len(n.Int) == 0 {
		dst = append(dst, '0')
	}
	dst = append(dst, n.Int...)
	if len(n.Frac) > 0 {
		dst = append(dst, '.')
		dst = append(dst, n.Frac...)
	}
	return dst
}
