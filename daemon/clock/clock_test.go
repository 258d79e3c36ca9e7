package clock

import (
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	boot := [16]byte{9}
	c := New(Options{
		Now:    func() time.Time { return time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC) },
		Mono:   func() time.Duration { return 42 * time.Second },
		BootID: boot,
		Synced: func() bool { return true },
	})
	s := c.Stamp()
	if s.Synced || s.Mono != 42*time.Second || s.BootID != boot {
		t.Errorf("a Pi booting in 1970: %+v", s)
	}
	c = New(Options{Now: func() time.Time { return time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC) }, Synced: func() bool { return false }})
	if c.Stamp().Synced {
		t.Error("synced while the kernel says it is not")
	}
	c = New(Options{Now: func() time.Time { return time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC) }, Synced: func() bool { return true }})
	if s := c.Stamp(); !s.Synced || s.BootID == ([16]byte{}) {
		t.Errorf("a set clock: %+v", s)
	}
	// The defaults read this machine's kernel without failing.
	d := New(Options{}).Stamp()
	if d.Mono <= 0 {
		t.Errorf("CLOCK_BOOTTIME gave %v", d.Mono)
	}
}
