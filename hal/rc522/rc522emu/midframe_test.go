package rc522emu

import (
	"testing"
	"time"

	"kiumtap/hal/rc522/reg"
)

// A card placed while a frame is on air has no power for its first bits:
// it misses that frame (its REQA goes unanswered) and answers the next.
// The latency probe relies on it: the REQA that finds a card starts after
// the card was placed.
func TestCardPlacedMidFrameMissesIt(t *testing.T) {
	c := New(Options{Timed: true})
	defer c.Close()
	c.mu.Lock()
	c.regs[reg.TxControlReg] = 0x83
	c.regs[reg.TxASKReg] = reg.Force100ASK
	c.mu.Unlock()
	card := NewCard([]byte{1, 2, 3, 4}, CardOptions{})
	c.Place(card)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tc := range []struct {
		name    string
		start   time.Time
		answers bool
	}{
		{"a REQA begun before the card came", card.powered.Add(-50 * time.Microsecond), false},
		{"a REQA begun as it came", card.powered, true},
	} {
		ex := &exchange{tx: []byte{0x26}, txBits: 7, txStart: tc.start, txEnd: tc.start.Add(66 * time.Microsecond), collAt: -1}
		c.deliver(ex)
		if got := card.state == stateReady; got != tc.answers {
			t.Fatalf("%s: card state %v, answered %v, want %v", tc.name, card.state, got, tc.answers)
		}
	}
}
