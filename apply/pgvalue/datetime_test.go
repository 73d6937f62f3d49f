package pgvalue

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
)

// postgresEpoch is where PostgreSQL's binary dates and timestamps count
// from.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// microsSincePostgresEpoch is t in the unit and from the origin of
// PostgreSQL's binary timestamps (time.Duration would overflow beyond 292
// years).
func microsSincePostgresEpoch(t time.Time) int64 {
	return (t.Unix()-postgresEpoch.Unix())*1_000_000 + int64(t.Nanosecond()/1000)
}

// Dates, times and timestamps: the ISO text PostgreSQL prints parses to
// the value its binary send form holds, and AppendDateTime prints it
// back. timestamptz is printed in several time zones: the offsets differ,
// the instant must not.
func TestParseDateTimeAgainstBinary(t *testing.T) {
	conn := connect(t)
	cases := []struct {
		typ                  string
		zones                []string // TimeZone settings to print in, besides the session's
		date, clock, hasZone bool     // the parts the type has
		literals             []string
	}{
		{"date", nil, true, false, false, []string{"2000-01-01", "1999-12-31", "2000-02-29", "1900-02-28", "2024-05-01", "0001-01-01",
			"0001-12-31 BC", "0001-01-01 BC", "0005-02-29 BC", "0401-02-29 BC", "0400-02-29", "4713-01-01 BC", "5874897-12-31", "10000-01-01", "infinity", "-infinity"}},
		{"timestamp", nil, true, true, false, []string{"2000-01-01 00:00:00", "1999-12-31 23:59:59.999999", "2024-05-01 10:00:00.5",
			"1970-01-01 00:00:00.000001", "2000-02-29 23:59:59.123", "0001-01-01 00:00:00 BC", "4713-01-01 00:00:00 BC",
			"294276-12-31 23:59:59.999999", "1883-11-18 12:00:00", "infinity", "-infinity"}},
		{"timestamptz", []string{"Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham", "UTC", "Europe/Amsterdam"}, true, true, true,
			[]string{"2000-01-01 00:00:00+00", "2024-05-01 10:00:00.123456+02", "2024-03-10 06:59:59.999999+00", "2024-03-10 07:00:00+00",
				"1883-11-18 16:59:59+00", "1800-01-01 00:00:00+00", "0002-12-31 23:30:00+00 BC", "4713-01-01 12:00:00+00 BC",
				"294276-12-31 23:59:59.999999+00", "1969-12-31 23:59:59.999999+00", "infinity", "-infinity"}},
		{"time", nil, false, true, false, []string{"00:00:00", "23:59:59.999999", "24:00:00", "12:34:56.5", "00:00:00.000001"}},
		{"timetz", nil, false, true, true, []string{"00:00:00+00", "23:59:59.999999-15:59", "24:00:00+15:59", "12:00:00+05:30",
			"12:00:00-04:56:02", "01:02:03.5-00:00:01", "10:00:00-05"}},
	}
	for _, c := range cases {
		for _, zone := range append([]string{"America/New_York"}, c.zones...) {
			testenv.MustExec(t, conn, "SET TimeZone = '"+zone+"'")
			for _, s := range samples(t, conn, c.typ, c.literals) {
				dt := parseDateTimeOK(t, c.typ, s)
				us, west, special := binaryDateTime(c.typ, s.bin)
				got := clockMicros(dt)
				if dt.HasDate {
					got = microsSincePostgresEpoch(dt.Time())
				}
				switch {
				case special != Finite:
					if dt.Special != special || dt.HasDate || dt.HasTime || dt.HasOffset {
						t.Errorf("%s %s: %q parses to %+v, want %v", c.typ, s.literal, s.text, dt, special)
					}
				case dt.Special != Finite || dt.HasDate != c.date || dt.HasTime != c.clock || dt.HasOffset != c.hasZone || got != us || c.typ == "timetz" && dt.Offset != -west:
					t.Errorf("%s %s in %s: %q parses to %+v, PostgreSQL holds %d µs at %d s west of UTC", c.typ, s.literal, zone, s.text, dt, us, west)
				}
				if u := dt.UTC(); u.Offset != 0 || dt.Special == Finite && c.date && !u.Time().Equal(dt.Time()) {
					t.Errorf("%s %s in %s: UTC() %+v is another instant than %+v", c.typ, s.literal, zone, u, dt)
				}
			}
		}
	}
	testenv.MustExec(t, conn, sessionSettings)
}

