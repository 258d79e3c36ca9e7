package firmware

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Roster is everything the terminal knows of its centre, as the portal
// sends it: the calendar, the children, their cards and their bookings. It
// carries bookings, not a daily list, so a terminal offline for a week
// still decides correctly. It never carries a guardian's phone number.
type Roster struct {
	Revision uint64    `json:"revision"`
	Issued   time.Time `json:"issued"` // when the portal built it
	Centre   Centre    `json:"centre"`
	Children []Child   `json:"children"`
	Cards    []Card    `json:"cards"`
	Bookings []Booking `json:"bookings"`
	// Staff may open card enrolment with their cards; a staff card never
	// counts attendance and is never bound to a child.
	Staff []Staff `json:"staff,omitempty"`
	// Applied says which terminals' binding changes (card_bound events)
	// this revision takes in: "device/log" to the last sequence taken. A
	// terminal keeps its own later changes on top of the roster until a
	// revision takes them in (or decides against them, as in a conflict).
	Applied map[string]uint64 `json:"applied_bindings,omitempty"`

	// Indexes built by Index; not part of the wire form.
	byStaff map[string]*Staff
	byCard  map[string]*Card
	byChild map[string]*Child
	booked  map[string][]*Booking
}

// Centre is a care centre and its calendar.
type Centre struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Terms []Term `json:"terms"`
	// Closed are days the centre does not open: public holidays, closures.
	Closed []Date `json:"closed,omitempty"`
	// Discretionary are schools' discretionary days off (재량휴교일): the
	// children come in the morning and the centre keeps the hours of its
	// nearest vacation term.
	Discretionary []Date `json:"discretionary,omitempty"`
}

// Term is one of the four terms of the year (two semesters, two vacations),
// each with its opening hours.
type Term struct {
	Name     string `json:"name"`
	From     Date   `json:"from"`
	To       Date   `json:"to"` // inclusive
	Vacation bool   `json:"vacation"`
	Hours    Window `json:"hours"`
	// Weekdays the centre opens; empty means Monday to Friday.
	Weekdays []time.Weekday `json:"weekdays,omitempty"`
}

// Staff is a member of the centre's staff. Key is their card UID's HMAC.
type Staff struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
}

// Child is a child using the centre.
type Child struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CardState is a card binding's state.
type CardState string

// Card binding states.
const (
	CardActive   CardState = "active"
	CardReplaced CardState = "replaced" // a spare was bound instead (Q20)
	CardRevoked  CardState = "revoked"
	// CardConflict: bound here while offline, but the same card was bound
	// first elsewhere (another centre or child); see docs/protocol.md.
	CardConflict CardState = "conflict"
)

// Card binds a card to a child. Key is the card UID's HMAC under the
// centre's key (hex): the roster holds no raw UIDs.
type Card struct {
	Key     string    `json:"key"`
	ChildID string    `json:"child"`
	State   CardState `json:"state"`
	Since   time.Time `json:"since"`
}

// BookingType is a kind of care.
type BookingType string

// Booking types.
const (
	Regular   BookingType = "regular"   // 정기돌봄: weekdays over a period
	Temporary BookingType = "temporary" // 일시돌봄: given dates
	SickChild BookingType = "sick"      // 아픈아이 돌봄: given dates
)

// BookingStatus is where a booking stands in the portal.
type BookingStatus string

// Booking statuses. Only InUse lets a card count attendance.
const (
	Applied   BookingStatus = "applied"   // 신청
	Scheduled BookingStatus = "scheduled" // 승인/이용예정
	InUse     BookingStatus = "in_use"    // 이용중
	Rejected  BookingStatus = "rejected"  // 미승인
	Cancelled BookingStatus = "cancelled" // 이용취소
	Ended     BookingStatus = "ended"     // 종료
)

// Booking is a child's booking of care.
type Booking struct {
	ID      string        `json:"id"`
	ChildID string        `json:"child"`
	Type    BookingType   `json:"type"`
	Status  BookingStatus `json:"status"`
	From    Date          `json:"from"`
	To      Date          `json:"to"` // inclusive
	// Weekdays of a regular booking.
	Weekdays []time.Weekday `json:"weekdays,omitempty"`
	// Dates of a temporary or sick-child booking.
	Dates  []Date `json:"dates,omitempty"`
	Window Window `json:"window"`
}

