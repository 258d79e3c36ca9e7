package firmware

import (
	"fmt"
	"time"
)

// KST is the centres' time zone: Korea keeps no daylight saving time, so a
// fixed zone is exact and needs no tz database on the device.
var KST = time.FixedZone("KST", 9*60*60)

// Date is a calendar day in KST.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the KST calendar day of t.
func DateOf(t time.Time) Date {
	y, m, d := t.In(KST).Date()
	return Date{y, m, d}
}

// ParseDate parses YYYY-MM-DD and rejects days that do not exist.
func ParseDate(s string) (Date, error) {
	t, err := time.ParseInLocation(time.DateOnly, s, KST)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date of the form 2026-03-02", s)
	}
	return DateOf(t), nil
}

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// At returns the instant of clock c on day d in KST.
func (d Date) At(c Clock) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, int(c), 0, 0, KST)
}

// Weekday returns d's day of the week.
func (d Date) Weekday() time.Weekday { return d.At(0).Weekday() }

// Before reports whether d is earlier than e.
func (d Date) Before(e Date) bool { return d.At(0).Before(e.At(0)) }

// AddDays returns the day n days after d.
func (d Date) AddDays(n int) Date { return DateOf(d.At(0).AddDate(0, 0, n)) }

// MarshalText implements encoding.TextMarshaler.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// JSONWords says what a Date takes, for error messages.
func (Date) JSONWords() string { return `a date such as "2026-11-23"` }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Clock is a time of day in minutes after midnight, 00:00 to 24:00.
type Clock int

// ParseClock parses HH:MM.
func ParseClock(s string) (Clock, error) {
	var h, m int
	if n, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || n != 2 || len(s) != 5 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day of the form 15:00", s)
	}
	return Clock(h*60 + m), nil
}

// ClockOf returns the KST time of day of t, in whole minutes.
func ClockOf(t time.Time) Clock {
	t = t.In(KST)
	return Clock(t.Hour()*60 + t.Minute())
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// MarshalText implements encoding.TextMarshaler.
func (c Clock) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// JSONWords says what a Clock takes, for error messages.
func (Clock) JSONWords() string { return `a time of day such as "13:00"` }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Clock) UnmarshalText(b []byte) error {
	v, err := ParseClock(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Window is a daily time window [Start, End).
type Window struct {
	Start Clock `json:"start"`
	End   Clock `json:"end"`
}

func (w Window) String() string { return w.Start.String() + "–" + w.End.String() }
