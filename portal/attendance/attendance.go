// Package attendance turns stored events into what staff report: per-child
// sessions (arrival–departure pairs) and per-hour occupancy per centre per
// day (the usage statistic of FAQ Q24), exported as CSV and Excel.
//
// It is pure computation over events the portal already stored; it reads
// no store and keeps no state. Days and hours are KST (firmware.KST).
package attendance

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"kiumtap/firmware"
	"kiumtap/protocol"
)

// Session is a child's stay at a centre: an arrival and the departure
// that closed it.
type Session struct {
	Centre, Child string
	Day           firmware.Date // KST day of the arrival
	In            time.Time
	Out           time.Time // zero if still open (no departure yet)
	Auto          bool      // closed by an auto_check_out event
	Flags         []string  // union of the events' flags (early, late, roster_stale, ...)
}

// Open reports whether the session has no departure.
func (s Session) Open() bool { return s.Out.IsZero() }

// Minutes is the length of a closed session in minutes, between the
// minutes of arrival and departure as reports show them (14:30:59 to
// 16:10:00 is 100, as 14:30 to 16:10 reads); 0 if open.
func (s Session) Minutes() int {
	in, out := s.In.Truncate(time.Minute), s.Out.Truncate(time.Minute)
	if s.Open() || out.Before(in) {
		return 0
	}
	return int(out.Sub(in) / time.Minute)
}

// Sessions pairs each check_in with the next check_out or auto_check_out
// of the same child at the same centre, in time order.
//
//   - Events may come in any order and from several terminals: they are
//     sorted by Time, then Seq (then device, to be deterministic). An event
//     given twice (same centre, device, log and sequence) counts once.
//   - Refused taps (duplicate, no_data, not_in_use, unknown_card,
//     replaced_card), any other outcome, and events naming no child are
//     ignored.
//   - A check_in while the child is already in (the terminal should not
//     decide one) closes nothing: the earlier session stays open-ended
//     (Out zero) and a new open session starts at the new arrival.
//   - A check_out that corrects an automatic one (reason
//     departure_after_auto_check_out: the child tapped on the way out
//     after the closing sweep) moves the end of the session the automatic
//     check-out closed that day to the real departure; it is no longer
//     marked automatic.
//   - A check_out or auto_check_out with no open session (its arrival is
//     outside the events given, such as the month before) is dropped: a
//     session needs its arrival.
//   - A session never closed has a zero Out.
//
// Sessions come out sorted by centre, arrival time and child.
func Sessions(events []protocol.Event) []Session {
	type logSeq struct {
		centre, device, log string
		seq                 uint64
	}
	seen := map[logSeq]bool{}
	evs := make([]protocol.Event, 0, len(events))
	for _, e := range events {
		switch firmware.Outcome(e.Outcome) {
		case firmware.CheckIn, firmware.CheckOut, firmware.AutoCheckOut:
		default:
			continue
		}
		if e.Child == "" {
			continue
		}
		k := logSeq{e.Centre, e.Device, e.Log, e.Seq}
		if seen[k] {
			continue
		}
		seen[k] = true
		evs = append(evs, e)
	}
	slices.SortStableFunc(evs, func(a, b protocol.Event) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Device, b.Device))
	})
	type who struct{ centre, child string }
	open := map[who]int{}       // index in out of the child's open session
	autoClosed := map[who]int{} // index of the session an auto_check_out closed last
	var out []Session
	for _, e := range evs {
		k := who{e.Centre, e.Child}
		i, in := open[k]
		switch firmware.Outcome(e.Outcome) {
		case firmware.CheckIn:
			open[k] = len(out)
			delete(autoClosed, k)
			out = append(out, Session{
				Centre: e.Centre, Child: e.Child, Day: firmware.DateOf(e.Time),
				In: e.Time, Flags: union(nil, e.Flags),
			})
		default: // check_out, auto_check_out
			if !in {
				j, closed := autoClosed[k]
				if closed && firmware.Reason(e.Reason) == firmware.ReasonCorrectsAutoExit && firmware.DateOf(out[j].Out) == firmware.DateOf(e.Time) {
					out[j].Out, out[j].Auto = e.Time, false
					out[j].Flags = union(slices.DeleteFunc(out[j].Flags, func(f string) bool { return f == string(firmware.FlagAuto) }), e.Flags)
					delete(autoClosed, k)
				}
				continue
			}
			s := &out[i]
			s.Out = e.Time
			s.Auto = e.Outcome == string(firmware.AutoCheckOut)
			s.Flags = union(s.Flags, e.Flags)
			delete(open, k)
			if s.Auto {
				autoClosed[k] = i
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Session) int {
		return cmp.Or(cmp.Compare(a.Centre, b.Centre), a.In.Compare(b.In), cmp.Compare(a.Child, b.Child))
	})
	return out
}

