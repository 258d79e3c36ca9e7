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
	badFrameLimit = 20 // malformed answers in a row without a card read
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
	recent   map[string]bool // cards the last poll halted
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
		now = time.Now()
		if !now.Before(nextHealth) {
			nextHealth = now.Add(d.opts.HealthInterval)
			if err := d.health(); err != nil {
				// The health check's findings are not a passing glitch.
				if err := r.recover(ctx, err); err != nil {
					return err
				}
			} else {
				r.stuck, r.spiFails = 0, 0
			}
		}
		// New cards first: a child waiting for the beep matters more than
		// noticing that a card has gone.
		err := r.poll(ctx, false)
		if (err == nil || errors.Is(err, ErrNoCard)) && len(r.held) > 0 && !now.Before(nextPresence) {
			nextPresence = now.Add(d.opts.PresenceInterval)
			err = r.checkPresence(ctx)
			if err == nil {
				// A held card that came back between two checks is now in
				// IDLE: find it at once. A card placed just now may have
				// answered the check's last REQA and sit in READY, where
				// the first REQA only sends it back to IDLE: ask twice.
				err = r.poll(ctx, true)
			}
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
// Only a passing health check or a card read clears the count of failures:
// an idle poll of a dead chip looks just like an empty field.
func (r *runner) handle(ctx context.Context, err error) error {
	switch {
	case err == nil:
		r.stuck, r.spiFails, r.bad = 0, 0, 0
		return nil
	case errors.Is(err, ErrNoCard):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrStuck) || errors.Is(err, ErrVersion):
		r.stuck++
	case errors.Is(err, ErrBadFrame):
		r.bad++
	default:
		r.spiFails++
	}
	if r.stuck < stuckLimit && r.spiFails < spiErrorLimit && r.bad < badFrameLimit {
		r.d.log.Debug("rc522: round failed", "err", err)
		return nil
	}
	return r.recover(ctx, err)
}

// recover resets the chip through RST, for as long as it takes.
func (r *runner) recover(ctx context.Context, why error) error {
	d := r.d
	d.stats.recoveries.Add(1)
	d.log.Warn("rc522: reader chip not working, hard reset through RST", "err", why, "recoveries", d.stats.recoveries.Load())
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
		if err := sleep(ctx, min(time.Duration(attempt)*20*time.Millisecond, time.Second)); err != nil {
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
// It reports at most one new card, and leaves the next to the next poll:
// nothing more goes on the air while the tap is being recorded. With
// askTwice, a first REQA without an answer is repeated.
func (r *runner) poll(ctx context.Context, askTwice bool) error {
	d := r.d
	recent := r.recent
	r.recent = nil
	// A card halted by the last poll that missed its HLTA stayed ACTIVE:
	// the first REQA sends it to IDLE, the second finds it.
	askTwice = askTwice || len(recent) > 0
	for i := range maxCardsPerPoll {
		atqa, err := d.request(ctx, false, i == 0 && !askTwice)
		if errors.Is(err, ErrNoCard) && askTwice {
			askTwice = false
			atqa, err = d.request(ctx, false, false)
		}
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
		if recent[key] {
			// It missed its HLTA; halted now. Check again next time.
			r.recent = map[string]bool{key: true}
			continue
		}
		if h, ok := r.held[key]; ok && h.unconfirmed {
			h.unconfirmed, h.misses = false, 0
			continue
		} else if ok {
			// Held and halted, yet it answered REQA: it lost power, so it
			// left the field and came back.
			delete(r.held, key)
			if err := r.emit(ctx, Removed, h.card); err != nil {
				return err
			}
		}
		r.held[key] = &held{card: c}
		r.recent = map[string]bool{key: true}
		return r.emit(ctx, Presented, c)
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
			// A chip that has stopped working misses every card: make sure
			// it is alive before believing the card has gone.
			if err := r.d.health(); err != nil {
				return r.recover(ctx, err)
			}
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

// health reads back the configuration and checks the chip is alive: a
// brown-out resets the chip's registers (the antenna goes off and no card is
// ever seen again), a wedged chip drops writes and sends nothing. A check
// writes a fresh scratch value (WaterLevelReg, which only sets the FIFO
// alert levels this driver does not use), reads it back with the
// configuration and TxIRq, and clears TxIRq for the next check: three
// transactions. A failed check is made again before it counts.
func (d *Dev) health() error {
	err := d.healthOnce()
	if err != nil {
		d.log.Debug("rc522: health check failed, checking again", "err", err)
		err = d.healthOnce()
	}
	return err
}

func (d *Dev) healthOnce() error {
	// A value other than what the register held: reading it back proves the
	// write landed.
	d.scratch = 0x05 + (d.scratchSeen+1)%4 // 0x05..0x08
	if err := d.write(reg.WaterLevelReg, d.scratch); err != nil {
		return err
	}
	v, err := d.read(reg.VersionReg, reg.TxControlReg, reg.TxASKReg, reg.TModeReg, reg.ComIEnReg, reg.ComIrqReg, reg.WaterLevelReg)
	if err != nil {
		return err
	}
	d.scratchSeen = v[6]
	switch {
	case v[0] != d.version:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: VersionReg now reads %#02x, was %#02x: the chip stopped answering on SPI (a loose wire, or a dip in its 3.3 V supply)", ErrVersion, v[0], d.version)
	case v[1]&0x03 != 0x03 || v[2] != reg.Force100ASK || v[3]&reg.TAuto == 0 || v[4] != reg.IRqInv|reg.RxIRq|reg.ErrIRq:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: the chip lost its configuration (TxControlReg %#02x, TxASKReg %#02x, TModeReg %#02x, ComIEnReg %#02x): it reset itself, probably a dip in its 3.3 V supply", ErrStuck, v[1], v[2], v[3], v[4])
	case v[6] != d.scratch:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: a register just written reads %#02x, not %#02x: the chip ignores writes", ErrStuck, v[6], d.scratch)
	case d.sentSince && v[5]&reg.TxIRq == 0:
		d.stats.stuck.Add(1)
		return fmt.Errorf("%w: frames were sent since the last check but the chip never finished sending one (no TxIRq)", ErrStuck)
	}
	d.sentSince = false
	return d.write(reg.ComIrqReg, reg.TxIRq) // Set1 = 0: clear TxIRq
}
