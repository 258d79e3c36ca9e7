package attendance

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/protocol"
)

// at is a KST time: "11-03 14:30" in 2026.
func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2026-"+s, firmware.KST)
	if err != nil {
		panic(err)
	}
	return t
}

// ev is an event of centre m1, device t1: "c1 check_in 11-03 14:30 seq
// flags...". The seq orders events of the same time.
func ev(child, outcome, when string, seq uint64, flags ...string) protocol.Event {
	return evAt("m1", child, outcome, when, seq, flags...)
}

func evAt(centre, child, outcome, when string, seq uint64, flags ...string) protocol.Event {
	return protocol.Event{
		V: protocol.Version, ID: fmt.Sprintf("t1-%d", seq), Centre: centre, Device: "t1", Log: "L1", Seq: seq,
		Time: at(when), ClockSynced: true, Child: child, Outcome: outcome, Flags: flags,
	}
}

// corrects marks a check_out as the departure that corrects an automatic
// check-out.
func corrects(e protocol.Event) protocol.Event {
	e.Reason = string(firmware.ReasonCorrectsAutoExit)
	return e
}

// show writes a session compactly: "m1 c1 2026-11-03 14:30-16:10 auto [early]".
func show(s Session) string {
	out := "open"
	if !s.Open() {
		out = s.Out.In(firmware.KST).Format("01-02 15:04")
	}
	auto := ""
	if s.Auto {
		auto = " auto"
	}
	return fmt.Sprintf("%s %s %s %s-%s%s %v", s.Centre, s.Child, s.Day, s.In.In(firmware.KST).Format("01-02 15:04"), out, auto, s.Flags)
}