// union appends to flags those of more it lacks, in order.
func union(flags, more []string) []string {
	for _, f := range more {
		if !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	return flags
}

// Occupancy is a centre's day: for each KST hour, how many children were
// inside at any moment of it.
type Occupancy struct {
	Centre   string
	Day      firmware.Date
	Hours    [24]int // Hours[14]: children inside at some moment of 14:00–14:59
	Children int     // distinct children inside at some moment of the day
}

// MaxStay bounds how long a session counts as presence: a child is never
// at a care centre for a day and more; a longer session lacks its real
// departure.
const MaxStay = 24 * time.Hour

// Occupancies counts, per centre and KST day, for each hour 0..23, how
// many distinct children were inside at any moment of that hour. A session
// is presence from In up to, not including, Out (a child leaving at 16:00
// does not count in hour 16; one leaving at 16:10 does), with these
// exceptions, since a missing departure must not invent presence (Q24):
//
//   - an open session (no Out) counts only at its arrival, in the arrival's
//     hour;
//   - a session closed by an auto_check_out on a later day than its arrival
//     (the terminal was off at closing and closed it when it next ran)
//     counts until the end of the arrival's day;
//   - no session counts for more than MaxStay after its arrival.
//
// A session across midnight counts on both days. Days with no presence are
// left out; the result is sorted by centre and day.
func Occupancies(sessions []Session) []Occupancy {
	type key struct {
		centre string
		day    firmware.Date
	}
	type dayCount struct {
		hours    [24]map[string]bool
		children map[string]bool
	}
	days := map[key]*dayCount{}
	mark := func(centre, child string, from, to time.Time) { // presence over [from, to], to inclusive
		for d := firmware.DateOf(from); !to.Before(d.At(0)); d = d.AddDays(1) {
			k := key{centre, d}
			c := days[k]
			if c == nil {
				c = &dayCount{children: map[string]bool{}}
				days[k] = c
			}
			first, last := 0, 23
			if d == firmware.DateOf(from) {
				first = from.In(firmware.KST).Hour()
			}
			if d == firmware.DateOf(to) {
				last = to.In(firmware.KST).Hour()
			}
			for h := first; h <= last; h++ {
				if c.hours[h] == nil {
					c.hours[h] = map[string]bool{}
				}
				c.hours[h][child] = true
			}
			c.children[child] = true
		}
	}
	for _, s := range sessions {
		if s.In.IsZero() {
			continue
		}
		end := s.Out
		if s.Auto && !end.IsZero() && firmware.DateOf(end) != firmware.DateOf(s.In) {
			end = firmware.DateOf(s.In).AddDays(1).At(0)
		}
		end = minTime(end, s.In.Add(MaxStay))
		if s.Open() || !end.After(s.In) {
			mark(s.Centre, s.Child, s.In, s.In)
			continue
		}
		mark(s.Centre, s.Child, s.In, end.Add(-time.Nanosecond))
	}
	out := make([]Occupancy, 0, len(days))
	for k, c := range days {
		o := Occupancy{Centre: k.centre, Day: k.day, Children: len(c.children)}
		for h, set := range c.hours {
			o.Hours[h] = len(set)
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Occupancy) int {
		return cmp.Or(cmp.Compare(a.Centre, b.Centre), a.Day.At(0).Compare(b.Day.At(0)))
	})
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Month returns the sessions and the occupancies of month, written
// "2026-11", by their KST day (a session's is its arrival's), in the
// order given.
func Month(month string, sessions []Session, occ []Occupancy) ([]Session, []Occupancy, error) {
	y, m, err := parseMonth(month)
	if err != nil {
		return nil, nil, err
	}
	in := func(d firmware.Date) bool { return d.Year == y && d.Month == m }
	var ss []Session
	for _, s := range sessions {
		if in(s.Day) {
			ss = append(ss, s)
		}
	}
	var oo []Occupancy
	for _, o := range occ {
		if in(o.Day) {
			oo = append(oo, o)
		}
	}
	return ss, oo, nil
}

func parseMonth(month string) (int, time.Month, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return 0, 0, fmt.Errorf("attendance: month %q: want YYYY-MM, e.g. 2026-11", month)
	}
	return t.Year(), t.Month(), nil
}
