package firmware

import (
	"errors"
	"testing"
	"time"
)

func withStaff(t *testing.T) *Roster {
	r := testRoster(t)
	r.Staff = []Staff{{ID: "s1", Name: "박선생", Key: key(90)}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

func activeCard(r *Roster, child string) string {
	for _, c := range r.Cards {
		if c.ChildID == child && c.State == CardActive {
			return c.Key
		}
	}
	return ""
}

// Every rule of enrolment, on both flows: what is refused, and what a
// binding does to the child's old card and to the other cards.
func TestBind(t *testing.T) {
	now := at("2026-11-23 15:00:00")
	for _, flow := range []Flow{FlowDevice, FlowPortal} {
		for _, tc := range []struct {
			name   string
			child  string
			card   string
			refuse Reason
			old    string
		}{
			{"a spare for a lost card (Q20)", "c1", key(50), "", key(1)},
			{"a first card", "c2", key(51), "", key(2)},
			{"a card replaced earlier, bound again", "c1", key(11), "", key(1)},
			{"another child's active card", "c1", key(2), RefuseCardOfOther, ""},
			{"the child's own active card", "c1", key(1), RefuseAlreadyBound, ""},
			{"a staff card", "c1", key(90), RefuseStaffCard, ""},
			{"an unknown child", "c99", key(52), RefuseUnknownChild, ""},
		} {
			r := withStaff(t)
			before := activeCard(r, tc.child)
			next, ch, err := Bind(r, tc.child, tc.card, "s1", flow, now)
			if tc.refuse != "" {
				var ref *Refused
				if !errors.As(err, &ref) || ref.Reason != tc.refuse || next != nil {
					t.Fatalf("%s/%s: %v, want refused for %s", flow, tc.name, err, tc.refuse)
				}
				if activeCard(r, tc.child) != before {
					t.Fatalf("%s/%s: a refusal changed the roster", flow, tc.name)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", flow, tc.name, err)
			}
			if got := activeCard(next, tc.child); got != tc.card {
				t.Fatalf("%s/%s: active card %s, want %s", flow, tc.name, got, tc.card)
			}
			if c := next.CardByKey(tc.old); c == nil || c.State != CardReplaced {
				t.Fatalf("%s/%s: the old card is %+v, want replaced", flow, tc.name, c)
			}
			if ch.OldCard != tc.old || ch.NewCard != tc.card || ch.By != "s1" || ch.Flow != flow || !ch.At.Equal(now) {
				t.Fatalf("%s/%s: audit %+v", flow, tc.name, ch)
			}
			if activeCard(r, tc.child) != before {
				t.Fatalf("%s/%s: Bind changed its input", flow, tc.name)
			}
			// The old card gets replaced_card on the very next tap.
			dec := Decide(Input{Tap: Tap{CardKey: tc.old, At: now.Add(time.Minute)}, Roster: next, Presence: func(string) Presence { return Presence{} }})
			if dec.Outcome != ReplacedCard {
				t.Fatalf("%s/%s: the old card now decides %s", flow, tc.name, dec.Outcome)
			}
		}
	}
}

func TestUnbind(t *testing.T) {
	now := at("2026-11-23 15:00:00")
	r := withStaff(t)
	for _, tc := range []struct {
		child  string
		refuse Reason
	}{
		{"c1", ""},
		{"c3", RefuseScheduledBooking}, // Q18: booking b3 is 이용예정
		{"c99", RefuseUnknownChild},
	} {
		next, ch, err := Unbind(r, tc.child, "s1", FlowPortal, now)
		if tc.refuse != "" {
			var ref *Refused
			if !errors.As(err, &ref) || ref.Reason != tc.refuse {
				t.Fatalf("%s: %v, want refused for %s", tc.child, err, tc.refuse)
			}
			continue
		}
		if err != nil || activeCard(next, tc.child) != "" || next.CardByKey(ch.OldCard).State != CardRevoked {
			t.Fatalf("%s: %v %+v", tc.child, err, ch)
		}
		if _, _, err := Unbind(next, tc.child, "s1", FlowPortal, now); !errors.As(err, new(*Refused)) {
			t.Fatalf("%s: unbinding twice: %v", tc.child, err)
		}
	}
}

// A staff card bound to a child, or given twice, is a roster error.
func TestStaffValidate(t *testing.T) {
	r := testRoster(t)
	r.Staff = []Staff{{ID: "s1", Name: "박선생", Key: key(1)}}
	if err := r.Validate(); err == nil {
		t.Fatal("a staff card that is also a child's card was accepted")
	}
	r.Staff = []Staff{{ID: "s1", Key: key(90)}, {ID: "s1", Key: key(91)}}
	if err := r.Validate(); err == nil {
		t.Fatal("a staff ID used twice was accepted")
	}
}

// A card that lost a conflict decides replaced_card with its own reason,
// and cannot be bound again here until it is revoked where it won.
func TestConflictCard(t *testing.T) {
	r := withStaff(t)
	for i := range r.Cards {
		if r.Cards[i].Key == key(1) {
			r.Cards[i].State = CardConflict
		}
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Decide(Input{Tap: Tap{CardKey: key(1), At: at("2026-11-23 15:00:00")}, Roster: r, Presence: func(string) Presence { return Presence{} }})
	if d.Outcome != ReplacedCard || d.Reason != ReasonCardConflict {
		t.Fatalf("decision %+v", d)
	}
	if f := FeedbackFor(d, "", time.Time{}, Korean); f.Lines[0] != "다른 곳에 등록된 카드" {
		t.Fatalf("feedback %v", f)
	}
	var ref *Refused
	if _, _, err := Bind(r, "c2", key(1), "s1", FlowDevice, time.Now()); !errors.As(err, &ref) || ref.Reason != RefuseBoundElsewhere {
		t.Fatalf("binding a conflict card: %v", err)
	}
}

// Replay puts a terminal's changes back on a portal roster that has not
// taken them in yet; changes for children gone, or naming staff cards,
// are skipped.
func TestReplay(t *testing.T) {
	r := withStaff(t)
	now := at("2026-11-23 15:00:00")
	chs := []BindingChange{
		{Child: "c1", OldCard: key(1), NewCard: key(50), At: now},
		{Child: "c2", NewCard: key(1), At: now},               // the old card, given to another child
		{Child: "c99", NewCard: key(51), At: now},             // a child no longer in the roster
		{Child: "c2", NewCard: key(90), At: now},              // a staff card now
		{Child: "c1", OldCard: key(50), NewCard: "", At: now}, // revoked again
	}
	got, err := Replay(r, chs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		child string
		state CardState
	}{key(50): {"c1", CardRevoked}, key(1): {"c2", CardActive}, key(2): {"c2", CardReplaced}}
	for k, w := range want {
		c := got.CardByKey(k)
		if c == nil || c.ChildID != w.child || c.State != w.state {
			t.Errorf("card %s: %+v, want %+v", k[:6], c, w)
		}
	}
	if got.CardByKey(key(51)) != nil || got.CardByKey(key(90)) != nil {
		t.Error("a skipped change was applied")
	}
	if r.CardByKey(key(50)) != nil || r.CardByKey(key(1)).ChildID != "c1" {
		t.Error("Replay changed its input")
	}
	if same, _ := Replay(r, nil); same != r {
		t.Error("no changes should give the roster back")
	}
}

// The portal's flow: StartFor waits for a card for one child, longer than
// the device flow; any staff card cancels it.
func TestEnrollerStartFor(t *testing.T) {
	r := withStaff(t)
	now := at("2026-11-23 15:00:00")
	var e Enroller
	var ref *Refused
	if _, err := e.StartFor(r, "c99", "op", now); !errors.As(err, &ref) || ref.Reason != RefuseUnknownChild || e.Active() {
		t.Fatalf("unknown child: %v", err)
	}
	s, err := e.StartFor(r, "c2", "op", now)
	if err != nil || s.Screen[1] != "카드를 대주세요" {
		t.Fatalf("start: %v %+v", err, s)
	}
	if s := e.Tick(now.Add(2 * time.Minute)); s.Done {
		t.Fatal("the portal's enrolment timed out after 2 minutes")
	}
	s, _ = e.Tap(r, key(60), now.Add(3*time.Minute))
	if s.Bind == nil || *s.Bind != (Binding{Child: "c2", Card: key(60), By: "op", Flow: FlowPortal}) {
		t.Fatalf("bind: %+v", s.Bind)
	}
	e.StartFor(r, "c2", "op", now)
	if s, _ := e.Tap(r, key(90), now); !s.Done || s.Bind != nil || e.Active() {
		t.Fatalf("a staff card did not cancel: %+v", s)
	}
	e.StartFor(r, "c2", "op", now)
	if s := e.Tick(now.Add(5*time.Minute + time.Second)); !s.Done || e.Active() {
		t.Fatal("no timeout after 5 minutes")
	}
}
