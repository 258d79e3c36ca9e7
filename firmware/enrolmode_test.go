package firmware

import (
	"slices"
	"testing"
	"time"
)

// The device flow: a staff card opens enrolment, the buttons scroll and
// choose, the next card is handed over for binding; the staff card again
// cancels and silence times out, leaving nothing half-bound.
func TestEnroller(t *testing.T) {
	r := withStaff(t)
	// c9 has an in-use booking and no card: listed first.
	r.Children = append(r.Children, Child{"c9", "한지민"})
	r.Bookings = append(r.Bookings, Booking{ID: "b9", ChildID: "c9", Type: Regular, Status: InUse, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: wk, Window: w("13:00", "18:00")})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	now := at("2026-11-23 15:00:00")
	var e Enroller
	if _, handled := e.Tap(r, key(1), now); handled {
		t.Fatal("a child's card outside enrolment was taken by it")
	}
	s, handled := e.Tap(r, key(90), now)
	if !handled || !e.Active() || s.Screen[1] != MaskName("한지민") {
		t.Fatalf("opening: %v %+v", handled, s)
	}
	if s, _ := e.Tap(r, key(50), now); s.Bind != nil || e.child != "" {
		t.Fatalf("a card before a child was chosen: %+v", s)
	}
	s = e.Press(r, ButtonNext, now)
	if s.Screen[1] != MaskName("김민준") {
		t.Fatalf("next: %+v", s)
	}
	s = e.Press(r, ButtonChoose, now)
	if s.Screen[1] != "카드를 대주세요" {
		t.Fatalf("choose: %+v", s)
	}
	s, _ = e.Tap(r, key(50), now.Add(10*time.Second))
	if s.Bind == nil || s.Bind.Child != "c1" || s.Bind.Card != key(50) || s.Bind.By != "s1" || !s.Done || e.Active() {
		t.Fatalf("the card: %+v", s)
	}
	// Cancel with the staff card, and time out: nothing to bind.
	e.Tap(r, key(90), now)
	e.Press(r, ButtonChoose, now)
	if s, _ := e.Tap(r, key(90), now); s.Bind != nil || !s.Done || e.Active() {
		t.Fatalf("cancel: %+v", s)
	}
	e.Tap(r, key(90), now)
	if s := e.Tick(now.Add(30 * time.Second)); s.Done {
		t.Fatal("timed out early")
	}
	if s := e.Tick(now.Add(61 * time.Second)); !s.Done || e.Active() || s.Bind != nil {
		t.Fatalf("timeout: %+v", s)
	}
}

// A child's active card presented while enrolment waits is an ordinary
// tap — before a child is chosen, or at any time in the portal's flow —
// and enrolment stays open; a chosen child's card in the device flow is
// handed over (the rules then refuse it with their reason).
func TestEnrollerLetsChildrenTap(t *testing.T) {
	r := withStaff(t)
	now := at("2026-11-23 15:00:00")
	var e Enroller
	e.Tap(r, key(90), now)
	if _, handled := e.Tap(r, key(1), now); handled || !e.Active() {
		t.Fatalf("c1's card before a child was chosen: handled %v, active %v", handled, e.Active())
	}
	e.Press(r, ButtonChoose, now)
	if s, handled := e.Tap(r, key(2), now); !handled || s.Bind == nil {
		t.Fatal("staff presenting another child's card after choosing: not handed over")
	}
	e.StartFor(r, "c2", "op", now)
	if _, handled := e.Tap(r, key(1), now); handled || !e.Active() {
		t.Fatal("the portal's enrolment took a child's tap")
	}
	if _, handled := e.Tap(r, key(11), now); !handled { // c1's replaced card: free to bind
		t.Fatal("a replaced card was not handed over")
	}
}

// A revision arriving during enrolment may drop children: the list
// shrinks; a chosen child gone ends enrolment with nothing bound.
func TestEnrollerRosterChanges(t *testing.T) {
	r := withStaff(t)
	now := at("2026-11-23 15:00:00")
	without := func(id string) *Roster {
		n := r.clone()
		n.Children = slices.DeleteFunc(n.Children, func(c Child) bool { return c.ID == id })
		n.Cards = slices.DeleteFunc(n.Cards, func(c Card) bool { return c.ChildID == id })
		n.Bookings = slices.DeleteFunc(n.Bookings, func(b Booking) bool { return b.ChildID == id })
		if err := n.Validate(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var e Enroller
	e.Tap(r, key(90), now)
	shown := e.Press(r, ButtonNext, now).Screen[1] // the second child
	r2 := without("c1")
	for range 5 {
		if s := e.Press(r2, ButtonNext, now); s.Screen[1] == MaskName("김민준") {
			t.Fatalf("a child no longer in the roster is listed (was at %s)", shown)
		}
	}
	e.Press(r2, ButtonChoose, now)
	s := e.Press(without(e.child), ButtonNext, now)
	if !s.Done || e.Active() || s.Screen[1] != "명단에 없는 아이" {
		t.Fatalf("chosen child gone: %+v", s)
	}
	e.StartFor(r, "c2", "op", now)
	if s, handled := e.Tap(without("c2"), key(60), now); !handled || s.Bind != nil || !s.Done {
		t.Fatalf("the portal's child gone: %+v", s)
	}
}
