package firmware

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func d(s string) Date {
	v, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return v
}

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, KST)
	if err != nil {
		panic(err)
	}
	return t
}

func w(a, b string) Window {
	x, _ := ParseClock(a)
	y, _ := ParseClock(b)
	return Window{x, y}
}

var (
	mwf = []time.Weekday{time.Monday, time.Wednesday, time.Friday}
	tt  = []time.Weekday{time.Tuesday, time.Thursday}
	wk  = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
)

// key gives each test card a distinct 32-hex-digit key.
func key(n byte) string { return CardKey([]byte("centre-key"), []byte{n}) }

// testRoster is a centre with four terms in the school year 2026: spring
// and autumn semesters open 13:00–19:00, summer and winter vacations
// 09:00–18:00, Hangul Day closed, 2026-11-20 a discretionary day.
func testRoster(t testing.TB) *Roster {
	r := &Roster{
		Revision: 7,
		Centre: Centre{
			ID: "mangwon1", Name: "우리동네키움센터 망원1동",
			Terms: []Term{
				{Name: "1학기", From: d("2026-03-02"), To: d("2026-07-20"), Hours: w("13:00", "19:00")},
				{Name: "여름방학", From: d("2026-07-21"), To: d("2026-08-31"), Vacation: true, Hours: w("09:00", "18:00")},
				{Name: "2학기", From: d("2026-09-01"), To: d("2026-12-31"), Hours: w("13:00", "19:00")},
				{Name: "겨울방학", From: d("2027-01-04"), To: d("2027-02-26"), Vacation: true, Hours: w("09:00", "18:00")},
			},
			Closed:        []Date{d("2026-10-09")},
			Discretionary: []Date{d("2026-11-20")},
		},
		Children: []Child{
			{"c1", "김민준"}, {"c2", "이서연"}, {"c3", "박지호"}, {"c4", "최하은"},
			{"c5", "정도윤"}, {"c6", "강서아"}, {"c7", "조예준"}, {"c8", "윤지우"},
		},
		Cards: []Card{
			{Key: key(1), ChildID: "c1", State: CardActive},
			{Key: key(11), ChildID: "c1", State: CardReplaced},
			{Key: key(12), ChildID: "c1", State: CardRevoked},
			{Key: key(2), ChildID: "c2", State: CardActive},
			{Key: key(3), ChildID: "c3", State: CardActive},
			{Key: key(4), ChildID: "c4", State: CardActive},
			{Key: key(5), ChildID: "c5", State: CardActive},
			{Key: key(6), ChildID: "c6", State: CardActive},
			{Key: key(7), ChildID: "c7", State: CardActive},
			{Key: key(8), ChildID: "c8", State: CardActive},
		},
		Bookings: []Booking{
			{ID: "b1", ChildID: "c1", Type: Regular, Status: InUse, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: mwf, Window: w("14:00", "18:00")},
			{ID: "b2", ChildID: "c2", Type: Temporary, Status: InUse, From: d("2026-11-25"), To: d("2026-11-25"), Dates: []Date{d("2026-11-25")}, Window: w("10:00", "15:00")},
			{ID: "b3", ChildID: "c3", Type: Regular, Status: Scheduled, From: d("2026-11-02"), To: d("2026-12-31"), Weekdays: wk, Window: w("13:00", "18:00")},
			{ID: "b5", ChildID: "c5", Type: Regular, Status: InUse, From: d("2026-09-01"), To: d("2026-11-23"), Weekdays: wk, Window: w("13:00", "18:00")},
			{ID: "b6a", ChildID: "c6", Type: Regular, Status: InUse, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: tt, Window: w("14:00", "18:00")},
			{ID: "b6b", ChildID: "c6", Type: SickChild, Status: InUse, From: d("2026-11-23"), To: d("2026-11-23"), Dates: []Date{d("2026-11-23")}, Window: w("09:00", "17:00")},
			{ID: "b7a", ChildID: "c7", Type: Regular, Status: Cancelled, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: wk, Window: w("13:00", "18:00")},
			{ID: "b7b", ChildID: "c7", Type: Temporary, Status: Applied, From: d("2026-11-30"), To: d("2026-11-30"), Dates: []Date{d("2026-11-30")}, Window: w("13:00", "18:00")},
			{ID: "b8", ChildID: "c8", Type: Regular, Status: InUse, From: d("2026-07-21"), To: d("2027-02-26"), Weekdays: wk, Window: w("09:00", "18:00")},
		},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecide(t *testing.T) {
	r := testRoster(t)
	inside := func(day, since string) Presence {
		return Presence{Day: d(day), Inside: true, Since: at(since), LastTap: at(since)}
	}
	left := func(day, since string) Presence {
		return Presence{Day: d(day), Since: at(since), LastTap: at(since)}
	}
	for _, tc := range []struct {
		name     string
		card     byte
		at       string
		presence Presence
		age      time.Duration
		want     Outcome
		reason   Reason
		flags    []Flag
	}{
		// Mon 2026-11-23: c1 books Mon/Wed/Fri 14:00–18:00.
		{"arrival in the window", 1, "2026-11-23 15:02:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"arrival early", 1, "2026-11-23 13:30:00", Presence{}, 0, CheckIn, ReasonArrival, []Flag{FlagEarly}},
		{"arrival late", 1, "2026-11-23 18:30:00", Presence{}, 0, CheckIn, ReasonArrival, []Flag{FlagLate}},
		{"arrival at the window's end is late", 1, "2026-11-23 18:00:00", Presence{}, 0, CheckIn, ReasonArrival, []Flag{FlagLate}},
		{"departure", 1, "2026-11-23 17:00:00", inside("2026-11-23", "2026-11-23 15:02:00"), 0, CheckOut, ReasonDeparture, nil},
		{"second tap within 60 s", 1, "2026-11-23 15:02:59", inside("2026-11-23", "2026-11-23 15:02:00"), 0, Duplicate, ReasonWithinWindow, nil},
		{"tap at 60 s is a departure", 1, "2026-11-23 15:03:00", inside("2026-11-23", "2026-11-23 15:02:00"), 0, CheckOut, ReasonDeparture, nil},
		{"re-tap just after leaving", 1, "2026-11-23 17:00:20", left("2026-11-23", "2026-11-23 17:00:00"), 0, Duplicate, ReasonWithinWindow, nil},
		{"back after leaving", 1, "2026-11-23 17:30:00", left("2026-11-23", "2026-11-23 17:00:00"), 0, CheckIn, ReasonArrival, nil},
		{"not a usage day (Tue)", 1, "2026-11-24 15:00:00", Presence{}, 0, NoData, ReasonNotUsageDay, nil},
		{"closed day (Hangul Day, Fri)", 1, "2026-10-09 15:00:00", Presence{}, 0, NoData, ReasonCentreClosed, nil},
		{"weekend", 1, "2026-11-28 15:00:00", Presence{}, 0, NoData, ReasonCentreClosed, nil},
		{"between terms", 8, "2027-01-01 10:00:00", Presence{}, 0, NoData, ReasonCentreClosed, nil},
		{"discretionary day: morning arrival not early", 1, "2026-11-20 10:00:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"discretionary day: before vacation opening", 1, "2026-11-20 08:30:00", Presence{}, 0, CheckIn, ReasonArrival, []Flag{FlagEarly}},
		// Midnight: yesterday's presence does not carry over.
		{"inside yesterday, tap today", 1, "2026-11-25 15:00:00", inside("2026-11-23", "2026-11-23 15:00:00"), 0, CheckIn, ReasonArrival, nil},
		{"across midnight is no duplicate", 1, "2026-11-24 00:00:10", inside("2026-11-23", "2026-11-23 23:59:50"), 0, NoData, ReasonNotUsageDay, nil},
		// Temporary booking on one date only.
		{"temporary: its date", 2, "2026-11-25 11:00:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"temporary: the next day", 2, "2026-11-26 11:00:00", Presence{}, 0, NotInUse, ReasonPeriodOver, nil},
		{"temporary: the day before", 2, "2026-11-24 11:00:00", Presence{}, 0, NotInUse, ReasonNotYetStarted, nil},
		{"scheduled booking (Q17)", 3, "2026-11-23 15:00:00", Presence{}, 0, NotInUse, ReasonScheduled, nil},
		{"no booking at all", 4, "2026-11-23 15:00:00", Presence{}, 0, NotInUse, ReasonNoBooking, nil},
		{"booking ended yesterday", 5, "2026-11-24 15:00:00", Presence{}, 0, NotInUse, ReasonPeriodOver, nil},
		{"booking's last day", 5, "2026-11-23 15:00:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		// Two bookings of different types.
		{"two bookings: the sick-child date", 6, "2026-11-23 09:30:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"two bookings: the regular day", 6, "2026-11-24 14:30:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"two bookings: neither day", 6, "2026-11-25 14:30:00", Presence{}, 0, NoData, ReasonNotUsageDay, nil},
		{"cancelled and applied: applied is the news", 7, "2026-11-23 15:00:00", Presence{}, 0, NotInUse, ReasonApplied, nil},
		// Term change: the same booking under vacation and semester hours.
		{"last vacation day", 8, "2026-08-31 09:30:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		{"first semester day", 8, "2026-09-01 09:30:00", Presence{}, 0, CheckIn, ReasonArrival, nil},
		// Cards.
		{"unknown card", 99, "2026-11-23 15:00:00", Presence{}, 0, UnknownCard, ReasonCardUnbound, nil},
		{"replaced card (Q20)", 11, "2026-11-23 15:00:00", Presence{}, 0, ReplacedCard, ReasonCardReplaced, nil},
		{"revoked card", 12, "2026-11-23 15:00:00", Presence{}, 0, ReplacedCard, ReasonCardRevoked, nil},
		// A stale roster still decides.
		{"stale roster", 1, "2026-11-23 15:00:00", Presence{}, 73 * time.Hour, CheckIn, ReasonArrival, []Flag{FlagRosterStale}},
		{"stale roster, refused", 4, "2026-11-23 15:00:00", Presence{}, 100 * time.Hour, NotInUse, ReasonNoBooking, []Flag{FlagRosterStale}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(Input{
				Tap:       Tap{CardKey: key(tc.card), At: at(tc.at)},
				Roster:    r,
				RosterAge: tc.age,
				Presence:  func(string) Presence { return tc.presence },
			})
			if got.Outcome != tc.want || got.Reason != tc.reason || !slices.Equal(got.Flags, tc.flags) {
				t.Errorf("Decide = %s/%s %v, want %s/%s %v", got.Outcome, got.Reason, got.Flags, tc.want, tc.reason, tc.flags)
			}
		})
	}
}

func TestCloseDay(t *testing.T) {
	r := testRoster(t)
	presence := map[string]Presence{
		"c1": {Day: d("2026-11-23"), Inside: true, Since: at("2026-11-23 15:00:00")},
		"c2": {Day: d("2026-11-23"), Inside: false, Since: at("2026-11-23 16:00:00")},
		"c6": {Day: d("2026-11-22"), Inside: true, Since: at("2026-11-22 10:00:00")},
	}
	got := CloseDay(r, presence, at("2026-11-23 19:20:00"), Settings{})
	if len(got) != 1 || got[0].ChildID != "c6" || got[0].Reason != ReasonDayRolledOver {
		t.Errorf("before closing + grace: %+v, want only c6 left from yesterday", got)
	}
	got = CloseDay(r, presence, at("2026-11-23 19:30:00"), Settings{})
	if len(got) != 2 || got[0].ChildID != "c1" || got[0].Outcome != AutoCheckOut || !got[0].Has(FlagAuto) || got[0].Reason != ReasonClosingTime {
		t.Errorf("at closing + grace: %+v", got)
	}
}

func TestRosterValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Roster)
		field string
	}{
		{"booking ends before it starts", func(r *Roster) { r.Bookings[0].To = d("2026-08-01") }, "bookings[0]"},
		{"term overlap", func(r *Roster) { r.Centre.Terms[1].From = d("2026-07-01") }, "centre.terms[1]"},
		{"closing before opening", func(r *Roster) { r.Centre.Terms[0].Hours = w("19:00", "13:00") }, "centre.terms[0].hours"},
		{"temporary without dates", func(r *Roster) { r.Bookings[1].Dates = nil }, "bookings[1].dates"},
		{"date outside booking", func(r *Roster) { r.Bookings[1].Dates = []Date{d("2026-12-25")} }, "bookings[1].dates[0]"},
		{"card of nobody", func(r *Roster) { r.Cards[0].ChildID = "zz" }, "cards[0].child"},
		{"bad card key", func(r *Roster) { r.Cards[0].Key = "DEADBEEF" }, "cards[0].key"},
		{"bad state", func(r *Roster) { r.Cards[0].State = "lost" }, "cards[0].state"},
		{"bad status", func(r *Roster) { r.Bookings[0].Status = "in use" }, "bookings[0].status"},
		{"bad type", func(r *Roster) { r.Bookings[0].Type = "weekly" }, "bookings[0].type"},
		{"duplicate child", func(r *Roster) { r.Children[1].ID = "c1" }, "children[1].id"},
		{"bad weekday", func(r *Roster) { r.Bookings[0].Weekdays = []time.Weekday{9} }, "bookings[0].weekdays"},
		{"no terms", func(r *Roster) { r.Centre.Terms = nil }, "centre.terms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRoster(t)
			tc.mod(r)
			err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), "roster: "+tc.field+":") {
				t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

func TestDatesAndClocks(t *testing.T) {
	for _, bad := range []string{"2026-02-30", "2026-13-01", "26-11-22", "", "2026/11/22"} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q): no error", bad)
		}
	}
	for _, bad := range []string{"25:00", "12:60", "9:00", "24:01", "ab:cd", ""} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q): no error", bad)
		}
	}
	var x struct {
		D Date  `json:"d"`
		C Clock `json:"c"`
	}
	if err := json.Unmarshal([]byte(`{"d":"2026-11-22","c":"24:00"}`), &x); err != nil || x.D != d("2026-11-22") || x.C != 24*60 {
		t.Errorf("JSON: %+v, %v", x, err)
	}
	if got := DateOf(time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC)); got != d("2026-11-23") {
		t.Errorf("15:30 UTC is %v in KST, want the next day", got)
	}
}

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{"김민준": "김*준", "이서": "이*", "남궁민수": "남**수", "김": "김", "": ""} {
		if got := MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPresenceAfter(t *testing.T) {
	in := Presence{Day: d("2026-11-23"), Inside: true, Since: at("2026-11-23 15:00:00"), LastTap: at("2026-11-23 15:00:00")}
	for _, tc := range []struct {
		name   string
		dec    Decision
		when   string
		inside bool
		day    string
		since  string
	}{
		{"departure", Decision{Outcome: CheckOut, ChildID: "c1"}, "2026-11-23 17:00:00", false, "2026-11-23", "2026-11-23 17:00:00"},
		{"refusal keeps presence", Decision{Outcome: NoData, ChildID: "c1"}, "2026-11-23 16:00:00", true, "2026-11-23", "2026-11-23 15:00:00"},
		{"next day starts empty", Decision{Outcome: NotInUse, ChildID: "c1"}, "2026-11-24 15:00:00", false, "2026-11-24", ""},
		{"auto check-out closes its own day", Decision{Outcome: AutoCheckOut, ChildID: "c1"}, "2026-11-24 08:00:00", false, "2026-11-23", "2026-11-24 08:00:00"},
		{"unknown card changes nothing", Decision{Outcome: UnknownCard, ChildID: "c1"}, "2026-11-23 16:00:00", true, "2026-11-23", "2026-11-23 15:00:00"},
	} {
		got := in.After(tc.dec, at(tc.when))
		var since time.Time
		if tc.since != "" {
			since = at(tc.since)
		}
		if got.Inside != tc.inside || got.Day != d(tc.day) || !got.Since.Equal(since) {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}
