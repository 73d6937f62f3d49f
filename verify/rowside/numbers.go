package rowside

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// numericText is a numeric's canonical text: numeric_out of the value
// (read as numeric_in reads text: an exponent moves the point, the scale
// is the digits after it), then, when trim, without the zeros that end
// its fraction ("1.50" is "1.5", "2.00" is "2"), as pgverify's SQL trims
// them. jsonb prints its numbers untrimmed.
func numericText(v any, trim bool) string {
	var s string
	switch x := v.(type) {
	case float64:
		if special, ok := floatSpecial(x); ok {
			return special
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		if special, ok := floatSpecial(float64(x)); ok {
			return special
		}
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	default:
		s = plainText(v)
	}
	if special, ok := specialText(s); ok {
		return special
	}
	out, ok := numericOut(s)
	if !ok {
		return s
	}
	if trim && strings.Contains(out, ".") {
		out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	}
	return out
}

// numericOut is numeric_out(numeric_in(s)) for a finite decimal s
// ("-12.50", "1e3", ".5", "1.0E-2"); ok is false for text that is not
// one.
func numericOut(s string) (string, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	mantissa, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mantissa, ".")
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) {
		return "", false
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil || e > 1e6 || e < -1e6 {
			return "", false
		}
		exp = e
	}
	digits := intPart + frac
	point := len(intPart) + exp // where the point falls in digits
	scale := max(0, len(frac)-exp)
	var whole, fraction string
	switch {
	case point <= 0:
		whole, fraction = "0", strings.Repeat("0", -point)+digits
	case point >= len(digits):
		whole, fraction = digits+strings.Repeat("0", point-len(digits)), ""
	default:
		whole, fraction = digits[:point], digits[point:]
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	if len(fraction) < scale {
		fraction += strings.Repeat("0", scale-len(fraction))
	}
	fraction = fraction[:scale] // the digits beyond the scale are zeros
	out := whole
	if scale > 0 {
		out += "." + fraction
	}
	// numeric has no negative zero.
	if neg && strings.Trim(out, "0.") != "" {
		out = "-" + out
	}
	return out, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func floatSpecial(f float64) (string, bool) {
	switch {
	case math.IsNaN(f):
		return "NaN", true
	case math.IsInf(f, 1):
		return "Infinity", true
	case math.IsInf(f, -1):
		return "-Infinity", true
	}
	return "", false
}

// floatText is a float4 (bits 32) or float8 (bits 64) as float4out and
// float8out print it with extra_float_digits above 0: the shortest
// digits that read back as the same value, in fixed notation for
// decimal exponents from -4 up to 5 (float4) or 14 (float8), else as
// 1.5e-07, 1e+100.
func floatText(v any, bits int) string {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		if i, ok := integer(v); ok {
			f = float64(i)
			break
		}
		s := plainText(v)
		if special, ok := specialText(s); ok {
			return special
		}
		parsed, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return s
		}
		f = parsed
	}
	if bits == 32 {
		f = float64(float32(f))
	}
	return pgFloat(f, bits)
}