func TestSessions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []protocol.Event
		want   []string
	}{
		{"a pair", []protocol.Event{
			ev("c1", "check_in", "11-03 14:30", 1),
			ev("c1", "check_out", "11-03 16:10", 2),
		}, []string{"m1 c1 2026-11-03 11-03 14:30-11-03 16:10 []"}},
		{"a departure after the automatic check-out corrects it", []protocol.Event{
			ev("c1", "check_in", "11-03 15:00", 1),
			ev("c1", "auto_check_out", "11-03 19:30", 2, "auto_check_out"),
			corrects(ev("c1", "check_out", "11-03 19:55", 3)),
		}, []string{"m1 c1 2026-11-03 11-03 15:00-11-03 19:55 []"}},
		{"a plain check_out after an automatic one corrects nothing", []protocol.Event{
			ev("c1", "check_in", "11-03 15:00", 1),
			ev("c1", "auto_check_out", "11-03 19:30", 2, "auto_check_out"),
			ev("c1", "check_out", "11-03 19:55", 3),
		}, []string{"m1 c1 2026-11-03 11-03 15:00-11-03 19:30 auto [auto_check_out]"}},
		{"auto check-out", []protocol.Event{
			ev("c1", "check_in", "11-03 13:40", 1, "early"),
			ev("c1", "auto_check_out", "11-03 19:30", 2, "auto_check_out"),
		}, []string{"m1 c1 2026-11-03 11-03 13:40-11-03 19:30 auto [early auto_check_out]"}},
		{"an open session", []protocol.Event{
			ev("c1", "check_in", "11-03 14:30", 1),
		}, []string{"m1 c1 2026-11-03 11-03 14:30-open []"}},
		{"across midnight: the arrival's day", []protocol.Event{
			ev("c1", "check_in", "11-03 23:30", 1),
			ev("c1", "check_out", "11-04 00:20", 2),
		}, []string{"m1 c1 2026-11-03 11-03 23:30-11-04 00:20 []"}},
		{"unsorted input", []protocol.Event{
			ev("c2", "check_out", "11-03 17:00", 4),
			ev("c1", "check_out", "11-03 16:00", 3),
			ev("c1", "check_in", "11-03 14:00", 1),
			ev("c2", "check_in", "11-03 14:00", 2),
		}, []string{
			"m1 c1 2026-11-03 11-03 14:00-11-03 16:00 []",
			"m1 c2 2026-11-03 11-03 14:00-11-03 17:00 []",
		}},
		{"the same second: by sequence", []protocol.Event{
			ev("c1", "check_out", "11-03 14:00", 2),
			ev("c1", "check_in", "11-03 14:00", 1),
		}, []string{"m1 c1 2026-11-03 11-03 14:00-11-03 14:00 []"}},
		{"refused outcomes ignored", []protocol.Event{
			ev("c1", "not_in_use", "11-03 13:00", 1),
			ev("c1", "no_data", "11-03 13:01", 2),
			ev("c1", "check_in", "11-03 14:00", 3),
			ev("c1", "duplicate", "11-03 14:00", 4),
			ev("c1", "replaced_card", "11-03 15:00", 5),
			ev("", "unknown_card", "11-03 15:30", 6),
			ev("c1", "check_out", "11-03 16:00", 7),
			ev("c1", "duplicate", "11-03 16:00", 8),
		}, []string{"m1 c1 2026-11-03 11-03 14:00-11-03 16:00 []"}},
		{"a check-in while in: the first stays open", []protocol.Event{
			ev("c1", "check_in", "11-03 14:00", 1),
			ev("c1", "check_in", "11-03 15:00", 2),
			ev("c1", "check_out", "11-03 16:00", 3),
		}, []string{
			"m1 c1 2026-11-03 11-03 14:00-open []",
			"m1 c1 2026-11-03 11-03 15:00-11-03 16:00 []",
		}},
		{"a departure without arrival is dropped", []protocol.Event{
			ev("c1", "check_out", "11-03 14:00", 1),
			ev("c1", "auto_check_out", "11-03 19:30", 2),
			ev("c1", "check_in", "11-04 14:00", 3),
			ev("c1", "check_out", "11-04 16:00", 4),
			ev("c1", "check_out", "11-04 16:30", 5),
		}, []string{"m1 c1 2026-11-04 11-04 14:00-11-04 16:00 []"}},
		{"an event given twice counts once", []protocol.Event{
			ev("c1", "check_in", "11-03 14:00", 1),
			ev("c1", "check_in", "11-03 14:00", 1),
			ev("c1", "check_out", "11-03 16:00", 2),
		}, []string{"m1 c1 2026-11-03 11-03 14:00-11-03 16:00 []"}},
		{"flags: the union", []protocol.Event{
			ev("c1", "check_in", "11-03 18:30", 1, "late", "roster_stale"),
			ev("c1", "check_out", "11-03 19:00", 2, "roster_stale"),
		}, []string{"m1 c1 2026-11-03 11-03 18:30-11-03 19:00 [late roster_stale]"}},
		{"centres apart", []protocol.Event{
			evAt("m2", "c1", "check_in", "11-03 14:00", 1),
			evAt("m1", "c1", "check_out", "11-03 15:00", 2),
			evAt("m1", "c1", "check_in", "11-03 13:00", 3),
		}, []string{
			"m1 c1 2026-11-03 11-03 13:00-11-03 15:00 []",
			"m2 c1 2026-11-03 11-03 14:00-open []",
		}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.events)
			var got []string
			for _, s := range Sessions(tc.events) {
				got = append(got, show(s))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i := range in {
				if in[i].Seq != tc.events[i].Seq {
					t.Fatal("Sessions reordered its input")
				}
			}
		})
	}
}

func TestSessionMinutes(t *testing.T) {
	for _, s := range []Session{
		{In: at("11-03 14:30"), Out: at("11-03 16:10")},
		{In: at("11-03 14:30"), Out: at("11-03 16:10").Add(59 * time.Second)},
		{In: at("11-03 14:30").Add(59 * time.Second), Out: at("11-03 16:10")},
	} {
		if got := s.Minutes(); got != 100 {
			t.Errorf("%s to %s: Minutes = %d, want 100 as the report shows 14:30 to 16:10", s.In, s.Out, got)
		}
	}
	if got := (Session{In: at("11-03 14:30"), Out: at("11-03 14:00")}).Minutes(); got != 0 {
		t.Errorf("out before in: Minutes = %d", got)
	}
	if got := (Session{In: at("11-03 14:30")}).Minutes(); got != 0 {
		t.Errorf("open: Minutes = %d", got)
	}
}

// hours lists the hours counted: "14:1 15:2".
func hours(o Occupancy) string {
	var out []string
	for h, n := range o.Hours {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d:%d", h, n))
		}
	}
	return strings.Join(out, " ")
}

