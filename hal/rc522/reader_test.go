package rc522_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

var (
	uid4  = []byte{0xDE, 0xAD, 0xBE, 0xEF}
	uid7  = []byte{0x04, 0x6A, 0x2B, 0x5C, 0x1D, 0x80, 0x00}
	uid10 = []byte{0x05, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09}
)

// rig is a reader on an instant emulator, running in the background.
type rig struct {
	t      *testing.T
	chip   *rc522emu.Chip
	dev    *rc522.Dev
	events chan rc522.Event
	cancel context.CancelFunc
	done   chan error
}

type rigOptions struct {
	noIRQ bool
	chip  rc522emu.Options
	dev   rc522.Options
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	chip := rc522emu.New(o.chip)
	var irq gpio.PinIn
	if !o.noIRQ {
		irq = chip.IRQ()
	}
	if o.dev.PollInterval == 0 {
		o.dev.PollInterval = 200 * time.Microsecond
	}
	if o.dev.PresenceInterval == 0 {
		o.dev.PresenceInterval = 400 * time.Microsecond
	}
	if o.dev.HealthInterval == 0 {
		o.dev.HealthInterval = 5 * time.Millisecond
	}
	dev, err := rc522.New(chip, chip.RST(), irq, o.dev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, chip: chip, dev: dev, events: make(chan rc522.Event, 64), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- dev.Run(ctx, r.events) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run ended with %v", err)
		}
		chip.Close()
	})
	return r
}

// expect waits for the next event and checks it.
func (r *rig) expect(kind rc522.EventKind, uid []byte) rc522.Event {
	r.t.Helper()
	select {
	case ev := <-r.events:
		if ev.Kind != kind || !bytes.Equal(ev.Card.UID, uid) {
			r.t.Fatalf("event %s % X, want %s % X", ev.Kind, ev.Card.UID, kind, uid)
		}
		return ev
	case <-time.After(15 * time.Second):
		r.t.Fatalf("no %s % X within 15 s (stats %+v)", kind, uid, r.dev.Stats())
	}
	return rc522.Event{}
}

// quiet lets the reader send n more frames and checks no event came.
func (r *rig) quiet(n uint64) {
	r.t.Helper()
	r.waitFrames(n)
	select {
	case ev := <-r.events:
		r.t.Fatalf("unexpected %s % X (stats %+v)", ev.Kind, ev.Card.UID, r.dev.Stats())
	default:
	}
}

// drain waits until the chip has used up an injected fault.
func (r *rig) drain(f rc522emu.Fault) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.chip.Pending(f) > 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("fault %d still armed %d times after 20 s (stats %+v)", f, r.chip.Pending(f), r.dev.Stats())
		}
		time.Sleep(100 * time.Microsecond) // polling a condition, with a deadline
	}
}

func (r *rig) waitFrames(n uint64) {
	r.t.Helper()
	r.waitFor("frames", func(s rc522.Stats) bool { return s.Frames >= n }, n)
}

// waitFor waits until cond holds of the driver's stats, counted from now.
func (r *rig) waitFor(what string, cond func(rc522.Stats) bool, n uint64) {
	r.t.Helper()
	base := r.dev.Stats()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := r.dev.Stats()
		d := rc522.Stats{
			Frames: s.Frames - base.Frames, BadFrames: s.BadFrames - base.BadFrames,
			Recoveries: s.Recoveries - base.Recoveries, Collisions: s.Collisions - base.Collisions,
			SPIErrors: s.SPIErrors - base.SPIErrors, Stuck: s.Stuck - base.Stuck,
		}
		if cond(d) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: condition not met within 10 s (since start: %+v)", what, d)
		}
		time.Sleep(100 * time.Microsecond) // polling a condition, with a deadline
	}
}