// pgFloat formats a float as PostgreSQL's shortest output does.
func pgFloat(f float64, bits int) string {
	if special, ok := floatSpecial(f); ok {
		return special
	}
	sign := ""
	if math.Signbit(f) {
		sign, f = "-", -f
	}
	if f == 0 {
		return sign + "0"
	}
	d := shortest(f, bits)
	fixedBelow := 15 // DBL_DIG
	if bits == 32 {
		fixedBelow = 6 // FLT_DIG
	}
	if d.exp < -4 || d.exp >= fixedBelow {
		out := sign + d.digits[:1]
		if len(d.digits) > 1 {
			out += "." + d.digits[1:]
		}
		expSign := "+"
		if d.exp < 0 {
			expSign = "-"
		}
		return out + "e" + expSign + fmt.Sprintf("%02d", abs(d.exp))
	}
	if d.exp < 0 {
		return sign + "0." + strings.Repeat("0", -d.exp-1) + d.digits
	}
	if whole := d.exp + 1; whole < len(d.digits) {
		return sign + d.digits[:whole] + "." + d.digits[whole:]
	}
	return sign + d.digits + strings.Repeat("0", d.exp+1-len(d.digits))
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// decimal is digits (no trailing zeros) times 10 to exp, the exponent of
// the first digit: d.ddd × 10^exp.
type decimal struct {
	digits string
	exp    int
}

func parseSci(s string) decimal {
	mantissa, e, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(e)
	digits := strings.TrimRight(strings.Replace(mantissa, ".", "", 1), "0")
	if digits == "" {
		digits = "0"
	}
	return decimal{digits, exp}
}

func (d decimal) rat() *big.Rat {
	n, _ := new(big.Int).SetString(d.digits, 10)
	shift := d.exp - len(d.digits) + 1
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(shift))), nil)
	if shift >= 0 {
		return new(big.Rat).SetInt(n.Mul(n, p))
	}
	return new(big.Rat).SetFrac(n, p)
}

// up is the next decimal of n significant digits above d (d has at
// most n).
func (d decimal) up(n int) decimal {
	digits := []byte(d.digits + strings.Repeat("0", n-len(d.digits)))
	i := len(digits) - 1
	for ; i >= 0 && digits[i] == '9'; i-- {
		digits[i] = '0'
	}
	if i < 0 {
		return decimal{"1", d.exp + 1}
	}
	digits[i]++
	out := strings.TrimRight(string(digits), "0")
	return decimal{out, d.exp}
}

// shortest is the shortest decimal PostgreSQL's Ryu prints for f > 0: the
// shortest that lies strictly inside the interval of values that round
// to f, nearest to f. PostgreSQL builds Ryu without accepting the
// interval's bounds (a decimal exactly halfway to the next float), which
// Go's shortest output accepts when f's mantissa is even: then the
// search goes on with more digits.
func shortest(f float64, bits int) decimal {
	var prev, next float64
	if bits == 32 {
		prev, next = float64(math.Nextafter32(float32(f), 0)), float64(math.Nextafter32(float32(f), float32(math.Inf(1))))
	} else {
		prev, next = math.Nextafter(f, 0), math.Nextafter(f, math.Inf(1))
	}
	x := new(big.Rat).SetFloat64(f)
	lo := new(big.Rat).Add(x, new(big.Rat).SetFloat64(prev))
	lo.Quo(lo, big.NewRat(2, 1))
	var hi *big.Rat
	if math.IsInf(next, 0) {
		half := new(big.Rat).Sub(x, lo)
		hi = new(big.Rat).Add(x, half)
	} else {
		hi = new(big.Rat).Add(x, new(big.Rat).SetFloat64(next))
		hi.Quo(hi, big.NewRat(2, 1))
	}
	inside := func(d decimal) bool {
		r := d.rat()
		return r.Cmp(lo) > 0 && r.Cmp(hi) < 0
	}
	if d := parseSci(strconv.FormatFloat(f, 'e', -1, bits)); inside(d) {
		return d
	}
	for n := 1; n <= 17; n++ {
		d := parseSci(strconv.FormatFloat(f, 'e', n-1, bits))
		if inside(d) {
			return d
		}
		// Nearer f's smaller neighbor than its larger one (f a power of
		// two), the rounded decimal may fall below the interval.
		if u := d.up(n); inside(u) {
			return u
		}
	}
	return parseSci(strconv.FormatFloat(f, 'e', -1, bits))
}

// jsonNumber is a JSON number as jsonb prints it: numeric_out of the
// number.
func jsonNumber(n json.Number) string {
	if out, ok := numericOut(string(n)); ok {
		return out
	}
	return string(n)
}

// specialText is PostgreSQL's spelling of NaN or an infinity written
// any way a destination may write it.
func specialText(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "nan":
		return "NaN", true
	case "infinity", "inf", "+infinity", "+inf":
		return "Infinity", true
	case "-infinity", "-inf":
		return "-Infinity", true
	}
	return "", false
}
