// Package clock stamps moments for the event log: the wall time, whether
// the wall clock can be believed yet, and the boot ID and monotonic offset
// that let the portal correct the wall time later. A Raspberry Pi has no
// real-time clock: until NTP has run it believes it is 1970.
package clock

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"kiumtap/daemon/store"
)

// Options configure a Clock.
type Options struct {
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Mono is the time since boot on a clock that never jumps; default
	// CLOCK_BOOTTIME (it keeps counting through suspend).
	Mono func() time.Duration
	// BootID identifies this boot; default the kernel's
	// /proc/sys/kernel/random/boot_id, or a random ID per process.
	BootID [16]byte
	// SyncedAfter: a wall clock before it has not been set (default
	// 2024-01-01).
	SyncedAfter time.Time
	// Synced, if set, reports whether the system says NTP is in sync; the
	// default asks the kernel (adjtimex) and also requires SyncedAfter.
	Synced func() bool
}

// Clock stamps moments.
type Clock struct{ o Options }

// New returns a clock with defaults filled in.
func New(o Options) *Clock {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Mono == nil {
		o.Mono = bootTime
	}
	if o.BootID == ([16]byte{}) {
		o.BootID = kernelBootID()
	}
	if o.SyncedAfter.IsZero() {
		o.SyncedAfter = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Synced == nil {
		o.Synced = kernelSynced
	}
	return &Clock{o}
}

// Stamp returns what the clock knows of now.
func (c *Clock) Stamp() store.Stamp {
	now := c.o.Now()
	return store.Stamp{
		Time:   now,
		Synced: !now.Before(c.o.SyncedAfter) && c.o.Synced(),
		BootID: c.o.BootID,
		Mono:   c.o.Mono(),
	}
}

func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func kernelBootID() [16]byte {
	var id [16]byte
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		if h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")); err == nil && len(h) == 16 {
			copy(id[:], h)
			return id
		}
	}
	rand.Read(id[:])
	return id
}

// kernelSynced asks adjtimex whether the kernel considers its clock
// synchronised (STA_UNSYNC clear), as NTP daemons leave it.
func kernelSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
