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
	// Earlier days close first.
	if len(got) != 2 || got[0].ChildID != "c6" || got[1].ChildID != "c1" || got[1].Outcome != AutoCheckOut || !got[1].Has(FlagAuto) || got[1].Reason != ReasonClosingTime {
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

// After closing plus the grace period (Mon 2026-11-23: 19:00 + 30 min), a
// tap never makes an arrival: a child checked out automatically leaves
// (that departure corrects the automatic one), any other child is refused
// with 운영 종료.
func TestAfterClosing(t *testing.T) {
	r := testRoster(t)
	auto := Presence{Day: d("2026-11-23"), Since: at("2026-11-23 19:30:00"), LastTap: at("2026-11-23 19:30:00"), AutoOut: true}
	for _, tc := range []struct {
		name     string
		at       string
		presence Presence
		want     Outcome
		reason   Reason
	}{
		{"checked out automatically, leaving", "2026-11-23 19:55:00", auto, CheckOut, ReasonCorrectsAutoExit},
		{"checked out automatically a moment ago: not a duplicate", "2026-11-23 19:30:20", auto, CheckOut, ReasonCorrectsAutoExit},
		{"never arrived", "2026-11-23 19:55:00", Presence{}, NoData, ReasonAfterClosing},
		{"left before closing", "2026-11-23 19:55:00", Presence{Day: d("2026-11-23"), Since: at("2026-11-23 17:00:00")}, NoData, ReasonAfterClosing},
		{"after the corrected departure", "2026-11-23 20:10:00", Presence{Day: d("2026-11-23"), Since: at("2026-11-23 19:55:00")}, NoData, ReasonAfterClosing},
		{"still inside (no sweep yet): a departure", "2026-11-23 19:55:00", Presence{Day: d("2026-11-23"), Inside: true, Since: at("2026-11-23 15:00:00")}, CheckOut, ReasonDeparture},
		{"after closing, within the grace period: a late arrival", "2026-11-23 19:10:00", Presence{}, CheckIn, ReasonArrival},
		{"automatic check-out yesterday: today is a new day", "2026-11-25 15:00:00", Presence{Day: d("2026-11-23"), Since: at("2026-11-23 19:30:00"), AutoOut: true}, CheckIn, ReasonArrival},
	} {
		got := Decide(Input{Tap: Tap{CardKey: key(1), At: at(tc.at)}, Roster: r, Presence: func(string) Presence { return tc.presence }})
		if got.Outcome != tc.want || got.Reason != tc.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tc.name, got.Outcome, got.Reason, tc.want, tc.reason)
		}
	}
	// An automatic check-out leaves the presence marked; the corrected
	// departure clears the mark.
	p := Presence{Day: d("2026-11-23"), Inside: true, Since: at("2026-11-23 15:00:00")}
	p = p.After(Decision{Outcome: AutoCheckOut, ChildID: "c1"}, at("2026-11-23 19:30:00"))
	if p.Inside || !p.AutoOut {
		t.Fatalf("after the automatic check-out: %+v", p)
	}
	if p = p.After(Decision{Outcome: CheckOut, ChildID: "c1"}, at("2026-11-23 19:55:00")); p.AutoOut || !p.Since.Equal(at("2026-11-23 19:55:00")) {
		t.Fatalf("after the corrected departure: %+v", p)
	}
}

// When a child's bookings give several reasons not to arrive, the most
// actionable one wins, whatever the bookings' order (refusalOrder).
func TestRefusalPrecedence(t *testing.T) {
	monday := "2026-11-23 15:00:00"
	book := func(id string, typ BookingType, st BookingStatus, from, to string, days []time.Weekday, dates ...string) Booking {
		b := Booking{ID: id, ChildID: "c9", Type: typ, Status: st, From: d(from), To: d(to), Weekdays: days, Window: w("13:00", "18:00")}
		for _, x := range dates {
			b.Dates = append(b.Dates, d(x))
		}
		return b
	}
	inUseTT := book("tt", Regular, InUse, "2026-09-01", "2026-12-31", tt)
	schedToday := book("st", Temporary, Scheduled, "2026-11-23", "2026-11-23", nil, "2026-11-23")
	applToday := book("at", Temporary, Applied, "2026-11-23", "2026-11-23", nil, "2026-11-23")
	schedLater := book("sl", Temporary, Scheduled, "2026-11-26", "2026-11-26", nil, "2026-11-26")
	over := book("ov", Regular, InUse, "2026-09-01", "2026-11-20", wk)
	later := book("la", Regular, InUse, "2026-12-01", "2026-12-31", wk)
	ended := book("en", Regular, Ended, "2026-09-01", "2026-12-31", wk)
	cancelled := book("ca", Regular, Cancelled, "2026-09-01", "2026-12-31", wk)
	rejected := book("re", Regular, Rejected, "2026-09-01", "2026-12-31", wk)
	for _, tc := range []struct {
		name     string
		at       string
		bookings []Booking
		want     Outcome
		reason   Reason
	}{
		{"in use on other weekdays, 이용예정 for today (Q19 before Q21)", monday, []Booking{inUseTT, schedToday}, NotInUse, ReasonScheduled},
		{"in use on other weekdays, 신청 for today", monday, []Booking{applToday, inUseTT}, NotInUse, ReasonApplied},
		{"이용예정 today beats 신청 today", monday, []Booking{applToday, schedToday}, NotInUse, ReasonScheduled},
		{"in use on other weekdays, 이용예정 another day", monday, []Booking{schedLater, inUseTT}, NoData, ReasonNotUsageDay},
		{"not a usage day beats a period not started", monday, []Booking{later, inUseTT}, NoData, ReasonNotUsageDay},
		{"a period over beats 이용예정 another day", monday, []Booking{schedLater, over}, NotInUse, ReasonPeriodOver},
		{"not started beats over", monday, []Booking{over, later}, NotInUse, ReasonNotYetStarted},
		{"ended beats cancelled beats rejected", monday, []Booking{rejected, cancelled, ended}, NotInUse, ReasonEnded},
		{"cancelled beats rejected", monday, []Booking{rejected, cancelled}, NotInUse, ReasonCancelled},
		{"no booking", monday, nil, NotInUse, ReasonNoBooking},
		{"a closed day beats everything", "2026-10-09 15:00:00", []Booking{schedToday, inUseTT}, NoData, ReasonCentreClosed},
		{"in use today beats every refusal", "2026-11-24 15:00:00", []Booking{rejected, schedToday, inUseTT}, CheckIn, ReasonArrival},
	} {
		r := testRoster(t)
		r.Children = append(r.Children, Child{"c9", "한소윤"})
		r.Cards = append(r.Cards, Card{Key: key(9), ChildID: "c9", State: CardActive})
		r.Bookings = append(r.Bookings, tc.bookings...)
		if err := r.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := Decide(Input{Tap: Tap{CardKey: key(9), At: at(tc.at)}, Roster: r, Presence: func(string) Presence { return Presence{} }})
		if got.Outcome != tc.want || got.Reason != tc.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tc.name, got.Outcome, got.Reason, tc.want, tc.reason)
		}
	}
}
