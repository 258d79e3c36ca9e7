// Package clocktest is a terminal clock a test sets by hand, beside the
// real one (package clock): its stamps are synced and move only when the
// test moves them.
package clocktest

import (
	"sync"
	"time"

	"kiumtap/daemon/store"
)

// Clock is a synced clock at a time the test sets. Safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock at now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Stamp implements the terminal's Stamper.
func (c *Clock) Stamp() store.Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return store.Stamp{Time: c.now, Synced: true}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
