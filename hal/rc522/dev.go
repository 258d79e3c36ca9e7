package rc522

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522/reg"
)

// Errors. Each is wrapped with what was being done when it happened.
var (
	// ErrNoCard: nothing answered.
	ErrNoCard = errors.New("rc522: no card answered")
	// ErrBadFrame: an answer failed a check (length, BCC, CRC_A, parity,
	// impossible register value). Nothing is reported from it.
	ErrBadFrame = errors.New("rc522: malformed answer")
	// ErrStuck: the chip did not finish an exchange in time; it is
	// probably wedged and needs a hard reset.
	ErrStuck = errors.New("rc522: reader chip not working")
	// ErrVersion: VersionReg does not read 0x91 or 0x92.
	ErrVersion = errors.New("rc522: VersionReg is not an MFRC522's")
)

// Options configure a Dev. Zero values take the documented defaults.
type Options struct {
	// PollInterval is the time between REQA polls. Default 45 ms: a card
	// is seen within about 50 ms of being placed, and an empty field costs
	// under 100 SPI transactions a second (four a poll with the IRQ pin).
	PollInterval time.Duration
	// PresenceInterval is the time between presence checks of cards held
	// on the reader. Default 100 ms.
	PresenceInterval time.Duration
	// RemovalMisses is how many presence checks in a row a held card must
	// miss before it is Removed. Default 2, so one lost answer is not a
	// removal followed by a phantom second presentation. The first look
	// after a reset tolerates as many lost answers less one (see "A reset
	// is no tap" in the package docs).
	RemovalMisses int
	// RxGainDB is the receiver gain (RFCfgReg RxGain): 18, 23, 33, 38, 43
	// or 48 dB. Default 33 dB, the reset value's neighbour that the periph
	// driver also uses. Raise it for cards read through a thick case.
	RxGainDB int
	// HealthInterval is how often the chip's configuration and liveness
	// are checked when nothing else shows it is working. Default 1 s.
	HealthInterval time.Duration
	// AllowClones accepts the MFRC522 clones that answer VersionReg with
	// 0x88 or 0x89 (Fudan FM17522), 0xB2 (FM17522_1) or 0x12 (counterfeit
	// parts): they mostly work, but are not what the driver is tested on.
	AllowClones bool
	// SPIFrequency is the SPI clock. Default 10 MHz, the MFRC522's maximum.
	SPIFrequency physic.Frequency
	// WaitForChip: New does not fail when the chip does not answer its
	// reset (unplugged, unpowered, a broken wire); Run then retries the
	// reset with backoff until it does, and Up reports false meanwhile. A
	// terminal keeps its store, roster and link working while the reader
	// is repaired, rather than exiting and restarting in a loop. Default
	// false: New fails (kiumctl reader probe wants to know at once).
	WaitForChip bool
	// RetryMax caps the backoff between resets of a chip that does not
	// come back. Default 30 s; the first retries come within a second.
	RetryMax time.Duration
	// OnChange, if set, is told from Run's goroutine when the chip stops
	// answering (with why) and when it answers again (nil).
	OnChange func(err error)
	// Now is the clock that stamps events. Default time.Now.
	Now func() time.Time
	// Logger gets warnings (recoveries) and debug records (bad frames).
	// Default: discard.
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() error {
	if o.PollInterval == 0 {
		o.PollInterval = 45 * time.Millisecond
	}
	if o.PresenceInterval == 0 {
		o.PresenceInterval = 100 * time.Millisecond
	}
	if o.RemovalMisses == 0 {
		o.RemovalMisses = 2
	}
	if o.RxGainDB == 0 {
		o.RxGainDB = 33
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.SPIFrequency == 0 {
		o.SPIFrequency = 10 * physic.MegaHertz
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.PollInterval < 0 || o.PresenceInterval < 0 || o.HealthInterval < 0:
		return fmt.Errorf("rc522: intervals must be positive (poll %v, presence %v, health %v)", o.PollInterval, o.PresenceInterval, o.HealthInterval)
	case o.RemovalMisses < 1:
		return fmt.Errorf("rc522: RemovalMisses must be at least 1, not %d", o.RemovalMisses)
	case o.SPIFrequency > 10*physic.MegaHertz:
		return fmt.Errorf("rc522: the MFRC522's SPI runs at 10 MHz at most, not %s", o.SPIFrequency)
	}
	if _, err := rxGain(o.RxGainDB); err != nil {
		return err
	}
	return nil
}

func rxGain(db int) (byte, error) {
	switch db {
	case 18:
		return 0, nil // 000 and 010 are both 18 dB
	case 23:
		return 1, nil
	case 33:
		return 4, nil
	case 38:
		return 5, nil
	case 43:
		return 6, nil
	case 48:
		return 7, nil
	}
	return 0, fmt.Errorf("rc522: RxGainDB %d is not one the MFRC522 has (18, 23, 33, 38, 43, 48)", db)
}

// Stats count what the driver did and what went wrong; all fields only grow.
type Stats struct {
	SPITransactions uint64 // chip-select assertions this driver caused
	Frames          uint64 // frames sent to cards
	BadFrames       uint64 // answers that failed a check and were dropped
	Collisions      uint64 // bit collisions resolved
	SPIErrors       uint64 // failed SPI transfers
	Stuck           uint64 // exchanges the chip never completed
	Recoveries      uint64 // hard resets through RST after a wedge
	ResetFailures   uint64 // hard resets after which the chip did not answer
}

type stats struct {
	spiTx, frames, badFrames, collisions, spiErrors, stuck, recoveries, resetFailures atomic.Uint64
}

// Dev is an MFRC522 on SPI with its RST and, optionally, IRQ lines.
type Dev struct {
	opts Options
	conn spi.Conn
	rst  gpio.PinOut
	irq  gpio.PinIn // nil: poll the chip's registers instead
	log  *slog.Logger

	version byte
	stats   stats
	// down holds why the chip does not answer (an error); nil while it
	// does. Set by New (WaitForChip) and Run's recoveries.
	down atomic.Pointer[error]

	// What the driver knows of the chip's state, to skip redundant writes.
	transceiving bool      // Transceive active, modem waiting for StartSend
	irqDirty     bool      // RxIRq or ErrIRq may be set in ComIrqReg
	busyUntil    time.Time // a frame sent without waiting is still on air
	sentSince    bool      // a frame was sent since the last health check
	scratch      byte      // WaterLevelReg as the health check last wrote it
	scratchSeen  byte      // and as it last read it
	fieldUps     uint64    // times reset switched the field on
}

// The chip's timer runs 0.5 ms (40 kHz, 20 ticks) from the end of each
// frame: ISO/IEC 14443-3 answers to REQA, WUPA, ANTICOLLISION and SELECT
// start 86 to 91 µs after the frame, and the timer stops at the fifth bit
// of an answer, so 0.5 ms separates silence from any answer.
const (
	timerPrescaler = 169 // 13.56 MHz / (2·169+1) = 40 kHz
	timerReload    = 19
	timerPeriod    = time.Duration((2*timerPrescaler + 1) * (timerReload + 1) * int64(time.Second) / iso14443a.Fc)
	// slack covers the host's scheduling on top of air time.
	slack = 20 * time.Millisecond
	// activation is how long the field stays unmodulated after it comes on
	// before the first request: a PICC must accept REQA within 5 ms of an
	// unmodulated field, and ISO/IEC 14443-3 (5.2.1) asks the PCD for
	// 5.1 ms so as to find every card that does.
	activation = 5100 * time.Microsecond
)

// New connects to the chip on port, resets it through rst, checks its
// version and configures it. irq may be nil: the driver then polls the
// chip's registers. rst may not be nil: it is how a wedged chip is revived.
func New(port spi.Port, rst gpio.PinOut, irq gpio.PinIn, opts Options) (*Dev, error) {
	if port == nil {
		return nil, errors.New("rc522: no SPI port given")
	}
	if rst == nil {
		return nil, errors.New("rc522: no RST pin given: the driver needs it to reset a wedged chip")
	}
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	conn, err := port.Connect(opts.SPIFrequency, spi.Mode0, 8)
	if err != nil {
		return nil, fmt.Errorf("rc522: connecting to SPI port %s: %w", port, err)
	}
	d := &Dev{opts: opts, conn: conn, rst: rst, irq: irq, log: opts.Logger}
	if irq != nil {
		if err := irq.In(gpio.PullUp, gpio.FallingEdge); err != nil {
			return nil, fmt.Errorf("rc522: setting IRQ pin %s to falling-edge input: %w", irq.Name(), err)
		}
	}
	if err := d.reset(); err != nil {
		if !opts.WaitForChip {
			return nil, err
		}
		d.down.Store(&err)
		d.log.Error("rc522: the reader chip does not answer; retrying in the background", "err", err)
	}
	return d, nil
}

// Up reports whether the chip answers, and why not when it does not.
func (d *Dev) Up() (bool, error) {
	if e := d.down.Load(); e != nil {
		return false, *e
	}
	return true, nil
}

// Version returns what VersionReg read at the last reset: 0x91 or 0x92.
func (d *Dev) Version() byte { return d.version }

// Stats returns the counters so far. Safe to call from any goroutine.
func (d *Dev) Stats() Stats {
	return Stats{
		SPITransactions: d.stats.spiTx.Load(),
		Frames:          d.stats.frames.Load(),
		BadFrames:       d.stats.badFrames.Load(),
		Collisions:      d.stats.collisions.Load(),
		SPIErrors:       d.stats.spiErrors.Load(),
		Stuck:           d.stats.stuck.Load(),
		Recoveries:      d.stats.recoveries.Load(),
		ResetFailures:   d.stats.resetFailures.Load(),
	}
}

// String describes the device.
func (d *Dev) String() string {
	irq := "none (polling)"
	if d.irq != nil {
		irq = d.irq.Name()
	}
	return fmt.Sprintf("MFRC522 v%#02x [SPI %s, RST %s, IRQ %s]", d.version, d.conn, d.rst.Name(), irq)
}

// tx is one SPI transaction.
func (d *Dev) tx(w, r []byte) error {
	d.stats.spiTx.Add(1)
	if err := d.conn.Tx(w, r); err != nil {
		d.stats.spiErrors.Add(1)
		return fmt.Errorf("rc522: SPI transfer: %w", err)
	}
	return nil
}

// write writes data into register r in one transaction.
func (d *Dev) write(r byte, data ...byte) error {
	w := make([]byte, 0, 1+len(data))
	w = append(w, reg.Addr(r))
	w = append(w, data...)
	return d.tx(w, nil)
}

// read reads the registers named in one transaction.
func (d *Dev) read(regs ...byte) ([]byte, error) {
	w := make([]byte, len(regs)+1)
	for i, r := range regs {
		w[i] = reg.ReadAddr(r)
	}
	rd := make([]byte, len(w))
	if err := d.tx(w, rd); err != nil {
		return nil, err
	}
	return rd[1:], nil
}

// reset is a hard reset through RST followed by configuration: the way in
// at start and the way out of a wedge.
func (d *Dev) reset() error {
	if err := d.rst.Out(gpio.Low); err != nil {
		return fmt.Errorf("rc522: driving RST pin %s low: %w", d.rst.Name(), err)
	}
	time.Sleep(time.Millisecond) // t_reset is 100 ns; be generous
	if err := d.rst.Out(gpio.High); err != nil {
		return fmt.Errorf("rc522: driving RST pin %s high: %w", d.rst.Name(), err)
	}
	// The oscillator starts within 37.74 µs plus the crystal's own start-up;
	// CommandReg PowerDown reads 1 until the chip is ready.
	deadline := time.Now().Add(50 * time.Millisecond)
	for {
		v, err := d.read(reg.CommandReg, reg.VersionReg)
		if err != nil {
			return err
		}
		if v[0]&reg.PowerDown == 0 {
			d.version = v[1]
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rc522: chip still powering up 50 ms after reset (CommandReg %#02x): check its 3.3 V supply and crystal", v[0])
		}
		time.Sleep(time.Millisecond)
	}
	if err := d.checkVersion(d.version); err != nil {
		return err
	}
	gain, _ := rxGain(d.opts.RxGainDB)
	for _, rv := range [][2]byte{
		{reg.TModeReg, reg.TAuto | timerPrescaler>>8},
		{reg.TPrescalerReg, timerPrescaler & 0xFF},
		{reg.TReloadRegH, timerReload >> 8},
		{reg.TReloadRegL, timerReload & 0xFF},
		{reg.TxASKReg, reg.Force100ASK},
		{reg.ModeReg, 0x3D}, // CRC preset 6363h, as ISO/IEC 14443 A wants
		{reg.CollReg, 0x00}, // ValuesAfterColl = 0
		{reg.RFCfgReg, gain << reg.RxGainShift},
		{reg.ComIEnReg, reg.IRqInv | reg.RxIRq | reg.ErrIRq},
		{reg.TxControlReg, 0x80 | reg.Tx1RFEn | reg.Tx2RFEn}, // antenna on
	} {
		if err := d.write(rv[0], rv[1]); err != nil {
			return err
		}
	}
	// The cards in the field are powering up. Waiting their activation
	// time makes the first REQA after a reset one that every card on the
	// reader answers (in IDLE), which is what tells a card that lay there
	// through the reset from one that came later (see runner.poll).
	d.fieldUps++
	time.Sleep(activation)
	d.transceiving = false
	d.irqDirty = true
	d.busyUntil = time.Time{}
	d.sentSince = false
	d.scratch = 0
	return nil
}

// clones are VersionReg values of MFRC522 clones.
var clones = map[byte]string{0x88: "Fudan FM17522", 0x89: "Fudan FM17522E", 0xB2: "Fudan FM17522_1", 0x12: "counterfeit MFRC522"}

func (d *Dev) checkVersion(v byte) error {
	switch {
	case v == reg.VersionV1 || v == reg.VersionV2:
		return nil
	case clones[v] != "" && d.opts.AllowClones:
		d.log.Warn("rc522: reader chip is a clone", "version", fmt.Sprintf("%#02x", v), "chip", clones[v])
		return nil
	case clones[v] != "":
		return fmt.Errorf("%w: VersionReg reads %#02x, a %s, not an NXP MFRC522 (0x91 or 0x92); the wiring is fine. Set AllowClones (flag -allow-clone) to use it anyway", ErrVersion, v, clones[v])
	case v == 0x00 || v == 0xFF:
		return fmt.Errorf("%w: VersionReg reads %#02x: no chip answers on SPI. Check the wiring (MISO, MOSI, SCK, SDA/NSS to the right pins), the 3.3 V supply, that SPI is enabled, and that RST %s is wired (it holds the chip in power-down while low)", ErrVersion, v, d.rst.Name())
	}
	return fmt.Errorf("%w: VersionReg reads %#02x, want 0x91 or 0x92: an unknown chip, or a bad SPI connection (check MISO and SCK)", ErrVersion, v)
}

// answer is what an exchange brought back.
type answer struct {
	data     []byte // FIFO content
	lastBits int    // ControlReg RxLastBits: valid bits of the last byte, 0 = 8
	errs     byte   // ErrorReg
	coll     byte   // CollReg
}

// bits is the number of valid bits received, counted from bit 0 of the
// first byte (RxAlign included).
func (a answer) bits() int {
	if len(a.data) == 0 {
		return 0
	}
	if a.lastBits == 0 {
		return len(a.data) * 8
	}
	return (len(a.data)-1)*8 + a.lastBits
}

// exchange sends a frame and returns the answer. txLastBits is the number
// of valid bits in the frame's last byte (0: all 8), rxAlign where the first
// answer bit lands, expect the number of answer bytes to read along with the
// status. With noAnswer the frame is sent and not waited for (HLTA). With
// cheap, an idle poll, ComIrqReg is cleared only when an answer may have
// set it and only RxIRq and ErrIRq are looked at.
func (d *Dev) exchange(ctx context.Context, tx []byte, txLastBits, rxAlign, expect int, noAnswer, cheap bool) (answer, error) {
	a, err := d.exchangeOnce(ctx, tx, txLastBits, rxAlign, expect, noAnswer, cheap)
	if err != nil {
		// Whatever went wrong, the chip may still be receiving, and an
		// answer may yet land in the FIFO: restart Transceive, flush and
		// clear before the next frame.
		d.transceiving = false
		if !errors.Is(err, ErrNoCard) {
			d.irqDirty = true
		}
	}
	return a, err
}

func (d *Dev) exchangeOnce(ctx context.Context, tx []byte, txLastBits, rxAlign, expect int, noAnswer, cheap bool) (answer, error) {
	framing := byte(rxAlign<<reg.RxAlignShift | txLastBits)
	if d.irq != nil {
		d.irq.WaitForEdge(0) // forget a stale edge
		if d.irq.Read() == gpio.Low {
			d.irqDirty = true // an interrupt is pending that we did not see
		}
	}
	if d.irqDirty {
		// An answer came (maybe after we stopped waiting for it): flush
		// what it left in the FIFO before loading the next frame.
		if err := d.write(reg.FIFOLevelReg, reg.FlushBuffer); err != nil {
			return answer{}, err
		}
	}
	if d.irqDirty || !cheap {
		if err := d.write(reg.ComIrqReg, 0x7F); err != nil {
			return answer{}, err
		}
		d.irqDirty = false
	}
	if !d.transceiving {
		if wait := time.Until(d.busyUntil); wait > 0 {
			time.Sleep(wait) // the previous frame is still on air
		}
		// StartSend is still set from the last frame. Whether starting
		// Transceive with it set sends at once, the datasheet does not say;
		// clearing it first makes exactly one frame go out either way.
		if err := d.write(reg.BitFramingReg, framing); err != nil {
			return answer{}, err
		}
		// Restart Transceive before loading the FIFO: a FIFO write while
		// the receiver still waits for an answer is a WrErr.
		if err := d.write(reg.CommandReg, reg.CmdTransceive); err != nil {
			return answer{}, err
		}
		if err := d.write(reg.FIFODataReg, tx...); err != nil {
			return answer{}, err
		}
	} else if err := d.write(reg.FIFODataReg, tx...); err != nil {
		return answer{}, err
	}
	if err := d.write(reg.BitFramingReg, reg.StartSend|framing); err != nil {
		return answer{}, err
	}
	sent := time.Now()
	d.transceiving = true
	d.sentSince = true
	d.stats.frames.Add(1)
	txBits := len(tx) * 8
	if txLastBits != 0 {
		txBits = (len(tx)-1)*8 + txLastBits
	}
	onAir := iso14443a.AirTime(txBits)
	if noAnswer {
		// The modem now waits for an answer that will not come; the next
		// exchange restarts Transceive after the frame has left.
		d.transceiving = false
		d.busyUntil = time.Now().Add(onAir + iso14443a.FDT(true))
		return answer{}, nil
	}
	answerAir := iso14443a.AirTime(8 * max(expect, 1))
	expected := onAir + iso14443a.FDT(true) + answerAir
	// By firstLook an answer or the timer's expiry is in; by deadline a
	// chip that has shown neither is wedged.
	firstLook := time.Now().Add(onAir + max(timerPeriod, iso14443a.FDT(true)+answerAir) + time.Millisecond)
	deadline := firstLook.Add(slack)
	if d.irq != nil {
		if !d.irq.WaitForEdge(until(firstLook)) && cheap {
			return answer{}, ErrNoCard // RxIRq would have pulled IRQ low
		}
	} else if err := sleep(ctx, expected+100*time.Microsecond); err != nil {
		return answer{}, err
	}
	for {
		regs := []byte{reg.ComIrqReg, reg.ErrorReg, reg.FIFOLevelReg, reg.ControlReg, reg.CollReg}
		for range expect {
			regs = append(regs, reg.FIFODataReg)
		}
		st, err := d.read(regs...)
		if err != nil {
			return answer{}, err
		}
		irq, level := st[0], int(st[2])
		if level > reg.MaxFIFOLength {
			d.irqDirty = true
			return answer{}, d.bad("FIFOLevelReg reads %d, more than the 64-byte FIFO", level)
		}
		if irq&(reg.RxIRq|reg.ErrIRq) != 0 {
			d.irqDirty = true
			a := answer{errs: st[1], lastBits: int(st[3] & reg.RxLastBitsMsk), coll: st[4]}
			a.data = append(a.data, st[5:5+min(level, expect)]...)
			if level > expect {
				rest := make([]byte, level-expect)
				for i := range rest {
					rest[i] = reg.FIFODataReg
				}
				more, err := d.read(rest...)
				if err != nil {
					return answer{}, err
				}
				a.data = append(a.data, more...)
			}
			if irq&reg.RxIRq == 0 {
				// An error without a frame (FIFO overflow, a write
				// during reception): the answer, if any, is unusable.
				return a, d.bad("ErrorReg %#02x without a received frame", a.errs)
			}
			return a, nil
		}
		if level > 0 && expect > 0 {
			// FIFO bytes were read before the frame ended: they are gone.
			return answer{}, d.bad("answer read while still arriving (%d bytes in FIFO, ComIrqReg %#02x)", level, irq)
		}
		if cheap || irq&reg.TimerIRq != 0 {
			return answer{}, ErrNoCard
		}
		if time.Now().After(deadline) {
			d.stats.stuck.Add(1)
			return answer{}, fmt.Errorf("%w: no answer and no timer interrupt %v after sending a frame (% X, ComIrqReg %#02x): the chip has stopped running", ErrStuck, time.Since(sent).Round(time.Millisecond), tx, irq)
		}
		if d.irq == nil {
			if err := sleep(ctx, 200*time.Microsecond); err != nil {
				return answer{}, err
			}
		} else {
			d.irq.WaitForEdge(min(time.Millisecond, until(deadline)))
		}
	}
}

// bad counts and logs a malformed answer and returns ErrBadFrame.
func (d *Dev) bad(format string, args ...any) error {
	d.stats.badFrames.Add(1)
	err := fmt.Errorf("%w: "+format, append([]any{ErrBadFrame}, args...)...)
	d.log.Debug("rc522: dropped answer", "err", err)
	return err
}

// until is the time left to t, never negative: gpio's WaitForEdge takes a
// negative timeout as "wait for ever", and a late host must not hang on it.
func until(t time.Time) time.Duration { return max(time.Until(t), 0) }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