// Validate checks the roster and builds its indexes. Errors name the field.
func (r *Roster) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("roster: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if r.Centre.ID == "" {
		bad("centre.id", "missing")
	}
	if r.Centre.Name == "" {
		bad("centre.name", "missing")
	}
	if len(r.Centre.Terms) == 0 {
		bad("centre.terms", "no terms: the centre would never open")
	}
	for i, t := range r.Centre.Terms {
		f := fmt.Sprintf("centre.terms[%d]", i)
		checkPeriod(bad, f, t.From, t.To)
		if t.Hours.End <= t.Hours.Start {
			bad(f+".hours", "closes (%s) no later than it opens (%s)", t.Hours.End, t.Hours.Start)
		}
		for j, u := range r.Centre.Terms[:i] {
			if !t.From.IsZero() && !u.To.IsZero() && !t.To.Before(u.From) && !u.To.Before(t.From) {
				bad(f, "overlaps centre.terms[%d] (%s to %s)", j, u.From, u.To)
			}
		}
		checkWeekdays(bad, f+".weekdays", t.Weekdays)
	}
	r.byChild = map[string]*Child{}
	for i := range r.Children {
		c := &r.Children[i]
		f := fmt.Sprintf("children[%d]", i)
		switch {
		case c.ID == "":
			bad(f+".id", "missing")
		case r.byChild[c.ID] != nil:
			bad(f+".id", "%q appears twice", c.ID)
		}
		if c.Name == "" {
			bad(f+".name", "missing")
		}
		r.byChild[c.ID] = c
	}
	r.byCard = map[string]*Card{}
	for i := range r.Cards {
		c := &r.Cards[i]
		f := fmt.Sprintf("cards[%d]", i)
		if len(c.Key) != 32 || strings.Trim(c.Key, "0123456789abcdef") != "" {
			bad(f+".key", "want the card's HMAC as 32 lower-case hex digits, got %q", c.Key)
		}
		if r.byChild[c.ChildID] == nil {
			bad(f+".child", "no child %q in children", c.ChildID)
		}
		switch c.State {
		case CardActive, CardReplaced, CardRevoked, CardConflict:
		default:
			bad(f+".state", "%q is not active, replaced, revoked or conflict", c.State)
		}
		if prev := r.byCard[c.Key]; prev != nil {
			bad(f+".key", "card bound twice (also to child %q)", prev.ChildID)
		}
		r.byCard[c.Key] = c
	}
	r.byStaff = map[string]*Staff{}
	ids := map[string]bool{}
	for i := range r.Staff {
		st := &r.Staff[i]
		f := fmt.Sprintf("staff[%d]", i)
		if st.ID == "" || ids[st.ID] {
			bad(f+".id", "missing or used twice: %q", st.ID)
		}
		ids[st.ID] = true
		if len(st.Key) != 32 || strings.Trim(st.Key, "0123456789abcdef") != "" {
			bad(f+".key", "want the card's HMAC as 32 lower-case hex digits, got %q", st.Key)
		}
		if c := r.byCard[st.Key]; c != nil {
			bad(f+".key", "a staff card is also bound to child %q: staff cards are never children's", c.ChildID)
		}
		if r.byStaff[st.Key] != nil {
			bad(f+".key", "the same card for two staff")
		}
		r.byStaff[st.Key] = st
	}
	for k := range r.Applied {
		if dev, log, ok := strings.Cut(k, "/"); !ok || dev == "" || log == "" {
			bad("applied_bindings", "key %q is not device/log", k)
		}
	}
	r.booked = map[string][]*Booking{}
	for i := range r.Bookings {
		b := &r.Bookings[i]
		f := fmt.Sprintf("bookings[%d]", i)
		if r.byChild[b.ChildID] == nil {
			bad(f+".child", "no child %q in children", b.ChildID)
		}
		switch b.Status {
		case Applied, Scheduled, InUse, Rejected, Cancelled, Ended:
		default:
			bad(f+".status", "%q is not applied, scheduled, in_use, rejected, cancelled or ended", b.Status)
		}
		checkPeriod(bad, f, b.From, b.To)
		if b.Window.End <= b.Window.Start {
			bad(f+".window", "ends (%s) no later than it starts (%s)", b.Window.End, b.Window.Start)
		}
		switch b.Type {
		case Regular:
			if len(b.Weekdays) == 0 {
				bad(f+".weekdays", "a regular booking needs its weekdays")
			}
			checkWeekdays(bad, f+".weekdays", b.Weekdays)
		case Temporary, SickChild:
			if len(b.Dates) == 0 {
				bad(f+".dates", "a %s booking needs its dates", b.Type)
			}
			for j, d := range b.Dates {
				if d.Before(b.From) || b.To.Before(d) {
					bad(fmt.Sprintf("%s.dates[%d]", f, j), "%s is outside the booking's %s to %s", d, b.From, b.To)
				}
			}
		default:
			bad(f+".type", "%q is not regular, temporary or sick", b.Type)
		}
		r.booked[b.ChildID] = append(r.booked[b.ChildID], b)
	}
	return errors.Join(errs...)
}

