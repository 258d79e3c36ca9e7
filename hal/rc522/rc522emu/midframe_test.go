package rc522emu

import (
	"testing"
	"time"

	"kiumtap/hal/rc522/reg"
)

// A card placed while a frame is on air has no power for its first bits:
// it misses that frame (its REQA goes unanswered) and answers the next.
// The latency probe relies on it: the REQA that finds a card starts after
// the card was placed. A card with a start-up time misses every frame that
// begins before it is running.
func TestCardPlacedMidFrameMissesIt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		startUp time.Duration
		after   time.Duration // from the moment the card was powered
		answers bool
	}{
		{"a REQA begun before the card came", 0, -50 * time.Microsecond, false},
		{"a REQA begun as it came", 0, 0, true},
		{"a REQA begun during its start-up", 3 * time.Millisecond, 2900 * time.Microsecond, false},
		{"a REQA begun once it runs", 3 * time.Millisecond, 3 * time.Millisecond, true},
	} {
		c := New(Options{Timed: true})
		c.mu.Lock()
		c.regs[reg.TxControlReg] = 0x83
		c.regs[reg.TxASKReg] = reg.Force100ASK
		c.mu.Unlock()
		card := NewCard([]byte{1, 2, 3, 4}, CardOptions{StartUp: tc.startUp})
		c.Place(card)
		c.mu.Lock()
		start := card.powered.Add(tc.after)
		ex := &exchange{tx: []byte{0x26}, txBits: 7, txStart: start, txEnd: start.Add(66 * time.Microsecond), collAt: -1}
		c.deliver(ex)
		if got := card.state == stateReady; got != tc.answers {
			t.Errorf("%s: card state %v, answered %v, want %v", tc.name, card.state, got, tc.answers)
		}
		c.mu.Unlock()
		c.Close()
	}
}
