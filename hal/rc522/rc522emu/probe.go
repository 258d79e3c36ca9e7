package rc522emu

import (
	"sync"
	"time"
)

// REQAProbe times taps for latency benchmarks: set its OnFrame as the
// chip's Options.OnFrame, call Placed when a card goes on the reader, and
// First returns when the first REQA after that was sent — where a tap's
// latency starts.
type REQAProbe struct {
	mu        sync.Mutex
	placedAt  time.Time
	firstREQA time.Time
}

// OnFrame is the chip's frame hook.
func (p *REQAProbe) OnFrame(data []byte, bits int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bits == 7 && len(data) > 0 && data[0] == 0x26 && !p.placedAt.IsZero() && p.firstREQA.IsZero() && at.After(p.placedAt) {
		p.firstREQA = at
	}
}

// Placed marks the moment a card is placed and forgets the last REQA.
func (p *REQAProbe) Placed() {
	p.mu.Lock()
	p.placedAt, p.firstREQA = time.Now(), time.Time{}
	p.mu.Unlock()
}

// First is the first REQA since Placed; zero if none yet.
func (p *REQAProbe) First() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstREQA
}
