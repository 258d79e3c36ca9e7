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
	// Removed: a card that was Presented has left the field, or missed
	// Options.RemovalMisses presence checks in a row. One Removed per
	// Presented: a card Removed on missed checks that a reset finds still
	// on the reader is not Presented again (see "A reset is no tap" in the
	// package docs), nor Removed again when it goes.
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

// halted is a card this reader has selected and sent to HALT and has not
// seen go for certain: a card held on the reader (Presented, checked), or
// one Removed because its presence checks went unanswered, which may still
// lie halted on the reader with its answers lost at the edge of the field
// (REQA cannot see a halted card; only the checks' WUPA could). No check is
// spent on a removed card: its record only keeps a reset from turning it
// into a second presentation.
//
// # A reset is no tap
//
// A reset switches the field off: every card on the reader loses power and
// comes back in IDLE, where it answers REQA as if just placed. So when the
// field comes back every record is woken, and a woken card that a REQA
// finds lay on the reader through the reset: it is halted again with no
// event, and stays held or removed as it was (no second Presented, and no
// second Removed for a card already reported gone).
//
// The bound is the reader's first look at the field after it comes back,
// not a timer: records stay woken until the first poll that ends in
// silence, and only that long. Dev.reset waits the activation time of
// ISO/IEC 14443-3 (5.1 ms) before that poll, so every card on the reader
// can answer it, and while records are woken a REQA that gets no answer is
// sent again, 2·RemovalMisses−1 times in a row, so that RemovalMisses−1
// lost answers do not end the look (a card whose ATQA was lost sits in
// READY, where the next REQA only sends it back to IDLE). The look is one
// poll, or one more for each new card it reports, as a poll reports one.
// When it ends in silence, a woken card not found is not on the reader: a
// held one will miss its checks, a removed one's record is dropped.
//
// Why this cannot swallow a tap the reader could see: another card has no
// record (its UID is confirmed by SAK on every cascade level). The same
// card taken away comes back in IDLE, and if the field did not come back
// in between, its record is not woken and the poll that finds it reports
// it, at once. If the field did come back, the card is merged only if it
// was on the reader at the first look: put back while the chip was wedged,
// the field off, or the reset waiting out the activation time, when the
// reader could see nothing and nothing it can observe tells that card from
// one that never left. It is the blind spot in which a held card taken
// away and brought back has always been merged. A card put back after the
// first look finds its record dropped or no longer woken: reported.
type halted struct {
	card    Card
	removed bool   // Removed was reported; no presence checks
	misses  int    // presence checks missed in a row (held cards)
	seq     uint64 // order of its removal, to forget the oldest first
	woken   bool   // the field came back since it was halted; see above
}

// maxCardsPerPoll bounds how many cards one poll resolves.
const maxCardsPerPoll = 8

// maxRemoved bounds the removed cards remembered until the field next comes
// back; past it the oldest removal is forgotten (should that card lie on
// the reader at the next reset, it is Presented again).
const maxRemoved = 64

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
	r := &runner{d: d, out: out, cards: map[string]*halted{}, fieldUps: d.fieldUps}
	return r.run(ctx)
}

type runner struct {
	d        *Dev
	out      chan<- Event
	cards    map[string]*halted // by UID
	seq      uint64             // order of removals, to forget the oldest
	fieldUps uint64             // Dev.fieldUps when the records were last woken
	looking  bool               // records are woken: the first look is not over
	recent   map[string]bool    // cards the last poll halted
	stuck    int
	spiFails int
	bad      int
}