// binaryDateTime reads the send form of a date or time type: microseconds
// since 2000-01-01 (date: its days in microseconds) or since midnight
// (time, timetz), the seconds west of UTC of a timetz, or an infinity.
func binaryDateTime(typ string, b []byte) (us int64, west int, special Special) {
	switch typ {
	case "date":
		days := int32(binary.BigEndian.Uint32(b))
		switch days {
		case math.MaxInt32:
			return 0, 0, PosInfinity
		case math.MinInt32:
			return 0, 0, NegInfinity
		}
		return int64(days) * 86400_000_000, 0, Finite
	case "timetz":
		west = int(int32(binary.BigEndian.Uint32(b[8:])))
	}
	us = int64(binary.BigEndian.Uint64(b))
	switch {
	case typ == "time" || typ == "timetz":
	case us == math.MaxInt64:
		return 0, 0, PosInfinity
	case us == math.MinInt64:
		return 0, 0, NegInfinity
	}
	return us, west, Finite
}

// clockMicros is the time of day of dt in microseconds.
func clockMicros(dt DateTime) int64 {
	return int64(dt.Hour)*3600_000_000 + int64(dt.Minute)*60_000_000 + int64(dt.Second)*1_000_000 + int64(dt.Microsecond)
}

// parseDateTimeOK parses a sample, and checks that AppendDateTime prints
// it as PostgreSQL did.
func parseDateTimeOK(t *testing.T, typ string, s sample) DateTime {
	t.Helper()
	dt, err := ParseDateTime(s.text)
	if err != nil {
		t.Errorf("%s %s: %v", typ, s.literal, err)
	}
	if back := AppendDateTime(nil, dt); string(back) != string(s.text) {
		t.Errorf("%s %s: AppendDateTime gives %q, PostgreSQL printed %q", typ, s.literal, back, s.text)
	}
	return dt
}

// Intervals: the text IntervalStyle postgres prints parses to the months,
// days and microseconds of the binary send form, and AppendInterval
// prints it back.
func TestParseIntervalAgainstBinary(t *testing.T) {
	conn := connect(t)
	literals := []string{"0", "1 year 2 mons 3 days 04:05:06.789", "-1 years -2 mons +3 days -04:05:06.789", "1 day -1 second", "-1 day +1 second",
		"-178000000 years", "178000000 years", "2147483647 months", "-2147483648 months", "2147483647 days", "-2147483648 days",
		"2562047788:00:54.775807", "-2562047788:00:54.775807", "1 mon -1 days", "-0.000001 sec", "14 months", "-14 months", "1 year",
		"1 mon", "1 day", "-1 day", "1.5 seconds", "-00:00:01", "100 hours", "-1 years +1 mons", "1 years -1 mons -1 days +00:00:00.5",
		"-1 mons 1 day -1 sec", "1 year 00:00:01"}
	all := samples(t, conn, "interval", literals)
	// The most negative time part prints, though interval_in cannot read
	// it back.
	least := "interval '-2562047788:00:54.775807' - interval '1 microsecond'"
	all = append(all, sample{literal: least, text: []byte(scalar(t, conn, "SELECT "+least)), bin: binaryRows(t, conn, "SELECT "+least)[0][0]})
	for _, s := range all {
		iv, err := ParseInterval(s.text)
		want := Interval{
			Microseconds: int64(binary.BigEndian.Uint64(s.bin)),
			Days:         int32(binary.BigEndian.Uint32(s.bin[8:])),
			Months:       int32(binary.BigEndian.Uint32(s.bin[12:])),
		}
		if err != nil || iv != want {
			t.Errorf("interval %s: %q parses to %+v (%v), PostgreSQL holds %+v", s.literal, s.text, iv, err, want)
		}
		if back := AppendInterval(nil, want); string(back) != string(s.text) {
			t.Errorf("interval %s: AppendInterval gives %q, PostgreSQL printed %q", s.literal, back, s.text)
		}
	}
}

// Text of the other DateStyles and IntervalStyles, or not a date at all:
// refused.
func TestParseDateTimeRefuses(t *testing.T) {
	for _, s := range []string{"", "Wed May 01 10:00:00 2024 UTC", "05/01/2024", "01.05.2024", "2024-13-01", "2024-02-30", "2023-02-29", "1900-02-29", "0101-02-29 BC",
		"2024-05-01 10:00:00.1234567+00", "2024-05-01T10:00:00", "2024-05-01 25:00:00", "2024-05-01 24:00:00", "10:60:00",
		"10:00:00+5", "10:00:00+05:60", "infinity BC", "Infinity", "2024-05-01 BC BC", "24:00:00.5", "2024-5-01", "1 BC", " 2024-05-01"} {
		if dt, err := ParseDateTime([]byte(s)); err == nil {
			t.Errorf("ParseDateTime(%q) = %+v", s, dt)
		}
	}
	for _, s := range []string{"", "@ 1 year", "P1Y2M", "1-2", "1 year 1 year", "1 mon 1 year", "1 yearss", "1 week", "00:00", "00:60:00",
		"1 day 00:00:00 1 year", "2562047788:00:54.775808", "-2562047788:00:54.775809", "178956971 years", "2147483648 days", "1 day  2 mons"} {
		if iv, err := ParseInterval([]byte(s)); err == nil {
			t.Errorf("ParseInterval(%q) = %+v", s, iv)
		}
	}
}
