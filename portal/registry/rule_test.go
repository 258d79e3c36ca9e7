package registry

import (
	"testing"
	"time"

	"kiumtap/firmware"
)

var cardK = firmware.CardKey([]byte("m1-centre-key"), []byte{0x04, 0x11, 0x22, 0x33})

func roster(centre string, cards ...firmware.Card) *firmware.Roster {
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	r := &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: centre, Name: centre, Terms: []firmware.Term{{Name: "t", From: mk("2026-01-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 600, End: 1100}}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}}, Cards: cards}
	if err := r.Validate(); err != nil {
		panic(err)
	}
	return r
}

// The conflict rule: the binding made first holds the card, at one centre
// or across two, whichever arrives first.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	bind := func(centre, child string, at time.Time) *Binding {
		return &Binding{Centre: centre, Device: centre + "-door", Log: "L", Seq: 1, Child: child, Card: cardK, By: "s1", Flow: firmware.FlowDevice, At: at, CardID: "id-K"}
	}
	holds := func(centre, child string, at time.Time) *Holder { return HolderOf(bind(centre, child, at)) }
	for _, tc := range []struct {
		name      string
		b         *Binding
		own       *firmware.Roster
		cur       *Holder
		outcome   string
		holder    string // the centre/child that holds the card after; "" unchanged
		otherEdit bool   // the previous holder's centre is changed (its card in conflict)
	}{
		{"no source", bind("m1", "c1", t0), nil, nil, ChangeRefused, "", false},
		{"a card no one holds", bind("m1", "c1", t0), roster("m1"), nil, ChangeApplied, "m1/c1", false},
		{"bound earlier at another centre", bind("m1", "c1", t0), roster("m1"), holds("m2", "c9", t0.Add(time.Minute)), ChangeApplied, "m1/c1", true},
		{"bound later at another centre", bind("m1", "c1", t0.Add(time.Minute)), roster("m1"), holds("m2", "c9", t0), ChangeConflict, "m2/c9", false},
		{"bound earlier to another child here", bind("m1", "c1", t0), roster("m1", firmware.Card{Key: cardK, ChildID: "c2", State: firmware.CardActive}), holds("m1", "c2", t0.Add(time.Minute)), ChangeApplied, "m1/c1", false},
		{"bound later to another child here", bind("m1", "c1", t0.Add(time.Minute)), roster("m1", firmware.Card{Key: cardK, ChildID: "c2", State: firmware.CardActive}), holds("m1", "c2", t0), ChangeConflict, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Decide(tc.b, tc.own, tc.cur)
			if v.Outcome != tc.outcome {
				t.Fatalf("outcome %s (%s %s), want %s", v.Outcome, v.Reason, v.Detail, tc.outcome)
			}
			got := ""
			if v.Holder != nil {
				got = v.Holder.Centre + "/" + v.Holder.Child
			}
			if got != tc.holder {
				t.Errorf("holder %q, want %q", got, tc.holder)
			}
			if (v.Other != nil) != tc.otherEdit {
				t.Errorf("edit of the other centre: %+v", v.Other)
			}
			if tc.own != nil && v.Outcome != ChangeRefused {
				if _, err := ApplyOps(tc.own, v.Own); err != nil {
					t.Errorf("the ops do not fit the roster: %v", err)
				}
			}
		})
	}
}
