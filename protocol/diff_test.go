package protocol

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"kiumtap/firmware"
)

// mutate changes a roster at random as a portal does between revisions:
// children, cards, bookings and staff added, changed and removed, the
// calendar changed, bindings applied. The result stays valid.
func mutate(rng *rand.Rand, r *firmware.Roster, n int) *firmware.Roster {
	next := *r
	next.Revision = r.Revision + 1
	next.Issued = r.Issued.Add(time.Hour)
	next.Children = append([]firmware.Child(nil), r.Children...)
	next.Cards = append([]firmware.Card(nil), r.Cards...)
	next.Bookings = append([]firmware.Booking(nil), r.Bookings...)
	next.Staff = append([]firmware.Staff(nil), r.Staff...)
	for k, v := range r.Applied {
		if next.Applied == nil || &next.Applied == &r.Applied {
			next.Applied = map[string]uint64{}
		}
		next.Applied[k] = v
	}
	for range n {
		id := fmt.Sprintf("c%d", rng.IntN(20))
		switch rng.IntN(8) {
		case 0: // a child comes, with a card and a booking
			if len(filter(next.Children, func(c firmware.Child) bool { return c.ID == id })) > 0 {
				continue
			}
			next.Children = append(next.Children, firmware.Child{ID: id, Name: "어린이" + id})
			next.Cards = append(next.Cards, firmware.Card{Key: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), ChildID: id, State: firmware.CardActive})
			next.Bookings = append(next.Bookings, firmware.Booking{ID: "b" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse,
				From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: []time.Weekday{1, 3, 5}, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}})
		case 1: // a child leaves, with its cards and bookings
			if len(next.Children) == 0 {
				continue
			}
			gone := next.Children[rng.IntN(len(next.Children))].ID
			next.Children = filter(next.Children, func(c firmware.Child) bool { return c.ID != gone })
			next.Cards = filter(next.Cards, func(c firmware.Card) bool { return c.ChildID != gone })
			next.Bookings = filter(next.Bookings, func(b firmware.Booking) bool { return b.ChildID != gone })
		case 2: // a name is corrected
			if len(next.Children) > 0 {
				i := rng.IntN(len(next.Children))
				next.Children[i].Name += "."
			}
		case 3: // a card is replaced
			if len(next.Cards) > 0 {
				i := rng.IntN(len(next.Cards))
				next.Cards[i].State = firmware.CardReplaced
			}
		case 4: // a booking's status changes
			if len(next.Bookings) > 0 {
				i := rng.IntN(len(next.Bookings))
				next.Bookings[i].Status = []firmware.BookingStatus{firmware.InUse, firmware.Cancelled, firmware.Ended, firmware.Scheduled}[rng.IntN(4)]
			}
		case 5: // the calendar
			next.Centre.Name += "·"
		case 6: // staff
			sid := fmt.Sprintf("s%d", rng.IntN(3))
			if slicesIndex(next.Staff, sid) < 0 {
				next.Staff = append(next.Staff, firmware.Staff{ID: sid, Name: "선생님" + sid, Key: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())})
			} else {
				next.Staff = filter(next.Staff, func(s firmware.Staff) bool { return s.ID != sid })
			}
		case 7: // a terminal's binding applied
			if next.Applied == nil {
				next.Applied = map[string]uint64{}
			}
			next.Applied[fmt.Sprintf("door/L%d", rng.IntN(2))] += uint64(1 + rng.IntN(3))
		}
	}
	return &next
}

func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func slicesIndex(staff []firmware.Staff, id string) int {
	for i, s := range staff {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Diff and Apply round-trip: applied to the roster it was made from, the
// delta gives the next roster, digest for digest, across chains of random
// revisions; unchanged lists are left out of the delta.
func TestDiffApplyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for chain := range 50 {
		cur := sampleRoster(1)
		cur.Issued = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
		for step := range 20 {
			next := mutate(rng, cur, 1+rng.IntN(5))
			if err := next.Validate(); err != nil {
				t.Fatalf("chain %d step %d: the test made an invalid roster: %v", chain, step, err)
			}
			d := Diff(cur, next)
			if d.Base != cur.Revision || d.Revision != next.Revision || d.Digest != Digest(next) {
				t.Fatalf("chain %d step %d: delta %d→%d digest %s", chain, step, d.Base, d.Revision, d.Digest)
			}
			got, err := d.Apply(cur)
			if err != nil {
				t.Fatalf("chain %d step %d: %v", chain, step, err)
			}
			if Digest(got) != Digest(next) {
				t.Fatalf("chain %d step %d: applied digest %s, want %s", chain, step, Digest(got), Digest(next))
			}
			cur = next
		}
	}
	r := sampleRoster(1)
	same := *r
	same.Revision = 2
	d := Diff(r, &same)
	if d.Calendar != nil || len(d.Children.Upsert)+len(d.Children.Remove)+len(d.Cards.Upsert)+len(d.Bookings.Upsert) != 0 || d.Applied != nil {
		t.Errorf("a delta between equal rosters carries changes: %+v", d)
	}
}
