// Package terminal is the tap loop: a card event from the reader becomes a
// decision recorded in the store, and only then feedback. It also closes
// the day (auto_check_out) and watches the disk.
//
// It owns the order of things — store before feedback — and nothing below:
// decisions are package firmware's, bytes on disk package store's, pins and
// screens the caller's Show function's.
package terminal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
)

// Stamper says what time it is (package clock).
type Stamper interface{ Stamp() store.Stamp }

// Options configure a Terminal.
type Options struct {
	Store    *store.Store
	Clock    Stamper
	Key      []byte // the centre's HMAC key for card UIDs
	RawUID   bool   // keep raw UIDs in events
	Settings firmware.Settings
	Language firmware.Language
	// Show gives feedback (LEDs, buzzer, screen). It must not block.
	Show func(firmware.Feedback)
	// Tapped, if set, is told of every recorded tap, after Show.
	Tapped func(store.Event, firmware.Decision)
	// DiskWarnFree are free-space levels in bytes, most lenient first.
	DiskWarnFree []int64
	// Every is how often the day is closed and the disk checked; default 1 min.
	Every  time.Duration
	Logger *slog.Logger
}

// Terminal runs the tap loop.
type Terminal struct {
	o        Options
	warnedAt int // index into DiskWarnFree of the last level warned about
}

// New checks the options.
func New(o Options) (*Terminal, error) {
	if o.Store == nil || o.Clock == nil || o.Show == nil {
		return nil, errors.New("terminal: Store, Clock and Show are required")
	}
	if len(o.Key) < 16 {
		return nil, errors.New("terminal: the centre key must have at least 16 bytes")
	}
	if o.Every == 0 {
		o.Every = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Settings = o.Settings.WithDefaults()
	return &Terminal{o: o, warnedAt: -1}, nil
}

// Run handles card events until ctx ends.
func (t *Terminal) Run(ctx context.Context, events <-chan rc522.Event) error {
	tick := time.NewTicker(t.o.Every)
	defer tick.Stop()
	t.housekeeping()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-events:
			if ev.Kind == rc522.Presented {
				t.Tap(ev.Card.UID)
			}
		case <-tick.C:
			t.housekeeping()
		}
	}
}

// Tap decides and records one presented card, then gives feedback. The
// feedback comes only after the store has committed the tap.
func (t *Terminal) Tap(uid []byte) (store.Event, firmware.Decision, error) {
	req := store.TapRequest{
		At:       t.o.Clock.Stamp(),
		CardKey:  firmware.CardKey(t.o.Key, uid),
		Settings: t.o.Settings,
	}
	if t.o.RawUID {
		req.UID = uid
	}
	ev, dec, err := t.o.Store.Tap(req)
	if err != nil {
		t.o.Show(firmware.ErrorFeedback(t.o.Language))
		if errors.Is(err, store.ErrDiskFull) {
			t.o.Logger.Error("ALARM: disk full, tap refused; nothing stored was lost. Free space on the terminal's disk", "err", err)
		} else {
			t.o.Logger.Error("tap not recorded", "err", err)
		}
		return ev, dec, err
	}
	name := ""
	if r, _, err := t.o.Store.Roster(); err == nil {
		if c := r.ChildByID(dec.ChildID); c != nil {
			name = c.Name
		}
	}
	t.o.Show(firmware.FeedbackFor(dec, name, req.At.Time, t.o.Language))
	t.o.Logger.Info("tap", "seq", ev.Seq, "outcome", dec.Outcome, "reason", dec.Reason, "flags", dec.Flags, "child", dec.ChildID)
	if t.o.Tapped != nil {
		t.o.Tapped(ev, dec)
	}
	return ev, dec, nil
}

// housekeeping closes the day and checks the disk.
func (t *Terminal) housekeeping() {
	if evs, err := t.o.Store.CloseDay(t.o.Clock.Stamp(), t.o.Settings); err != nil && !errors.Is(err, store.ErrNoRoster) {
		t.o.Logger.Error("closing the day", "err", err)
	} else {
		for _, ev := range evs {
			t.o.Logger.Info("auto check-out", "seq", ev.Seq, "child", ev.ChildID, "reason", ev.Reason)
		}
	}
	t.checkDisk()
}

func (t *Terminal) checkDisk() {
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(t.o.Store.Path()), &fs); err != nil {
		t.o.Logger.Warn("checking free disk space", "err", err)
		return
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	level := -1
	for i, l := range t.o.DiskWarnFree {
		if free < l {
			level = i
		}
	}
	if level > t.warnedAt {
		o, _ := t.o.Store.Outbox()
		t.o.Logger.Warn("disk space low", "free", fmt.Sprintf("%d MiB", free>>20), "below", fmt.Sprintf("%d MiB", t.o.DiskWarnFree[level]>>20), "outbox", o.Depth)
	}
	t.warnedAt = level
}
