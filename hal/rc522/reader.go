package rc522

import (
	"context"
	"errors"
	"fmt"
	"time"

	"kiumtap/hal/rc522/reg"
)

// EventKind says what happened to a card.
type EventKind int

const (
	// Presented: a card was placed in the field (once per presentation).
	Presented EventKind = iota + 1
	// Removed: a card that was Presented has left the field.
	Removed
)

func (k EventKind) String() string {
	switch k {
	case Presented:
		return "Presented"
	case Removed:
		return "Removed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a card event.
type Event struct {
	Kind EventKind
	Card Card
	Time time.Time // from Options.Now, when the driver was sure
}

// held is a card on the reader: selected, reported, halted.
type held struct {
	card   Card
	misses int
	// unconfirmed: the field was switched off under it (a reset), so the
	// card is back in IDLE through no move of its own; finding it again is
	// not a new presentation.
	unconfirmed bool
}

// maxCardsPerPoll bounds how many cards one poll resolves.
const maxCardsPerPoll = 8

// stuckLimit and spiErrorLimit are how many failures in a row make the
// driver reset the chip through RST.
const (
	stuckLimit    = 2
	spiErrorLimit = 3
)

// Run polls the field until ctx ends, sends card events to out, and
// returns ctx's error. A chip that stops working is reset through RST and,
// if it does not come back, reset again with a capped backoff for as long
// as Run runs. Run must not be called twice at once.
func (d *Dev) Run(ctx context.Context, out chan<- Event) error {
	r := &runner{d: d, out: out, held: map[string]*held{}}
	return r.run(ctx)
}

type runner struct {
	d        *Dev
	out      chan<- Event
	held     map[string]*held
	stuck    int
	spiFails int
	bad      int
}

func (r *runner) run(ctx context.Context) error {
	d := r.d
	now := time.Now()
	nextPoll, nextPresence, nextHealth := now, now.Add(d.opts.PresenceInterval), now.Add(d.opts.HealthInterval)
	for {
		if err := sleep(ctx, time.Until(nextPoll)); err != nil {
			return err
		}
		var err error
		now = time.Now()
		if !now.Before(nextHealth) {
			nextHealth = now.Add(d.opts.HealthInterval)
			err = d.health()
		}
		// New cards first: a child waiting for the beep matters more than
		// noticing that a card has gone.
		if err == nil {
			err = r.poll(ctx)
		}
		if (err == nil || errors.Is(err, ErrNoCard)) && len(r.held) > 0 && !now.Before(nextPresence) {
			nextPresence = now.Add(d.opts.PresenceInterval)
			err = r.checkPresence(ctx)
		}
		if err := r.handle(ctx, err); err != nil {
			return err
		}
		nextPoll = nextPoll.Add(d.opts.PollInterval)
		if now := time.Now(); nextPoll.Before(now) {
			nextPoll = now.Add(d.opts.PollInterval)
		}
	}
}

// handle sorts an error of one round: bad frames and lost cards are part of
// life, SPI errors and a chip that stops working call for a hard reset.
func (r *runner) handle(ctx context.Context, err error) error {
	d := r.d
	switch {
	case err == nil || errors.Is(err, ErrNoCard):
		r.stuck, r.spiFails, r.bad = 0, 0, 0
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrStuck) || errors.Is(err, ErrVersion):
		r.stuck++
	case errors.Is(err, ErrBadFrame):
		r.bad++
		if r.bad < 10*stuckLimit {
			return nil // a weak or moving card; try again next poll
		}
	default:
		r.spiFails++
	}
	if r.stuck < stuckLimit && r.spiFails < spiErrorLimit && r.bad < 10*stuckLimit {
		d.log.Debug("rc522: round failed", "err", err)
		return nil
	}
	d.stats.recoveries.Add(1)
	d.log.Warn("rc522: chip not working, hard reset through RST", "err", err, "recoveries", d.stats.recoveries.Load())
	r.stuck, r.spiFails, r.bad = 0, 0, 0
	// A reader that does not come back is retried for ever, with a capped
	// backoff: the terminal must read cards again as soon as it can, and
	// Stats.ResetFailures tells the status report why it cannot.
	for attempt := 0; ; attempt++ {
		rerr := d.reset()
		if rerr == nil {
			break
		}
		d.stats.resetFailures.Add(1)
		d.log.Error("rc522: hard reset failed", "err", rerr, "attempt", attempt+1)
		if err := sleep(ctx, min(time.Duration(attempt+1)*100*time.Millisecond, 2*time.Second)); err != nil {
			return err
		}
	}
	// The reset switched the field off: held cards are in IDLE now.
	for _, h := range r.held {
		h.unconfirmed = true
	}
	return nil
}

// poll looks for cards in IDLE: new ones, or held ones that lost power.
func (r *runner) poll(ctx context.Context) error {
	d := r.d
	for i := range maxCardsPerPoll {
		atqa, err := d.request(ctx, false, i == 0)
		if err != nil {
			return err
		}
		c, err := d.selectCard(ctx)
		if err != nil {
			return err
		}
		c.ATQA = atqa
		if err := d.halt(ctx); err != nil {
			return err
		}
		key := string(c.UID)
		if h, ok := r.held[key]; ok {
			if h.unconfirmed {
				h.unconfirmed, h.misses = false, 0
				continue
			}
			// Held and halted, yet it answered REQA: it lost power, so it
			// left the field and came back.
			delete(r.held, key)
			if err := r.emit(ctx, Removed, h.card); err != nil {
				return err
			}
		}
		r.held[key] = &held{card: c}
		if err := r.emit(ctx, Presented, c); err != nil {
			return err
		}
	}
	return nil
}

// checkPresence wakes each held card and counts the ones that do not come.
func (r *runner) checkPresence(ctx context.Context) error {
	for key, h := range r.held {
		ok, err := r.d.present(ctx, h.card.UID)
		if err != nil && !errors.Is(err, ErrBadFrame) {
			return err
		}
		if ok {
			h.misses, h.unconfirmed = 0, false
			continue
		}
		h.misses++
		if h.misses >= r.d.opts.RemovalMisses {
			delete(r.held, key)
			if err := r.emit(ctx, Removed, h.card); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) emit(ctx context.Context, kind EventKind, c Card) error {
	ev := Event{Kind: kind, Card: c, Time: r.d.opts.Now()}
	select {
	case r.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// health reads back the configuration and checks the chip has been
// working: a brown-out resets the chip's registers (the antenna goes off and
// no card is ever seen again), a wedged chip sends nothing. One transaction
// to read, one to clear TxIRq.
func (d *Dev) health() error {
	v, err := d.read(reg.VersionReg, reg.TxControlReg, reg.TxASKReg, reg.TModeReg, reg.ComIEnReg, reg.ComIrqReg)
	if err != nil {
		return err
	}
	switch {
	case v[0] != d.version:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: VersionReg now reads %#02x, was %#02x", ErrVersion, v[0], d.version)
	case v[1]&0x03 != 0x03 || v[2] != 0x40 || v[3]&0x80 == 0 || v[4] != 0xA2:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: configuration lost (TxControlReg %#02x, TxASKReg %#02x, TModeReg %#02x, ComIEnReg %#02x): the chip reset itself", ErrStuck, v[1], v[2], v[3], v[4])
	case d.sentSince && v[5]&0x40 == 0:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: frames were sent since the last check but TxIRq is not set", ErrStuck)
	}
	d.sentSince = false
	return d.write(reg.ComIrqReg, 0x40) // clear TxIRq
}
