package pgvalue

import (
	"math"
	"strconv"
)

// Interval is an interval as PostgreSQL stores it: months, days and
// microseconds, each with its own sign, never normalized into one another
// (a month is not 30 days, a day not always 24 hours).
type Interval struct {
	Months       int32
	Days         int32
	Microseconds int64
}

// intervalUnits are the words of IntervalStyle postgres, in the order
// they appear; a time of day follows them.
var intervalUnits = [...]string{"year", "mon", "day"}

// ParseInterval parses an interval as PostgreSQL prints it with
// IntervalStyle postgres (the default): "1 year 2 mons 3 days
// 04:05:06.789", "-1 days +00:00:01", "-178000000 years", "00:00:00".
// The other styles (postgres_verbose, sql_standard, iso_8601) are an
// error.
func ParseInterval(s []byte) (Interval, error) {
	var iv Interval
	fail := func(msg string) (Interval, error) { return Interval{}, syntaxError("interval", s, msg) }
	var months int64
	rest, next := s, 0 // next: the index in intervalUnits the next part may use
	for {
		neg := len(rest) > 0 && rest[0] == '-'
		if len(rest) > 0 && (rest[0] == '-' || rest[0] == '+') {
			rest = rest[1:]
		}
		n := digits(rest)
		if n == 0 || n > 10 {
			return fail("expected a number")
		}
		v := int64(atoi(rest[:n]))
		if neg {
			v = -v
		}
		rest = rest[n:]
		if len(rest) > 0 && rest[0] == ':' {
			us, ok := parseIntervalTime(v, neg, rest[1:])
			if !ok {
				return fail("bad time part")
			}
			iv.Microseconds = us
			break
		}
		unit := -1
		for u := next; u < len(intervalUnits); u++ {
			if w, ok := cutWord(rest, intervalUnits[u]); ok {
				unit, rest = u, w
				break
			}
		}
		switch unit {
		case 0:
			months += v * 12
		case 1:
			months += v
		case 2:
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fail("days out of range")
			}
			iv.Days = int32(v)
		default:
			return fail("expected year, mon or day in this order")
		}
		next = unit + 1
		if len(rest) == 0 {
			break
		}
		if rest[0] != ' ' {
			return fail("expected a space")
		}
		rest = rest[1:]
	}
	if months < math.MinInt32 || months > math.MaxInt32 {
		return fail("months out of range")
	}
	iv.Months = int32(months)
	return iv, nil
}

// cutWord removes " word" or " words" from the start of s; ok is false if
// s does not start with either.
func cutWord(s []byte, word string) (rest []byte, ok bool) {
	if len(s) < 1+len(word) || s[0] != ' ' || string(s[1:1+len(word)]) != word {
		return s, false
	}
	s = s[1+len(word):]
	if len(s) > 0 && s[0] == 's' {
		s = s[1:]
	}
	if len(s) > 0 && s[0] != ' ' {
		return s, false
	}
	return s, true
}

// parseIntervalTime reads the rest of an interval's time part after
// "hours:" ("MM:SS" and a fraction); the sign, given with the hours,
// applies to all of it.
func parseIntervalTime(hours int64, neg bool, s []byte) (int64, bool) {
	c := cursor{s: s}
	var minutes, seconds int
	if !c.fields(':', &minutes, &seconds) || minutes > 59 || seconds > 59 {
		return 0, false
	}
	micro, ok := c.fraction()
	if !ok || c.i != len(s) {
		return 0, false
	}
	if hours < 0 {
		hours = -hours
	}
	// In uint64, so that the most negative interval (-2562047788:00:54.775808) fits.
	const maxHours = math.MaxInt64 / 3600_000_000
	if hours > maxHours {
		return 0, false
	}
	us := uint64(hours)*3600_000_000 + uint64(minutes)*60_000_000 + uint64(seconds)*1_000_000 + uint64(micro)
	switch {
	case neg && us <= 1<<63:
		return int64(-us), true // two's complement: -(1<<63) stays itself
	case !neg && us < 1<<63:
		return int64(us), true
	}
	return 0, false
}

// AppendInterval appends iv as PostgreSQL prints it with IntervalStyle
// postgres: the nonzero years, months and days, a "+" on a positive part
// after a negative one, then the time of day unless it is zero (and the
// interval is not all zero), with the fraction of a second trimmed.
func AppendInterval(dst []byte, iv Interval) []byte {
	start := len(dst)
	before := false // the previous part was negative
	part := func(v int64, unit string) {
		if v == 0 {
			return
		}
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		if before && v > 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, v, 10)
		dst = append(dst, ' ')
		dst = append(dst, unit...)
		if v != 1 {
			dst = append(dst, 's')
		}
		before = v < 0
	}
	part(int64(iv.Months/12), intervalUnits[0])
	part(int64(iv.Months%12), intervalUnits[1])
	part(int64(iv.Days), intervalUnits[2])
	if us := iv.Microseconds; us != 0 || len(dst) == start {
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		// The magnitude in uint64: the most negative value has no int64 opposite.
		mag := uint64(us)
		if us < 0 {
			dst = append(dst, '-')
			mag = -mag
		} else if before {
			dst = append(dst, '+')
		}
		const hour, minute, second = 3600_000_000, 60_000_000, 1_000_000
		dst = appendClock(dst, int64(mag/hour), int(mag%hour/minute), int(mag%minute/second), int(mag%second))
	}
	return dst
}