func (r *runner) run(ctx context.Context) error {
	d := r.d
	if up, why := d.Up(); !up {
		if err := r.recover(ctx, why); err != nil {
			return err
		}
	}
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
		if (err == nil || errors.Is(err, ErrNoCard)) && r.holding() && !now.Before(nextPresence) {
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
	// A reader that does not come back is retried for ever: the terminal
	// must read cards again as soon as it can. For a minute the retries
	// come quickly (20 ms apart, growing to 1 s: a glitch, garbage on
	// MISO, clears within them); a reader still silent after that is
	// unplugged or unpowered, and is retried at a doubling interval up to
	// RetryMax. Failures are logged at each doubling of their count rather
	// than each attempt, and Up and OnChange tell the status report and
	// the screen.
	const quickFor = time.Minute
	start := time.Now()
	wait := time.Duration(0)
	for attempt := 1; ; attempt++ {
		rerr := d.reset()
		if rerr == nil {
			break
		}
		d.stats.resetFailures.Add(1)
		if attempt == 1 || attempt&(attempt-1) == 0 {
			d.log.Error("rc522: hard reset failed; the reader chip does not answer", "err", rerr, "attempt", attempt, "next_in", wait)
		}
		switch {
		case attempt == 3: // not a passing glitch: say so
			if d.down.Swap(&rerr) == nil && d.opts.OnChange != nil {
				d.opts.OnChange(rerr)
			}
		case attempt > 3:
			d.down.Store(&rerr)
		}
		if time.Since(start) < quickFor {
			wait = min(time.Duration(attempt)*20*time.Millisecond, time.Second, d.opts.RetryMax)
		} else {
			wait = min(2*wait, d.opts.RetryMax)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	if d.down.Swap(nil) != nil {
		d.log.Info("rc522: the reader chip answers again", "version", fmt.Sprintf("%#02x", d.version))
		if d.opts.OnChange != nil {
			d.opts.OnChange(nil)
		}
	}
	// The reset switched the field off and on: the records are woken
	// before the next exchange with a card (fieldCameBack).
	return nil
}

// holding reports whether a card is held, so presence checks are due.
func (r *runner) holding() bool {
	for _, h := range r.cards {
		if !h.removed {
			return true
		}
	}
	return false
}

// fieldCameBack marks every record woken if the field was switched off and
// on since the records were last looked at: every card it covered lost
// power, and any still on the reader is now in IDLE.
func (r *runner) fieldCameBack() {
	if r.fieldUps == r.d.fieldUps {
		return
	}
	r.fieldUps = r.d.fieldUps
	for _, h := range r.cards {
		h.woken = true
		r.looking = true
	}
}

// sawNone is told that a poll's REQA, asked as often as the first look
// asks it, got no answer: the first look is over, and a woken card it did
// not find is not on the reader (in IDLE it would have answered). A held
// one is left to its presence checks; a removed one's record is dropped,
// so that its next presentation is reported.
func (r *runner) sawNone() {
	if !r.looking {
		return
	}
	r.looking = false
	for key, h := range r.cards {
		if h.woken && h.removed {
			delete(r.cards, key)
		}
		h.woken = false
	}
}

// remove reports a held card Removed and keeps its record, as it may still
// lie halted on the reader.
func (r *runner) remove(ctx context.Context, h *halted) error {
	r.seq++
	h.removed, h.misses, h.seq = true, 0, r.seq
	var oldest string
	n := 0
	for key, o := range r.cards {
		if o.removed {
			n++
			if oldest == "" || o.seq < r.cards[oldest].seq {
				oldest = key
			}
		}
	}
	if n > maxRemoved {
		delete(r.cards, oldest)
	}
	return r.emit(ctx, Removed, h.card)
}

// poll looks for cards in IDLE: new ones, or recorded ones that lost
// power. It reports at most one new card, and leaves the next to the next
// poll: nothing more goes on the air while the tap is being recorded. With
// askTwice, a first REQA without an answer is repeated.
//
// A recorded card found here is one of three things. Woken (the field came
// back since it was halted, and this is the first look after): it lay on
// the reader through the reset, held or removed, and is halted again with
// no event (see halted). Held and not woken: it left the field and came
// back between two checks, so it is Removed and Presented again. Removed
// and not woken: taken away and brought back, a new presentation.
func (r *runner) poll(ctx context.Context, askTwice bool) error {
	d := r.d
	r.fieldCameBack()
	recent := r.recent
	r.recent = nil
	// A card halted by the last poll that missed its HLTA stayed ACTIVE:
	// the first REQA sends it to IDLE, the second finds it.
	askTwice = askTwice || len(recent) > 0
	for i := range maxCardsPerPoll {
		asks := 1
		if askTwice {
			asks = 2
		}
		if r.looking {
			asks = max(asks, 2*d.opts.RemovalMisses-1)
		}
		atqa, err := d.request(ctx, false, i == 0 && asks == 1)
		for n := 1; errors.Is(err, ErrNoCard) && n < asks; n++ {
			askTwice = false
			atqa, err = d.request(ctx, false, false)
		}
		if errors.Is(err, ErrNoCard) {
			r.sawNone()
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
		h, ok := r.cards[key]
		if woken := ok && h.woken; woken || recent[key] || r.recent[key] {
			if woken {
				// It lay on the reader when the field came back.
				h.woken, h.misses = false, 0
			}
			// Halted again, or halted now after missing the HLTA of the
			// last poll or of this one (the first look asks again, and its
			// next REQA sends a card left ACTIVE back to IDLE). A lost HLTA
			// leaves it ACTIVE, so the next poll looks twice.
			if r.recent == nil {
				r.recent = map[string]bool{}
			}
			r.recent[key] = true
			continue
		}
		if ok && !h.removed {
			// Held and halted, yet it answered REQA: it lost power, so it
			// left the field and came back.
			if err := r.emit(ctx, Removed, h.card); err != nil {
				return err
			}
		}
		r.cards[key] = &halted{card: c}
		r.recent = map[string]bool{key: true}
		return r.emit(ctx, Presented, c)
	}
	return nil
}

// checkPresence wakes each held card and counts the ones that do not come.
// A woken card that answers stays woken: the check selected it from IDLE
// and its closing REQA sent it back there, so the poll that follows is what
// halts it again, without an event.
func (r *runner) checkPresence(ctx context.Context) error {
	r.fieldCameBack()
	for _, h := range r.cards {
		if h.removed {
			continue
		}
		ok, err := r.d.present(ctx, h.card.UID)
		if err != nil && !errors.Is(err, ErrBadFrame) {
			return err
		}
		if ok {
			h.misses = 0
			continue
		}
		h.misses++
		if h.misses >= r.d.opts.RemovalMisses {
			// A chip that has stopped working misses every card: make sure
			// it is alive before believing the card has gone.
			if err := r.d.health(); err != nil {
				return r.recover(ctx, err)
			}
			if err := r.remove(ctx, h); err != nil {
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
