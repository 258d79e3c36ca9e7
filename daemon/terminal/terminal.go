// Package terminal is the tap loop: a card event from the reader becomes a
// decision recorded in the store, and only then feedback. It also runs
// card enrolment (a staff card, the buttons, or the portal's command open
// it; the next card is bound and recorded before the confirmation), closes
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
	"sync"
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
	Every time.Duration
	// Enrol sets enrolment's timeouts (firmware.Enroller); zero: defaults.
	Enrol struct{ Timeout, PortalTimeout time.Duration }
	// Bound, if set, is told of every binding recorded, after Show.
	Bound  func(store.Event, firmware.BindingChange)
	Logger *slog.Logger
}

// Terminal runs the tap loop.
type Terminal struct {
	o        Options
	warnedAt int // index into DiskWarnFree of the last level warned about

	mu    sync.Mutex // one input at a time: taps, buttons, the portal, ticks
	enrol firmware.Enroller

	pings   chan chan struct{} // Ping's questions, answered by Run's loop
	running chan struct{}      // closed when Run's loop takes events
	once    sync.Once
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
	t := &Terminal{o: o, warnedAt: -1, pings: make(chan chan struct{}), running: make(chan struct{})}
	t.enrol.Timeout, t.enrol.PortalTimeout = o.Enrol.Timeout, o.Enrol.PortalTimeout
	return t, nil
}

// Run handles card events until ctx ends.
func (t *Terminal) Run(ctx context.Context, events <-chan rc522.Event) error {
	tick := time.NewTicker(t.o.Every)
	defer tick.Stop()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	t.housekeeping()
	t.once.Do(func() { close(t.running) })
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case done := <-t.pings:
			t.mu.Lock() // held by a tap, a button, the portal: they must let go
			t.mu.Unlock()
			close(done)
		case ev := <-events:
			if ev.Kind == rc522.Presented {
				t.Tap(ev.Card.UID)
			}
		case <-second.C:
			t.Tick()
		case <-tick.C:
			t.housekeeping()
		}
	}
}

// Running is closed once Run takes card events.
func (t *Terminal) Running() <-chan struct{} { return t.running }

// Ping returns nil once Run's loop has answered: it is taking events, and
// no tap, button or portal request holds the terminal. It returns ctx's
// error when the loop does not answer in time (it is blocked, or not
// running): the watchdog's question.
func (t *Terminal) Ping(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case t.pings <- done:
	case <-ctx.Done():
		return fmt.Errorf("the tap loop does not take events: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the tap loop is held by a tap, a button or the portal: %w", ctx.Err())
	}
}

// Tap handles one presented card: an enrolment step when enrolment is open
// or the card is a staff card, else a tap decided and recorded. Feedback
// comes only after the store has committed what the card did. A staff
// card never counts attendance: it returns a zero Event and Decision.
func (t *Terminal) Tap(uid []byte) (store.Event, firmware.Decision, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := t.o.Clock.Stamp()
	key := firmware.CardKey(t.o.Key, uid)
	if r, _, err := t.o.Store.Roster(); err == nil {
		if step, handled := t.enrol.Tap(r, key, at.Time); handled {
			if step.Bind == nil {
				t.showStep(step)
				return store.Event{}, firmware.Decision{}, nil
			}
			return t.bind(r, step.Bind, uid, at)
		}
	}
	req := store.TapRequest{
		At:       at,
		CardKey:  key,
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

// bind records a binding handed over by the Enroller, then confirms it,
// or shows why the rules refuse it.
func (t *Terminal) bind(r *firmware.Roster, b *firmware.Binding, uid []byte, at store.Stamp) (store.Event, firmware.Decision, error) {
	ev, ch, err := t.o.Store.Bind(store.BindRequest{At: at, Child: b.Child, CardKey: b.Card, UID: uid, By: b.By, Flow: b.Flow})
	var ref *firmware.Refused
	switch {
	case errors.As(err, &ref):
		t.o.Show(firmware.RefusedFeedback(ref.Reason))
		t.o.Logger.Warn("enrolment refused", "child", b.Child, "by", b.By, "flow", b.Flow, "reason", ref.Reason, "detail", ref.Detail)
		return ev, firmware.Decision{}, err
	case err != nil:
		t.o.Show(firmware.ErrorFeedback(t.o.Language))
		t.o.Logger.Error("binding not recorded; nothing changed", "child", b.Child, "err", err)
		return ev, firmware.Decision{}, err
	}
	name := b.Child
	if c := r.ChildByID(b.Child); c != nil {
		name = c.Name
	}
	t.o.Show(firmware.BoundFeedback(name, ch.OldCard != ""))
	t.o.Logger.Info("card bound", "seq", ev.Seq, "child", b.Child, "by", b.By, "flow", b.Flow, "replaced", ch.OldCard != "")
	if t.o.Bound != nil {
		t.o.Bound(ev, ch)
	}
	return ev, firmware.Decision{Outcome: firmware.CardBound, ChildID: b.Child}, nil
}

// Press handles an enrolment button.
func (t *Terminal) Press(b firmware.Button) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, _, err := t.o.Store.Roster()
	if err != nil {
		return
	}
	t.showStep(t.enrol.Press(r, b, t.o.Clock.Stamp().Time))
}

// Tick ends an enrolment left silent for its timeout; Run calls it each
// second.
func (t *Terminal) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.showStep(t.enrol.Tick(t.o.Clock.Stamp().Time))
}

// EnrolFor opens enrolment for a child at the portal's request: the next
// card presented is bound to the child. It returns the screen shown.
func (t *Terminal) EnrolFor(child, by string) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, _, err := t.o.Store.Roster()
	if err != nil {
		return nil, fmt.Errorf("no roster yet: %w", err)
	}
	step, err := t.enrol.StartFor(r, child, by, t.o.Clock.Stamp().Time)
	if err != nil {
		return nil, err
	}
	t.showStep(step)
	t.o.Logger.Info("enrolment opened by the portal", "child", child, "by", by)
	return step.Screen, nil
}

// Enrolling reports whether enrolment is open.
func (t *Terminal) Enrolling() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.enrol.Active()
}

func (t *Terminal) showStep(s firmware.Step) {
	if len(s.Screen) > 0 {
		t.o.Show(firmware.EnrolFeedback(s.Screen))
	}
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
