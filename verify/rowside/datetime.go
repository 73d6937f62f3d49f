package rowside

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicedb/sluice/apply/pgvalue"
)

// timestampText is a timestamptz (utc), timestamp or date as pgverify
// prints it: to_char(..., 'YYYY-MM-DD HH24:MI:SS.US'), in UTC for a
// timestamptz, a date at midnight; the infinities as they are. to_char
// prints a year before 1 AD by its number before Christ, without a mark
// (1 BC is "0001"), and a year past 9999 in full.
func timestampText(v any, utc bool) string {
	dt, ok := dateTimeOf(v, utc)
	if !ok {
		return plainText(v)
	}
	switch dt.Special {
	case pgvalue.PosInfinity:
		return "infinity"
	case pgvalue.NegInfinity:
		return "-infinity"
	}
	year := dt.Year
	if year <= 0 {
		year = 1 - year
	}
	return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d", year, dt.Month, dt.Day, dt.Hour, dt.Minute, dt.Second, dt.Microsecond)
}

// dateTimeOf reads a date or time value: a time.Time (its instant in UTC
// when utc, else its wall clock), or text in PostgreSQL's ISO form or
// the Kafka sink's RFC 3339 ("2024-05-01T10:00:00.5Z", " BC" after). A
// value with an offset is moved to UTC when utc.
func dateTimeOf(v any, utc bool) (pgvalue.DateTime, bool) {
	if t, ok := v.(time.Time); ok {
		if utc {
			t = t.UTC()
		}
		return pgvalue.DateTime{Year: t.Year(), Month: int(t.Month()), Day: t.Day(), Hour: t.Hour(), Minute: t.Minute(), Second: t.Second(),
			Microsecond: t.Nanosecond() / 1000, HasDate: true, HasTime: true}, true
	}
	dt, err := pgvalue.ParseDateTime([]byte(isoText(plainText(v))))
	if err != nil || dt.Special == pgvalue.Finite && !dt.HasDate {
		return pgvalue.DateTime{}, false
	}
	if utc {
		dt = dt.UTC()
	}
	return dt, true
}

// isoText turns RFC 3339 text into PostgreSQL's ISO form: a space for the
// T, +00 for the Z.
func isoText(s string) string {
	if i := strings.IndexByte(s, 'T'); i >= 10 { // after the date, whose year may have more than four digits
		s = s[:i] + " " + s[i+1:]
	}
	body, bc := strings.CutSuffix(s, " BC")
	if strings.HasSuffix(body, "Z") {
		body = strings.TrimSuffix(body, "Z") + "+00"
	}
	if bc {
		body += " BC"
	}
	return body
}

// dateTimeOutput is a date, timestamp or timestamptz (utc) value's
// output text with DateStyle ISO and TimeZone UTC, as an array prints its
// elements: "2024-05-01 10:00:00.5+00", " BC" last.
func dateTimeOutput(v any, typ string) (string, bool) {
	dt, ok := dateTimeOf(v, typ == "timestamptz")
	if !ok {
		return "", false
	}
	if dt.Special == pgvalue.Finite {
		dt.HasTime = typ != "date"
		dt.HasOffset, dt.Offset = typ == "timestamptz", 0
		if !dt.HasTime {
			dt.Hour, dt.Minute, dt.Second, dt.Microsecond = 0, 0, 0, 0
		}
	}
	return string(pgvalue.AppendDateTime(nil, dt)), true
}