func TestPresentedOncePerPresentation(t *testing.T) {
	for _, irq := range []bool{true, false} {
		for _, uid := range [][]byte{uid4, uid7, uid10} {
			name := fmt.Sprintf("%s/uid=%d", map[bool]string{true: "irq", false: "polling"}[irq], len(uid))
			t.Run(name, func(t *testing.T) {
				r := newRig(t, rigOptions{noIRQ: !irq})
				card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
				r.chip.Place(card)
				ev := r.expect(rc522.Presented, uid)
				wantSAK := byte(0x00)
				if len(uid) == 4 {
					wantSAK = 0x08
				}
				if ev.Card.SAK != wantSAK || ev.Card.ATQA[0]&0x1F != 0x04 {
					t.Errorf("ATQA % X SAK %#02x", ev.Card.ATQA, ev.Card.SAK)
				}
				// Held: hundreds of polls and presence checks, no new event.
				r.quiet(600)
				if s := r.chip.State(card); s != "HALT" && s != "READY*" && s != "ACTIVE*" {
					t.Errorf("held card in %s, want a halted state", s)
				}
				r.chip.Remove(card)
				r.expect(rc522.Removed, uid)
				r.quiet(50)
				r.chip.Place(card)
				r.expect(rc522.Presented, uid)
			})
		}
	}
}

// A card held for minutes: at the default 45 ms poll and 100 ms presence
// interval, two minutes are 2,600 REQA polls and 1,200 presence checks of
// three frames (WUPA, SELECT, HLTA; a 7-byte UID adds a SELECT): over 6,000
// frames. The emulator runs them without the waiting in between.
func TestCardHeldForMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("long hold in -short mode")
	}
	r := newRig(t, rigOptions{dev: rc522.Options{PollInterval: 20 * time.Microsecond, PresenceInterval: 40 * time.Microsecond}})
	card := rc522emu.NewCard(uid7, rc522emu.CardOptions{})
	r.chip.Place(card)
	r.expect(rc522.Presented, uid7)
	r.quiet(6_500)
	if s := r.dev.Stats(); s.BadFrames != 0 || s.Recoveries != 0 {
		t.Errorf("stats after the hold: %+v", s)
	}
	r.chip.Remove(card)
	r.expect(rc522.Removed, uid7)
}

func TestTwoCardsAtOnce(t *testing.T) {
	for _, pair := range [][2][]byte{
		{{0x11, 0x20, 0x33, 0x44}, {0x11, 0x24, 0x35, 0x46}}, // differ in byte 1
		{{0x11, 0x22, 0x33, 0x44}, {0x91, 0x22, 0x33, 0x44}}, // differ in the last bit of byte 0
		{uid7, {0x04, 0x6A, 0x2B, 0x5C, 0x1D, 0x80, 0x01}},   // same CL1, differ on level 2
		{uid4, uid10}, // sizes differ: ATQAs collide
		{{0x01, 0x02, 0x03, 0x04}, {0x01, 0x02, 0x03, 0x84}},                   // differ in the 32nd bit
		{{0x04, 1, 2, 3, 4, 5, 6}, {0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9}},          // CT parts equal up to level 2
		{{0x08, 0x00, 0x00, 0x00}, {0xF7, 0xFF, 0xFF, 0xFF}},                   // every bit differs
		{{0x08, 0x00, 0x00, 0x00, 0, 0, 0}, {0x08, 0x00, 0x00, 0x00, 0, 0, 1}}, // 7-byte, last bit
	} {
		r := newRig(t, rigOptions{})
		a := rc522emu.NewCard(pair[0], rc522emu.CardOptions{})
		b := rc522emu.NewCard(pair[1], rc522emu.CardOptions{})
		r.chip.Place(a)
		r.chip.Place(b)
		seen := map[string]bool{}
		for range 2 {
			ev := <-r.events
			if ev.Kind != rc522.Presented {
				t.Fatalf("%s for % X", ev.Kind, ev.Card.UID)
			}
			if !bytes.Equal(ev.Card.UID, pair[0]) && !bytes.Equal(ev.Card.UID, pair[1]) {
				t.Fatalf("wrong UID % X from cards % X and % X", ev.Card.UID, pair[0], pair[1])
			}
			seen[string(ev.Card.UID)] = true
		}
		if len(seen) != 2 {
			t.Fatalf("cards % X and % X: saw %d distinct UIDs", pair[0], pair[1], len(seen))
		}
		r.quiet(300)
		r.chip.Remove(b)
		r.expect(rc522.Removed, pair[1])
		r.quiet(100)
		r.cancel()
	}
}

