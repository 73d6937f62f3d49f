package emu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// errTooLong marks a value longer than its column. Doris filters such a
// row whatever strict_mode says; other conversion failures become NULL in
// non-strict mode when the column is nullable (Doris's strict-mode table).
var errTooLong = errors.New("the length of input is too long than schema")

var (
	maxLargeInt = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
	minLargeInt = new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 127))
)

// Convert turns a loaded text value into the canonical text MariaDB stores
// for a column of type t, or says why Doris would refuse it.
func (t Type) Convert(s string) (string, error) {
	switch t.Kind {
	case KindBoolean:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1":
			return "1", nil
		case "false", "0":
			return "0", nil
		}
		return "", fmt.Errorf("'%s' is not a valid BOOLEAN", s)
	case KindTinyInt, KindSmallInt, KindInt, KindBigInt:
		bits := map[Kind]int{KindTinyInt: 8, KindSmallInt: 16, KindInt: 32, KindBigInt: 64}[t.Kind]
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
		if err != nil {
			return "", fmt.Errorf("'%s' is not a valid %s or out of range", s, t)
		}
		return strconv.FormatInt(v, 10), nil
	case KindLargeInt:
		v, ok := new(big.Int).SetString(strings.TrimSpace(s), 10)
		if !ok || v.Cmp(maxLargeInt) > 0 || v.Cmp(minLargeInt) < 0 {
			return "", fmt.Errorf("'%s' is not a valid LARGEINT or out of range", s)
		}
		return v.String(), nil
	case KindFloat, KindDouble:
		bits := 64
		if t.Kind == KindFloat {
			bits = 32
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), bits)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("'%s' is not a valid %s", s, t)
		}
		return strconv.FormatFloat(f, 'g', -1, bits), nil
	case KindDecimal:
		return convertDecimal(t, s)
	case KindDate:
		tm, err := parseDateTime(s)
		if err != nil {
			return "", fmt.Errorf("'%s' is not a valid DATEV2", s)
		}
		return tm.Format("2006-01-02"), nil
	case KindDateTime:
		tm, err := parseDateTime(s)
		if err != nil {
			return "", fmt.Errorf("'%s' is not a valid %s", s, t)
		}
		tm = tm.Round(time.Duration(math.Pow10(9 - t.Prec)))
		layout := "2006-01-02 15:04:05"
		if t.Prec > 0 {
			layout += "." + strings.Repeat("0", t.Prec)
		}
		return tm.Format(layout), nil
	case KindChar, KindVarchar:
		if len(s) > t.Len {
			return "", fmt.Errorf("%w. schema length: %d; actual length: %d", errTooLong, t.Len, len(s))
		}
		if !utf8.ValidString(s) {
			return "", errors.New("the input is not valid UTF-8")
		}
		return s, nil
	case KindString:
		if len(s) > maxStringBytes {
			return "", fmt.Errorf("%w. schema length: %d; actual length: %d", errTooLong, maxStringBytes, len(s))
		}
		if !utf8.ValidString(s) {
			return "", errors.New("the input is not valid UTF-8")
		}
		return s, nil
	case KindJSON:
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(s)); err != nil || !json.Valid([]byte(s)) {
			return "", fmt.Errorf("'%s' is not a valid JSON", s)
		}
		return buf.String(), nil
	}
	return "", fmt.Errorf("unsupported type %s", t)
}

// convertDecimal rounds half away from zero to the scale, as Doris does,
// and refuses a value with more than p-s integer digits.
func convertDecimal(t Type, s string) (string, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return "", fmt.Errorf("'%s' is not a valid %s", s, t)
	}
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil)))
	num, den := new(big.Int).Abs(scaled.Num()), scaled.Denom()
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Lsh(rem, 1).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Prec)), nil)
	if q.Cmp(limit) >= 0 {
		return "", fmt.Errorf("'%s' is out of range for %s: more than %d integer digits", s, t, t.Prec-t.Scale)
	}
	digits := q.String()
	if t.Scale > 0 {
		if len(digits) <= t.Scale {
			digits = strings.Repeat("0", t.Scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-t.Scale] + "." + digits[len(digits)-t.Scale:]
	}
	if scaled.Sign() < 0 && q.Sign() != 0 {
		digits = "-" + digits
	}
	return digits, nil
}

var dateLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02",
	"20060102150405",
	"20060102",
}

func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if tm, err := time.Parse(l, s); err == nil {
			return tm, nil
		}
	}
	return time.Time{}, errors.New("bad date")
}
