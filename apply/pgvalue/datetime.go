package pgvalue

import (
	"strconv"
	"time"
)

// DateTime is a value of date, time, timetz, timestamp or timestamptz as
// PostgreSQL prints it with DateStyle ISO: "2024-05-01", "10:00:00.5",
// "10:00:00+05:30", "2024-05-01 10:00:00", "0002-12-31 18:33:58-04:56:02
// BC", "infinity". The Has fields say which parts the text had; the
// others are zero. A timestamptz carries the offset of the session's time
// zone at that instant (the same instant prints differently in other
// zones).
type DateTime struct {
	Special                           Special // Finite, or PosInfinity and NegInfinity (date, timestamp, timestamptz): no parts then
	Year, Month, Day                  int     // Year counts astronomically, as time.Time does: 1 BC is 0, 2 BC is -1
	Hour, Minute, Second, Microsecond int     // Hour is 24 only in a time or timetz of 24:00:00
	Offset                            int     // seconds east of UTC
	HasDate, HasTime, HasOffset       bool
}

// ParseDateTime parses the ISO DateStyle text form of a date, time,
// timetz, timestamp or timestamptz. Text of the other DateStyles (SQL,
// Postgres, German) is an error.
func ParseDateTime(s []byte) (DateTime, error) {
	switch string(s) {
	case "infinity":
		return DateTime{Special: PosInfinity}, nil
	case "-infinity":
		return DateTime{Special: NegInfinity}, nil
	}
	dt, msg := parseDateTime(s)
	if msg != "" {
		return DateTime{}, syntaxError("date/time", s, msg)
	}
	return dt, nil
}

// parseDateTime is ParseDateTime of a finite value; msg says what is
// wrong, if anything.
func parseDateTime(s []byte) (dt DateTime, msg string) {
	c := cursor{s: s}
	if n := digits(s); n >= 4 && n <= 7 && n < len(s) && s[n] == '-' {
		dt.Year, c.i = atoi(s[:n]), n+1
		if !c.fields('-', &dt.Month, &dt.Day) {
			return dt, "bad date"
		}
		dt.HasDate = true
		if rest := c.rest(); len(rest) > 1 && rest[0] == ' ' && rest[1] != 'B' {
			c.i++
		}
	}
	if rest := c.rest(); len(rest) >= 8 && rest[2] == ':' {
		if !c.fields(':', &dt.Hour, &dt.Minute, &dt.Second) {
			return dt, "bad time"
		}
		var ok bool
		if dt.Microsecond, ok = c.fraction(); !ok {
			return dt, "bad fraction of a second"
		}
		if dt.Hour > 24 || dt.Minute > 59 || dt.Second > 59 ||
			dt.Hour == 24 && (dt.HasDate || dt.Minute != 0 || dt.Second != 0 || dt.Microsecond != 0) {
			return dt, "no such time"
		}
		dt.HasTime = true
		if p := c.peek(); p == '+' || p == '-' {
			if dt.Offset, ok = c.offset(); !ok {
				return dt, "bad zone offset"
			}
			dt.HasOffset = true
		}
	}
	if dt.HasDate && string(c.rest()) == " BC" {
		dt.Year = 1 - dt.Year
		c.i = len(s)
	}
	if c.i != len(s) || !dt.HasDate && !dt.HasTime {
		return dt, "not in ISO style"
	}
	// Checked with the year counted astronomically: 1 BC is a leap year.
	if dt.HasDate && (dt.Month < 1 || dt.Month > 12 || dt.Day < 1 || dt.Day > daysIn(dt.Month, dt.Year)) {
		return dt, "no such date"
	}
	return dt, ""
}

// daysIn is the length of a month of the proleptic Gregorian calendar
// PostgreSQL counts in (astronomical years: 1 BC, year 0, is a leap year).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// cursor reads a text from the front. (An index rather than a shrinking
// slice behind a pointer keeps the text from escaping to the heap.)
type cursor struct {
	s []byte
	i int
}

func (c *cursor) rest() []byte { return c.s[c.i:] }

func (c *cursor) peek() byte {
	if c.i < len(c.s) {
		return c.s[c.i]
	}
	return 0
}

// fields reads two-digit numbers separated by sep into v.
func (c *cursor) fields(sep byte, v ...*int) bool {
	for k, p := range v {
		if k > 0 {
			if c.peek() != sep {
				return false
			}
			c.i++
		}
		if len(c.s)-c.i < 2 || digits(c.s[c.i:c.i+2]) != 2 {
			return false
		}
		*p = int(c.s[c.i]-'0')*10 + int(c.s[c.i+1]-'0')
		c.i += 2
	}
	return true
}