func TestCardRemovedMidRead(t *testing.T) {
	for _, uid := range [][]byte{uid4, uid7, uid10} {
		r := newRig(t, rigOptions{})
		card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
		// The card leaves halfway through one of its answers: ATQA, a UID
		// part, or a SAK. Whatever it was, no Presented may come of it.
		r.chip.RemoveDuringNextAnswer(card)
		r.chip.Place(card)
		r.quiet(200)
		if r.dev.Stats().BadFrames == 0 {
			t.Error("a truncated answer was not counted as a bad frame")
		}
		r.chip.Place(card)
		r.expect(rc522.Presented, uid)
		r.quiet(100)
	}
}

func TestBadSAKIsReadAgain(t *testing.T) {
	// The SAK arrives with a wrong CRC_A: nothing is reported from that
	// read; the card, back in IDLE, is read again on a later poll.
	r := newRig(t, rigOptions{})
	card := rc522emu.NewCard(uid4, rc522emu.CardOptions{})
	r.chip.Inject(rc522emu.FaultCRCError, 1)
	r.chip.Place(card)
	r.expect(rc522.Presented, uid4)
	if r.dev.Stats().BadFrames == 0 {
		t.Error("the SAK with a wrong CRC was not counted")
	}
	r.quiet(100)
}

func TestWedgedChipRecovers(t *testing.T) {
	for _, mode := range []rc522emu.WedgeMode{rc522emu.WedgeStuckState, rc522emu.WedgeStuckBus} {
		for _, irq := range []bool{true, false} {
			r := newRig(t, rigOptions{noIRQ: !irq})
			card := rc522emu.NewCard(uid7, rc522emu.CardOptions{})
			r.chip.Place(card)
			r.expect(rc522.Presented, uid7)
			r.chip.Wedge(mode)
			r.waitFor("recovery", func(s rc522.Stats) bool { return s.Recoveries >= 1 }, 0)
			// The card never left: the reset's field cycle must not turn
			// into a second presentation.
			r.quiet(300)
			r.chip.Remove(card)
			r.expect(rc522.Removed, uid7)
			other := rc522emu.NewCard(uid4, rc522emu.CardOptions{})
			r.chip.Place(other)
			r.expect(rc522.Presented, uid4)
			if got := r.chip.Stats().HardResets; got < 2 {
				t.Errorf("wedge %d irq %v: %d hard resets, want the initial one and a recovery", mode, irq, got)
			}
			r.cancel()
		}
	}
}

func TestBadInputNeverMakesEvents(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       rc522emu.Fault
		empty, card int // occurrences armed with an empty field, then with a card
	}{
		{"garbage on MISO", rc522emu.FaultGarbageMISO, 40, 15},
		{"CRC errors", rc522emu.FaultCRCError, 0, 30},
		{"parity errors", rc522emu.FaultParityError, 0, 30},
		{"SPI errors", rc522emu.FaultSPIError, 8, 8},
		{"lost answers", rc522emu.FaultNoAnswer, 0, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{chip: rc522emu.Options{Seed: 7}})
			// Empty field, faults: no event at all.
			r.chip.Inject(tc.fault, tc.empty)
			r.drain(tc.fault)
			r.quiet(100)
			// A card through a storm of faults: its own UID, once.
			card := rc522emu.NewCard(uid7, rc522emu.CardOptions{})
			r.chip.Inject(tc.fault, tc.card)
			r.chip.Place(card)
			r.expect(rc522.Presented, uid7)
			r.drain(tc.fault)
			r.quiet(300)
			if s := r.dev.Stats(); s.BadFrames+s.SPIErrors+s.Stuck == 0 && tc.fault != rc522emu.FaultNoAnswer {
				t.Errorf("faults went unnoticed: %+v", s)
			}
		})
	}
}

func TestGarbageEverywhere(t *testing.T) {
	// Many seeds of garbage with a card present: only its UID may appear.
	for seed := uint64(1); seed <= 20; seed++ {
		r := newRig(t, rigOptions{chip: rc522emu.Options{Seed: seed}})
		card := rc522emu.NewCard(uid4, rc522emu.CardOptions{})
		r.chip.Place(card)
		r.expect(rc522.Presented, uid4)
		for range 10 {
			r.chip.Inject(rc522emu.FaultGarbageMISO, 3)
			r.waitFrames(5)
		}
		r.quiet(100)
		r.cancel()
	}
}