func TestOccupancies(t *testing.T) {
	sess := func(child, in, out string) Session {
		s := Session{Centre: "m1", Child: child, In: at(in)}
		s.Day = firmware.DateOf(s.In)
		if out != "" {
			s.Out = at(out)
		}
		return s
	}
	auto := func(s Session) Session { s.Auto = true; return s }
	for _, tc := range []struct {
		name     string
		sessions []Session
		want     []string // "m1 2026-11-03 children=1 14:1 15:1 16:1"
	}{
		{"inside 14:30-16:10 counts in 14, 15 and 16",
			[]Session{sess("c1", "11-03 14:30", "11-03 16:10")},
			[]string{"m1 2026-11-03 children=1 14:1 15:1 16:1"}},
		{"leaving at 16:00 does not count in 16",
			[]Session{sess("c1", "11-03 14:30", "11-03 16:00")},
			[]string{"m1 2026-11-03 children=1 14:1 15:1"}},
		{"children overlap; a child twice in an hour counts once",
			[]Session{
				sess("c1", "11-03 14:00", "11-03 14:20"),
				sess("c1", "11-03 14:40", "11-03 15:30"),
				sess("c2", "11-03 15:10", "11-03 17:00"),
			},
			[]string{"m1 2026-11-03 children=2 14:1 15:2 16:1"}},
		{"across midnight: both days",
			[]Session{sess("c1", "11-03 23:30", "11-04 00:20")},
			[]string{"m1 2026-11-03 children=1 23:1", "m1 2026-11-04 children=1 0:1"}},
		{"an open session counts at its arrival only",
			[]Session{sess("c1", "11-03 14:30", ""), sess("c2", "11-03 13:00", "11-03 15:00")},
			[]string{"m1 2026-11-03 children=2 13:1 14:2"}},
		{"an auto check-out of a later day counts to midnight",
			[]Session{auto(sess("c1", "11-03 21:30", "11-05 09:00"))},
			[]string{"m1 2026-11-03 children=1 21:1 22:1 23:1"}},
		{"a departure days later counts a day at most",
			[]Session{sess("c1", "11-03 22:30", "11-09 09:00")},
			[]string{"m1 2026-11-03 children=1 22:1 23:1", "m1 2026-11-04 children=1 0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1 10:1 11:1 12:1 13:1 14:1 15:1 16:1 17:1 18:1 19:1 20:1 21:1 22:1"}},
		{"centres and days sorted",
			[]Session{
				{Centre: "m2", Child: "c9", Day: firmware.Date{Year: 2026, Month: 11, Day: 3}, In: at("11-03 10:00"), Out: at("11-03 10:30")},
				sess("c1", "11-04 14:00", "11-04 14:30"),
				sess("c1", "11-03 14:00", "11-03 14:30"),
			},
			[]string{"m1 2026-11-03 children=1 14:1", "m1 2026-11-04 children=1 14:1", "m2 2026-11-03 children=1 10:1"}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range Occupancies(tc.sessions) {
				got = append(got, fmt.Sprintf("%s %s children=%d %s", o.Centre, o.Day, o.Children, hours(o)))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestMonth(t *testing.T) {
	ss := Sessions([]protocol.Event{
		ev("c1", "check_in", "10-31 23:30", 1),
		ev("c1", "check_out", "11-01 00:30", 2),
		ev("c1", "check_in", "11-30 14:00", 3),
		ev("c1", "check_out", "11-30 15:00", 4),
		ev("c1", "check_in", "12-01 14:00", 5),
	})
	occ := Occupancies(ss)
	s, o, err := Month("2026-11", ss, occ)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 1 || s[0].Day.String() != "2026-11-30" {
		t.Errorf("sessions of November: %v", s)
	}
	// The night of Oct 31 counts on Nov 1 in the occupancy.
	if len(o) != 2 || o[0].Day.String() != "2026-11-01" || o[1].Day.String() != "2026-11-30" {
		t.Errorf("occupancy of November: %v", o)
	}
	for _, bad := range []string{"2026-13", "11-2026", "2026/11", ""} {
		if _, _, err := Month(bad, ss, occ); err == nil || !strings.Contains(err.Error(), "want YYYY-MM") {
			t.Errorf("Month(%q): %v", bad, err)
		}
	}
}