func checkPeriod(bad func(string, string, ...any), field string, from, to Date) {
	if from.IsZero() || to.IsZero() {
		bad(field, "from and to are required")
	} else if to.Before(from) {
		bad(field, "ends (%s) before it starts (%s)", to, from)
	}
}

func checkWeekdays(bad func(string, string, ...any), field string, days []time.Weekday) {
	for _, d := range days {
		if d < time.Sunday || d > time.Saturday {
			bad(field, "%d is not a weekday (0 = Sunday to 6 = Saturday)", d)
		}
	}
}

// CardByKey returns the binding of a card, or nil.
func (r *Roster) CardByKey(key string) *Card { return r.byCard[key] }

// StaffByKey returns the staff member of a card key, or nil.
func (r *Roster) StaffByKey(key string) *Staff { return r.byStaff[key] }

// ChildByID returns a child, or nil.
func (r *Roster) ChildByID(id string) *Child { return r.byChild[id] }

// BookingsOf returns a child's bookings.
func (r *Roster) BookingsOf(childID string) []*Booking { return r.booked[childID] }

// Day is what the calendar says of one day.
type Day struct {
	Open  bool
	Hours Window // opening hours, when Open
	// Discretionary: a school's day off; vacation hours apply.
	Discretionary bool
}

// DayOf returns the centre's calendar for d.
func (c *Centre) DayOf(d Date) Day {
	if slices.Contains(c.Closed, d) {
		return Day{}
	}
	term := c.termOf(d)
	if term == nil {
		return Day{}
	}
	days := term.Weekdays
	if len(days) == 0 {
		days = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	}
	if !slices.Contains(days, d.Weekday()) {
		return Day{}
	}
	day := Day{Open: true, Hours: term.Hours}
	if slices.Contains(c.Discretionary, d) {
		day.Discretionary = true
		if v := c.nearestVacation(d); v != nil {
			day.Hours = v.Hours
		}
	}
	return day
}

func (c *Centre) termOf(d Date) *Term {
	for i := range c.Terms {
		t := &c.Terms[i]
		if !d.Before(t.From) && !t.To.Before(d) {
			return t
		}
	}
	return nil
}

// nearestVacation is the vacation term closest in time to d.
func (c *Centre) nearestVacation(d Date) *Term {
	var best *Term
	var bestGap time.Duration
	for i := range c.Terms {
		t := &c.Terms[i]
		if !t.Vacation {
			continue
		}
		gap := max(t.From.At(0).Sub(d.At(0)), d.At(0).Sub(t.To.At(0)), 0)
		if best == nil || gap < bestGap {
			best, bestGap = t, gap
		}
	}
	return best
}

// MaskName masks a name for the screen: the middle of it becomes *, as
// 김민준 → 김*준, 이서 → 이*, 남궁민수 → 남**수.
func MaskName(name string) string {
	r := []rune(name)
	switch n := len(r); {
	case n <= 1:
		return name
	case n == 2:
		return string(r[0]) + "*"
	default:
		return string(r[0]) + strings.Repeat("*", n-2) + string(r[n-1])
	}
}
