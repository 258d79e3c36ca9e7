package rc522_test

import (
	"fmt"
	"testing"
	"time"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

// Ways a card at the edge of the field loses its answers to two presence
// checks in a row.
var edgeLosses = []struct {
	name string
	arm  func(*rc522emu.Chip)
}{
	// The card does not hear the checks' WUPA: it stays in HALT.
	{"WUPA unheard", func(c *rc522emu.Chip) { c.LoseFrames(iso14443a.WUPA, 2) }},
	// The card hears WUPA and answers, the reader does not hear the ATQA.
	{"ATQA lost", func(c *rc522emu.Chip) { c.Inject(rc522emu.FaultNoAnswer, 2) }},
}

// falselyRemoved presents card, then loses the answers to two presence
// checks in a row: Removed, while the card still lies halted on the reader.
func (r *rig) falselyRemoved(card *rc522emu.Card, lose func(*rc522emu.Chip)) {
	r.t.Helper()
	r.chip.Place(card)
	r.expect(rc522.Presented, card.UID())
	r.quiet(30) // held, halted, checked
	lose(r.chip)
	r.expect(rc522.Removed, card.UID())
	// HALT, or woken by the last check's WUPA on its way back there.
	if s := r.chip.State(card); s != "HALT" && s != "READY*" {
		r.t.Fatalf("the falsely removed card is %s, want it halted", s)
	}
}

// resetChip wedges the chip and waits until the driver has reset it
// through RST, switching the field off and on. before runs while the chip
// is wedged, before the reset.
func (r *rig) resetChip(mode rc522emu.WedgeMode, before func()) {
	r.t.Helper()
	resets := r.chip.Stats().HardResets
	r.chip.Wedge(mode)
	if before != nil {
		before()
	}
	r.waitFor("recovery", func(s rc522.Stats) bool { return s.Recoveries >= 1 }, 0)
	// Recoveries counts before the reset; every frame the driver sends from
	// here on goes out after it.
	r.waitFrames(1)
	if r.chip.Stats().HardResets <= resets {
		r.t.Fatal("the driver recovered without pulsing RST")
	}
}

// One physical presentation: two presence answers lost at the edge of the
// field make a Removed while the card still lies, halted, on the reader; a
// chip reset then cycles the field, the card comes back in IDLE and answers
// REQA. That is no second Presented. And once the child does take the card
// away and taps again, that tap is reported.
func TestRewokenCardIsNoNewPresentation(t *testing.T) {
	type row struct {
		loss     int // index in edgeLosses
		mode     rc522emu.WedgeMode
		irq      bool
		startUp  time.Duration // the card's, after the field comes back
		lostHLTA bool          // the first HLTA after the reset goes unheard
	}
	var rows []row
	for loss := range edgeLosses {
		for _, mode := range []rc522emu.WedgeMode{rc522emu.WedgeStuckState, rc522emu.WedgeStuckBus} {
			for _, irq := range []bool{true, false} {
				rows = append(rows, row{loss, mode, irq, 0, false})
			}
		}
	}
	for loss := range edgeLosses {
		for _, irq := range []bool{true, false} {
			// A card slow to start up (ISO/IEC 14443-3 allows 5 ms) must
			// not miss the first look and come back as a new presentation
			// after it.
			rows = append(rows, row{loss, rc522emu.WedgeStuckState, irq, 4 * time.Millisecond, false})
			// Nor one that, still at the edge, misses the HLTA that the
			// first look sends it.
			rows = append(rows, row{loss, rc522emu.WedgeStuckState, irq, 0, true})
		}
	}
	for _, tc := range rows {
		loss := edgeLosses[tc.loss]
		t.Run(fmt.Sprintf("%s/wedge=%d/irq=%v/start-up=%v/lost-HLTA=%v", loss.name, tc.mode, tc.irq, tc.startUp, tc.lostHLTA), func(t *testing.T) {
			r := newRig(t, rigOptions{noIRQ: !tc.irq})
			card := rc522emu.NewCard(uid7, rc522emu.CardOptions{StartUp: tc.startUp})
			r.falselyRemoved(card, loss.arm)
			r.resetChip(tc.mode, func() {
				if tc.lostHLTA {
					r.chip.LoseFrames(iso14443a.HLTA0, 1)
				}
			})
			r.quiet(60)
			if s := r.chip.State(card); s != "HALT" {
				t.Errorf("after the reset the card is %s, want HALT again", s)
			}
			// The child takes the card away (no event: it was already
			// reported gone) and taps again.
			r.chip.Remove(card)
			r.quiet(20)
			r.chip.Place(card)
			r.expect(rc522.Presented, uid7)
			r.chip.Remove(card)
			r.expect(rc522.Removed, uid7)
		})
	}
}

// After the same sequence, real presentations are still reported, and
// promptly: the card itself tapped again after the reset, a card taken away
// before the reset and tapped after it, another card.
func TestNewPresentationsAroundRewake(t *testing.T) {
	other := []byte{0x11, 0x22, 0x33, 0x44}
	for _, tc := range []struct {
		name string
		// wedged runs while the chip is wedged; after, once the reset is
		// done. Both get the falsely removed card and another one.
		wedged, after func(r *rig, card, another *rc522emu.Card)
		want          []byte // the only Presented expected
	}{
		{
			name: "lifted before the reset, tapped after it",
			wedged: func(r *rig, card, _ *rc522emu.Card) {
				r.chip.Remove(card)
			},
			after: func(r *rig, card, _ *rc522emu.Card) {
				// The first look after the reset: REQAs that nothing
				// answers, 2·RemovalMisses−1 in a row. Then the tap.
				r.waitFrames(3)
				r.chip.Place(card)
			},
			want: uid4,
		},
		{
			name: "lifted and tapped again after the reset",
			after: func(r *rig, card, _ *rc522emu.Card) {
				r.quiet(30)
				r.chip.Remove(card)
				r.quiet(20)
				r.chip.Place(card)
			},
			want: uid4,
		},
		{
			name: "another card on the reader when the field comes back",
			wedged: func(r *rig, _, another *rc522emu.Card) {
				r.chip.Place(another)
			},
			want: other,
		},
		{
			name: "another card after the reset",
			after: func(r *rig, _, another *rc522emu.Card) {
				r.quiet(30)
				r.chip.Place(another)
			},
			want: other,
		},
	} {
		for _, loss := range edgeLosses {
			t.Run(tc.name+"/"+loss.name, func(t *testing.T) {
				r := newRig(t, rigOptions{})
				card := rc522emu.NewCard(uid4, rc522emu.CardOptions{})
				another := rc522emu.NewCard(other, rc522emu.CardOptions{})
				r.falselyRemoved(card, loss.arm)
				r.resetChip(rc522emu.WedgeStuckState, func() {
					if tc.wedged != nil {
						tc.wedged(r, card, another)
					}
				})
				if tc.after != nil {
					tc.after(r, card, another)
				}
				r.expect(rc522.Presented, tc.want)
				r.quiet(60)
			})
		}
	}
}

// The rule for a card held across a reset is the same rule: a card that
// starts up slowly once the field is back, whose first REQA, ATQA or HLTA
// after the reset is lost, or that comes back with a new card whose
// Presented ends the first poll before it is found, is halted again
// without an event, and leaves once.
func TestHeldCardAcrossReset(t *testing.T) {
	other := []byte{0x11, 0x22, 0x33, 0x44} // wins the anticollision over uid10
	for _, tc := range []struct {
		name    string
		startUp time.Duration
		wedged  func(*rc522emu.Chip) // while the chip is wedged
		another bool                 // place a card with UID other while wedged
	}{
		{"plain", 0, nil, false},
		{"slow start-up", 4 * time.Millisecond, nil, false},
		{"first REQA after the reset unheard", 0, func(c *rc522emu.Chip) { c.LoseFrames(iso14443a.REQA, 1) }, false},
		{"first ATQA after the reset lost", 0, func(c *rc522emu.Chip) { c.Inject(rc522emu.FaultNoAnswer, 1) }, false},
		{"first HLTA after the reset unheard", 0, func(c *rc522emu.Chip) { c.LoseFrames(iso14443a.HLTA0, 1) }, false},
		{"a new card found first", 0, nil, true},
	} {
		for _, mode := range []rc522emu.WedgeMode{rc522emu.WedgeStuckState, rc522emu.WedgeStuckBus} {
			for _, irq := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/wedge=%d/irq=%v", tc.name, mode, irq), func(t *testing.T) {
					r := newRig(t, rigOptions{noIRQ: !irq})
					card := rc522emu.NewCard(uid10, rc522emu.CardOptions{StartUp: tc.startUp})
					r.chip.Place(card)
					r.expect(rc522.Presented, uid10)
					r.quiet(30)
					r.resetChip(mode, func() {
						if tc.wedged != nil {
							tc.wedged(r.chip)
						}
						if tc.another {
							r.chip.Place(rc522emu.NewCard(other, rc522emu.CardOptions{}))
						}
					})
					if tc.another {
						r.expect(rc522.Presented, other)
					}
					r.quiet(60)
					r.chip.Remove(card)
					r.expect(rc522.Removed, uid10)
					r.quiet(30)
				})
			}
		}
	}
}