func TestVersionCheck(t *testing.T) {
	for _, v := range []byte{0xFF, 0x12, 0x88, 0xB2, 0x90} {
		chip := rc522emu.New(rc522emu.Options{Version: v})
		_, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{})
		if !errors.Is(err, rc522.ErrVersion) {
			t.Errorf("VersionReg %#02x: err %v, want ErrVersion", v, err)
		}
	}
	for _, v := range []byte{0x91, 0x92} {
		chip := rc522emu.New(rc522emu.Options{Version: v})
		dev, err := rc522.New(chip, chip.RST(), nil, rc522.Options{})
		if err != nil || dev.Version() != v {
			t.Errorf("VersionReg %#02x: %v", v, err)
		}
	}
}

func TestOptionsChecked(t *testing.T) {
	chip := rc522emu.New(rc522emu.Options{})
	for _, o := range []rc522.Options{
		{RxGainDB: 20},
		{RemovalMisses: -1},
		{PollInterval: -time.Second},
	} {
		if _, err := rc522.New(chip, chip.RST(), nil, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := rc522.New(chip, nil, nil, rc522.Options{}); err == nil {
		t.Error("nil RST accepted")
	}
}

func TestScan(t *testing.T) {
	chip := rc522emu.New(rc522emu.Options{})
	dev, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := dev.Scan(ctx); !errors.Is(err, rc522.ErrNoCard) {
		t.Fatalf("Scan of an empty field: %v", err)
	}
	for _, uid := range [][]byte{uid4, uid7, uid10} {
		card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
		chip.Place(card)
		c, err := dev.Scan(ctx)
		if err != nil || !bytes.Equal(c.UID, uid) {
			t.Fatalf("Scan = % X, %v; want % X", c.UID, err, uid)
		}
		if s := chip.State(card); s != "HALT" {
			t.Errorf("after Scan the card is %s, want HALT", s)
		}
		if _, err := dev.Scan(ctx); !errors.Is(err, rc522.ErrNoCard) {
			t.Errorf("Scan with only a halted card: %v", err)
		}
		chip.Remove(card)
	}
}

// A card that does not hear its HLTA must not come back as a second
// presentation.
func TestLostHLTAIsNoSecondPresentation(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		r := newRig(t, rigOptions{})
		card := rc522emu.NewCard(uid4, rc522emu.CardOptions{})
		r.chip.LoseFrames(0x50, n)
		r.chip.Place(card)
		r.expect(rc522.Presented, uid4)
		r.quiet(300)
		r.chip.Remove(card)
		r.expect(rc522.Removed, uid4)
		r.cancel()
	}
}

// A chip that wedges with nobody at the reader is found by the health
// check, so the next child's card is read.
func TestWedgeWithEmptyField(t *testing.T) {
	for _, mode := range []rc522emu.WedgeMode{rc522emu.WedgeStuckState, rc522emu.WedgeStuckBus} {
		for _, irq := range []bool{true, false} {
			r := newRig(t, rigOptions{noIRQ: !irq})
			r.waitFrames(20)
			r.chip.Wedge(mode)
			r.waitFor("recovery", func(s rc522.Stats) bool { return s.Recoveries >= 1 }, 0)
			card := rc522emu.NewCard(uid10, rc522emu.CardOptions{})
			r.chip.Place(card)
			r.expect(rc522.Presented, uid10)
			r.cancel()
		}
	}
}

func TestClonesNeedConsent(t *testing.T) {
	chip := rc522emu.New(rc522emu.Options{Version: 0x88})
	_, err := rc522.New(chip, chip.RST(), nil, rc522.Options{})
	if !errors.Is(err, rc522.ErrVersion) || !strings.Contains(err.Error(), "FM17522") || !strings.Contains(err.Error(), "-allow-clone") {
		t.Errorf("clone refused with %v", err)
	}
	chip = rc522emu.New(rc522emu.Options{Version: 0x88})
	dev, err := rc522.New(chip, chip.RST(), nil, rc522.Options{AllowClones: true})
	if err != nil || dev.Version() != 0x88 {
		t.Errorf("clone with AllowClones: %v", err)
	}
}