// fraction reads a fraction of a second, "." and one to six digits, in
// microseconds; none is 0.
func (c *cursor) fraction() (int, bool) {
	if c.peek() != '.' {
		return 0, true
	}
	n := digits(c.s[c.i+1:])
	if n == 0 || n > 6 {
		return 0, false
	}
	micro := atoi(c.s[c.i+1 : c.i+1+n])
	for scale := n; scale < 6; scale++ {
		micro *= 10
	}
	c.i += 1 + n
	return micro, true
}

// offset reads a zone offset after its sign: +HH, +HH:MM or +HH:MM:SS (the
// local mean times of historical zones have seconds), in seconds.
func (c *cursor) offset() (int, bool) {
	sign := 1
	if c.s[c.i] == '-' {
		sign = -1
	}
	c.i++
	var h, m, sec int
	if !c.fields(0, &h) {
		return 0, false
	}
	for _, v := range []*int{&m, &sec} {
		if c.peek() != ':' {
			break
		}
		c.i++
		if !c.fields(0, v) || *v > 59 {
			return 0, false
		}
	}
	return sign * (h*3600 + m*60 + sec), true
}

// Time is the instant of a finite value, in UTC: a timestamptz's instant;
// for a date or timestamp, its wall clock read as UTC; for a time of day
// alone, that time on January 1 of year 1 (a timetz shifted by its
// offset).
func (d DateTime) Time() time.Time {
	year, month, day := 1, 1, 1
	if d.HasDate {
		year, month, day = d.Year, d.Month, d.Day
	}
	t := time.Date(year, time.Month(month), day, d.Hour, d.Minute, d.Second, d.Microsecond*1000, time.UTC)
	// Subtracting the offset rather than using time.FixedZone keeps this
	// free of allocations.
	return t.Add(-time.Duration(d.Offset) * time.Second)
}

// UTC is d with its offset applied: the same instant at offset +00 (a
// timetz's time of day wraps around midnight). Values without an offset
// are returned as they are.
func (d DateTime) UTC() DateTime {
	if d.Special != Finite || !d.HasOffset || d.Offset == 0 {
		return d
	}
	t := d.Time()
	out := d
	if d.HasDate {
		var m time.Month
		out.Year, m, out.Day = t.Date()
		out.Month = int(m)
	}
	out.Hour, out.Minute, out.Second = t.Clock()
	out.Offset = 0
	return out
}

// AppendDateTime appends d's text form as PostgreSQL prints it with
// DateStyle ISO: the parts d has, the fraction of a second without
// trailing zeros, the offset as +HH, +HH:MM or +HH:MM:SS, and " BC" for
// years before 1 AD.
func AppendDateTime(dst []byte, d DateTime) []byte {
	switch d.Special {
	case PosInfinity:
		return append(dst, "infinity"...)
	case NegInfinity:
		return append(dst, "-infinity"...)
	}
	bc := d.HasDate && d.Year <= 0
	if d.HasDate {
		year := d.Year
		if bc {
			year = 1 - year
		}
		dst = appendPadded(dst, year, 4)
		dst = append(dst, '-')
		dst = appendPadded(dst, d.Month, 2)
		dst = append(dst, '-')
		dst = appendPadded(dst, d.Day, 2)
	}
	if d.HasTime {
		if d.HasDate {
			dst = append(dst, ' ')
		}
		dst = appendClock(dst, int64(d.Hour), d.Minute, d.Second, d.Microsecond)
	}
	if d.HasOffset {
		dst = appendOffset(dst, d.Offset)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

// appendClock appends HH:MM:SS and the fraction of a second, if any,
// without trailing zeros (hours may have more than two digits in an
// interval).
func appendClock(dst []byte, hour int64, minute, second, micro int) []byte {
	dst = appendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, second, 2)
	if micro != 0 {
		dst = append(dst, '.')
		dst = appendPadded(dst, micro, 6)
		for dst[len(dst)-1] == '0' {
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// appendOffset appends a zone offset as EncodeTimezone does: +HH, and :MM
// and :SS only as far as they are not zero.
func appendOffset(dst []byte, offset int) []byte {
	sign := byte('+')
	if offset < 0 {
		sign, offset = '-', -offset
	}
	dst = appendPadded(append(dst, sign), offset/3600, 2)
	if offset%3600 != 0 {
		dst = appendPadded(append(dst, ':'), offset/60%60, 2)
	}
	if offset%60 != 0 {
		dst = appendPadded(append(dst, ':'), offset%60, 2)
	}
	return dst
}

// appendPadded appends v ≥ 0 in decimal, zero-padded to width digits.
func appendPadded[T int | int64](dst []byte, v T, width int) []byte {
	for p := T(10); width > 1; width, p = width-1, p*10 {
		if v < p {
			dst = append(dst, '0')
		}
	}
	return strconv.AppendInt(dst, int64(v), 10)
}

// atoi is the value of a run of ASCII digits short enough for an int.
func atoi(digits []byte) int {
	v := 0
	for _, c := range digits {
		v = v*10 + int(c-'0')
	}
	return v
}
