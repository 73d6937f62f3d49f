package rowside

import (
	"math/big"
	"strconv"
	"strings"
)

// Ranges hold the keys from their From to their To, in the key types'
// order at the source: integers, numerics and floats by value, dates and
// timestamps in time, text (and every other type) byte by byte, which is
// the order of a text key there too (KeyCollations: "C"). Keys are
// compared in their canonical text, the form range bounds come in. An
// order that strayed from the source's would cost re-reads, not
// correctness: every key a range finds differing is re-checked by key.

// keyCompare compares two canonical texts of one key column.
type keyCompare func(a, b string) int

func compareFor(typ string) keyCompare {
	switch family(typ) {
	case famInt:
		return compareIntegers
	case famNumeric:
		return compareNumerics
	case famFloat4, famFloat8:
		return compareFloats
	case famTimestamptz, famTimestamp:
		return compareTimestamps
	}
	return strings.Compare
}

// compareKeys compares two keys column by column, as a row comparison
// does.
func compareKeys(cmp []keyCompare, a, b []string) int {
	for i := range cmp {
		if c := cmp[i](a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareIntegers(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA != nil || errB != nil {
		return compareNumerics(a, b)
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// numericRank orders numeric's specials around the finite values:
// -Infinity, finite, Infinity, NaN (numeric sorts NaN above all).
func numericRank(s string) int {
	switch s {
	case "-Infinity":
		return 0
	case "Infinity":
		return 2
	case "NaN":
		return 3
	}
	return 1
}

func compareNumerics(a, b string) int {
	ra, rb := numericRank(a), numericRank(b)
	if ra != rb || ra != 1 {
		return ra - rb
	}
	x, okA := new(big.Rat).SetString(a)
	y, okB := new(big.Rat).SetString(b)
	if !okA || !okB {
		return strings.Compare(a, b)
	}
	return x.Cmp(y)
}

func compareFloats(a, b string) int {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	// float8 sorts NaN above all, equal to itself.
	switch nanA, nanB := x != x, y != y; {
	case nanA || nanB:
		return boolRank(nanA) - boolRank(nanB)
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compareTimestamps compares 'YYYY-MM-DD HH24:MI:SS.US' texts (a year of
// more than four digits included) and the infinities.
func compareTimestamps(a, b string) int {
	rank := func(s string) int {
		switch s {
		case "-infinity":
			return 0
		case "infinity":
			return 2
		}
		return 1
	}
	ra, rb := rank(a), rank(b)
	if ra != rb || ra != 1 {
		return ra - rb
	}
	ya, restA, _ := strings.Cut(a, "-")
	yb, restB, _ := strings.Cut(b, "-")
	if len(ya) != len(yb) {
		return len(ya) - len(yb)
	}
	if c := strings.Compare(ya, yb); c != 0 {
		return c
	}
	return strings.Compare(restA, restB)
}
