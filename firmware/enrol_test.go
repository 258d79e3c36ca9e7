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
