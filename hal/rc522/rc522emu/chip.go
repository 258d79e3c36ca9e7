package rc522emu

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522/reg"
)

// Options configure a Chip. The zero value is an instant MFRC522 v2.0.
type Options struct {
	// Version is what VersionReg reads: 0x91 (v1.0) or 0x92 (v2.0, the
	// default); anything else emulates a clone or a broken chip.
	Version byte
	// Timed charges every frame its air time at 106 kbit/s (bits × 9.44 µs
	// plus the frame delay time) and runs the timer unit in real time, so
	// latency benchmarks are realistic. Off, every exchange completes at the
	// SPI write that starts it: the mode for unit tests.
	Timed bool
	// SPIOverhead is what one SPI transaction costs in timed mode on top of
	// its bytes at 10 Mbit/s: chip select, the kernel's spidev call. Default
	// 10 µs, a Raspberry Pi's order of magnitude. Instant mode charges none.
	SPIOverhead time.Duration
	// Seed seeds the generator of garbage and random IDs; 0 means 1.
	Seed uint64
	// Logger gets debug records of commands and frames; nil discards them.
	Logger *slog.Logger
	// OnFrame, if set, is told of every frame the chip starts to send, with
	// its valid bits and the time, for latency measurements. It is called
	// with the chip locked: it must not call the chip.
	OnFrame func(data []byte, bits int, at time.Time)
}

// Fault is a failure the emulator can inject.
type Fault int

const (
	// FaultNoAnswer loses the next answer on air: the cards act on the
	// frame (change state) but the reader hears nothing.
	FaultNoAnswer Fault = iota
	// FaultCRCError delivers the next answer that carries a CRC_A with a
	// wrong CRC, as a card with a weak coupling sends it.
	FaultCRCError
	// FaultParityError flips a bit of the next answer on air, so the
	// parity of its byte is wrong: ErrorReg ParityErr.
	FaultParityError
	// FaultSPIError makes the next SPI transaction fail with an error.
	FaultSPIError
	// FaultGarbageMISO answers the next SPI transaction with random bytes.
	FaultGarbageMISO
)

// WedgeMode is how a chip locks up.
type WedgeMode int

const (
	// WedgeStuckState keeps the SPI interface working but stops the state
	// machine: commands never run, the timer never fires, no IRQ comes.
	WedgeStuckState WedgeMode = iota + 1
	// WedgeStuckBus makes every SPI read return 00h and drops every write.
	WedgeStuckBus
)

// ErrSPI is the error an injected SPI fault returns.
var ErrSPI = errors.New("rc522emu: injected SPI transfer error")

// resetValues are the register values after power-on, hard reset and
// SoftReset (datasheet section 9.3; registers not listed reset to 00h).
var resetValues = map[byte]byte{
	reg.CommandReg: 0x20, reg.ComIEnReg: 0x80, reg.ComIrqReg: 0x14, reg.Status1Reg: 0x21,
	reg.WaterLevelReg: 0x08, reg.ControlReg: 0x10, reg.CollReg: 0xA0,
	reg.ModeReg: 0x3F, reg.TxControlReg: 0x80, reg.TxSelReg: 0x10,
	reg.RxSelReg: 0x84, reg.RxThresholdReg: 0x84, reg.DemodReg: 0x4D,
	reg.MfTxReg: 0x62, reg.SerialSpeedReg: 0xEB, reg.CRCResultRegH: 0xFF,
	reg.CRCResultRegL: 0xFF, reg.ModWidthReg: 0x26, reg.RFCfgReg: 0x48,
	reg.GsNReg: 0x88, reg.CWGsPReg: 0x20, reg.ModGsPReg: 0x20,
	reg.TestPinEnReg: 0x80, reg.AutoTestReg: 0x40,
}

// exchange is a frame on its way: sent by the chip, then perhaps answered.
type exchange struct {
	tx        []byte
	txBits    int
	txStart   time.Time
	txEnd     time.Time
	transmit  bool // Transmit command: no reception follows
	delivered bool
	answered  bool
	rxStop    time.Time // the timer stops here (5th bit of the answer)
	rxEnd     time.Time
	rx        frame
	collAt    int // index of the first collided bit, -1 for none
	parityErr bool
	crcErr    bool
}

// Chip is a register-level MFRC522 on an SPI bus, with its IRQ and RST
// pins and the virtual cards in its field. It implements spi.PortCloser;
// Connect hands out the spi.Conn a driver talks to.
type Chip struct {
	opts Options
	log  *slog.Logger
	irq  *IRQPin
	rst  *RSTPin

	mu        sync.Mutex
	regs      [64]byte
	fifo      []byte
	internal  [25]byte
	cards     []*Card
	cmd       byte
	modem     byte
	ex        *exchange
	rxLast    byte
	crcOn     bool
	crc       uint16
	timerOn   bool
	timerEnd  time.Time
	timerLeft time.Duration
	powerDown bool // hard power-down through NRSTPD
	wedge     WedgeMode
	unplugged bool // off its connector or its supply: Unplug
	faults    map[Fault]int
	lost      map[byte]int // frames the cards will not hear, by first byte
	removeMid *Card
	rnd       *rand.Rand
	connected bool
	closed    bool
	wake      *time.Timer
	spinUntil time.Time // a spinning goroutine advances the chip then
	stats     Stats
}

// Stats counts what the chip saw.
type Stats struct {
	SPITransactions uint64 // chip-select assertions
	Frames          uint64 // frames sent on air
	HardResets      uint64 // rising edges on NRSTPD
	SoftResets      uint64
}

// New returns a chip with an empty field, its registers at their reset
// values and NRSTPD high.
func New(opts Options) *Chip {
	if opts.Version == 0 {
		opts.Version = reg.VersionV2
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.SPIOverhead == 0 {
		opts.SPIOverhead = 10 * time.Microsecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Chip{opts: opts, log: log, faults: map[Fault]int{}, lost: map[byte]int{}, rnd: rand.New(rand.NewPCG(opts.Seed, 0x6b69756d))}
	c.irq = newIRQPin("RC522EMU_IRQ")
	c.rst = &RSTPin{name: "RC522EMU_RST", chip: c, level: gpio.High}
	c.resetRegisters()
	return c
}

// IRQ returns the chip's IRQ output.
func (c *Chip) IRQ() *IRQPin { return c.irq }

// RST returns the chip's NRSTPD input.
func (c *Chip) RST() *RSTPin { return c.rst }

// Stats returns the counters so far.
func (c *Chip) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Place puts a card in the field. A card in an energised field is powered
// and starts in IDLE.
func (c *Chip) Place(card *Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(c.now())
	if slices.Contains(c.cards, card) {
		return
	}
	c.cards = append(c.cards, card)
	if c.fieldOn() {
		card.powerOn(c.now())
	}
	c.log.Debug("rc522emu: card placed", "uid", fmt.Sprintf("% X", card.uid))
}

// Remove takes a card out of the field; it loses power.
func (c *Chip) Remove(card *Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(c.now())
	c.removeLocked(card)
}

func (c *Chip) removeLocked(card *Card) {
	if i := slices.Index(c.cards, card); i >= 0 {
		c.cards = slices.Delete(c.cards, i, i+1)
		card.powerOff()
		c.log.Debug("rc522emu: card removed", "uid", fmt.Sprintf("% X", card.uid))
	}
}

// State returns the ISO/IEC 14443-3 state of a card, for tests.
func (c *Chip) State(card *Card) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return card.state.String()
}

// Inject arms a fault for its next n occurrences.
func (c *Chip) Inject(f Fault, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[f] += n
}

// Pending returns how many occurrences of a fault are still armed.
func (c *Chip) Pending(f Fault) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.faults[f]
}

// LoseFrames makes the cards miss the next n frames the chip sends that
// start with the byte first (0x50 for HLTA, 0x93 for a level-1 SELECT…),
// as when a card is at the edge of the field.
func (c *Chip) LoseFrames(first byte, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost[first] += n
}

// RemoveDuringNextAnswer takes card out of the field halfway through its
// next answer: the reader receives a truncated frame.
func (c *Chip) RemoveDuringNextAnswer(card *Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeMid = card
}

// Wedge locks the chip up until NRSTPD is pulsed. SoftReset does not help,
// as with the cheap boards that freeze after hours of use.
func (c *Chip) Wedge(m WedgeMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wedge = m
	c.log.Debug("rc522emu: wedged", "mode", m)
}

// Unplug takes the module off its connector or its 3.3 V supply, as a
// loose jumper wire does: MISO reads 00h, writes and RST pulses go
// nowhere, the field is off and the cards in it lose power.
func (c *Chip) Unplug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplugged = true
	c.ex = nil
	c.timerOn = false
	c.fieldChanged()
	c.irq.drive(gpio.High) // released: the host's pull-up holds it high
	c.log.Debug("rc522emu: unplugged")
}

// Plug puts the module back: it powers on with its registers at their
// reset values (the field off until the host switches it on).
func (c *Chip) Plug() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplugged = false
	c.powerDown = false
	c.wedge = 0
	c.resetRegisters()
	c.log.Debug("rc522emu: plugged in")
}

// Reg returns a register's stored value without the side effects of an
// SPI read, for tests.
func (c *Chip) Reg(r byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[r&0x3F]
}

func (c *Chip) now() time.Time { return time.Now() }

// dur is d in timed mode and nothing in instant mode.
func (c *Chip) dur(d time.Duration) time.Duration {
	if c.opts.Timed {
		return d
	}
	return 0
}

func (c *Chip) take(f Fault) bool {
	if c.faults[f] > 0 {
		c.faults[f]--
		return true
	}
	return false
}

// String implements spi.Port.
func (c *Chip) String() string { return "rc522emu" }

// LimitSpeed implements spi.PortCloser.
func (c *Chip) LimitSpeed(physic.Frequency) error { return nil }

// Close implements spi.PortCloser: it stops the timed mode's wake-ups.
func (c *Chip) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.wake != nil {
		c.wake.Stop()
	}
	return nil
}

// Connect implements spi.Port. The MFRC522 takes SPI mode 0, 8-bit words,
// MSB first, up to 10 Mbit/s (datasheet 8.1.2); Connect refuses anything
// else, as the real part would answer garbage.
func (c *Chip) Connect(f physic.Frequency, mode spi.Mode, bits int) (spi.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return nil, errors.New("rc522emu: Connect cannot be called twice")
	}
	if mode&spi.Mode3 != spi.Mode0 || mode&(spi.HalfDuplex|spi.LSBFirst) != 0 {
		return nil, fmt.Errorf("rc522emu: the MFRC522 takes SPI mode 0, MSB first, full duplex; got %s", mode)
	}
	if bits != 8 {
		return nil, fmt.Errorf("rc522emu: the MFRC522 takes 8-bit words, not %d", bits)
	}
	if f > 10*physic.MegaHertz {
		return nil, fmt.Errorf("rc522emu: the MFRC522's SPI runs at 10 Mbit/s at most, not %s", f)
	}
	c.connected = true
	return &spiConn{c}, nil
}

type spiConn struct{ c *Chip }

func (s *spiConn) String() string       { return "rc522emu" }
func (s *spiConn) Duplex() conn.Duplex  { return conn.Full }
func (s *spiConn) Tx(w, r []byte) error { return s.c.transaction(w, r) }

// TxPackets runs each packet as its own transaction unless KeepCS joins it
// to the next; the MFRC522 frames a transaction by NSS.
func (s *spiConn) TxPackets(p []spi.Packet) error {
	first := 0
	for i, pk := range p {
		if pk.R != nil && len(pk.R) != len(pk.W) {
			return fmt.Errorf("rc522emu: packet %d: R and W lengths differ", i)
		}
		if pk.KeepCS && i < len(p)-1 {
			continue
		}
		var w []byte
		for _, q := range p[first : i+1] {
			w = append(w, q.W...)
		}
		r := make([]byte, len(w))
		if err := s.c.transaction(w, r); err != nil {
			return err
		}
		for _, q := range p[first : i+1] {
			if q.R != nil {
				copy(q.R, r[:len(q.W)])
			}
			r = r[len(q.W):]
		}
		first = i + 1
	}
	return nil
}

// transaction is one NSS-framed SPI exchange (datasheet 8.1.2.1 to 8.1.2.3):
// the first MOSI byte is an address byte, read flag in bit 7, register in
// bits 6..1. A read sends an address byte for every register it reads and
// a final 00h; MISO carries each register one byte behind. A write sends one
// address byte and then any number of data bytes, all into that register.
func (c *Chip) transaction(w, r []byte) error {
	if r != nil && len(r) != len(w) {
		return fmt.Errorf("rc522emu: Tx needs len(r) == len(w) (full duplex), got %d and %d", len(r), len(w))
	}
	if c.opts.Timed {
		// The bus takes time; spin, as time.Sleep cannot wait 10 µs.
		end := time.Now().Add(c.opts.SPIOverhead + time.Duration(len(w))*800*time.Nanosecond)
		for time.Now().Before(end) {
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.advance(now)
	c.stats.SPITransactions++
	if c.take(FaultSPIError) {
		return ErrSPI
	}
	if len(w) == 0 {
		return nil
	}
	for i := range r {
		r[i] = 0
	}
	switch {
	case c.unplugged || c.powerDown || c.wedge == WedgeStuckBus:
		// MISO reads 00h; writes go nowhere.
	default:
		addr, read := reg.FromAddr(w[0])
		if read {
			for i := 1; i < len(w); i++ {
				v := c.readReg(addr)
				if r != nil {
					r[i] = v
				}
				addr, _ = reg.FromAddr(w[i])
			}
		} else {
			for _, v := range w[1:] {
				c.writeReg(addr, v)
			}
		}
	}
	if c.take(FaultGarbageMISO) && r != nil {
		for i := range r {
			r[i] = byte(c.rnd.Uint32())
		}
	}
	c.advance(c.now())
	return nil
}

func (c *Chip) resetRegisters() {
	c.regs = [64]byte{}
	for r, v := range resetValues {
		c.regs[r] = v
	}
	c.regs[reg.VersionReg] = c.opts.Version
	c.fifo = c.fifo[:0]
	c.cmd = reg.CmdIdle
	c.modem = reg.ModemIdle
	c.ex = nil
	c.rxLast = 0
	c.crcOn = false
	c.timerOn = false
	c.updateAlerts()
	c.fieldChanged()
	c.updateIRQ()
}

func (c *Chip) hardPowerDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerDown = true
	c.ex = nil
	c.timerOn = false
	c.fieldChanged()
	c.irq.drive(gpio.High) // released: the host's pull-up holds it high
}

func (c *Chip) hardReset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unplugged {
		return // the pulse goes nowhere
	}
	c.powerDown = false
	c.wedge = 0
	c.stats.HardResets++
	c.resetRegisters()
	c.log.Debug("rc522emu: hard reset")
}

// fieldOn: the antenna drivers are on and the chip is powered.
func (c *Chip) fieldOn() bool {
	return !c.unplugged && !c.powerDown && c.regs[reg.CommandReg]&reg.PowerDown == 0 &&
		c.regs[reg.TxControlReg]&(reg.Tx1RFEn|reg.Tx2RFEn) != 0
}

// fieldChanged powers cards up or down to match the field.
func (c *Chip) fieldChanged() {
	on := c.fieldOn()
	for _, card := range c.cards {
		if on {
			card.powerOn(c.now())
		} else {
			card.powerOff()
		}
	}
}

func (c *Chip) readReg(r byte) byte {
	switch r {
	case reg.FIFODataReg:
		if len(c.fifo) == 0 {
			return 0
		}
		v := c.fifo[0]
		c.fifo = c.fifo[1:]
		c.updateAlerts()
		return v
	case reg.FIFOLevelReg:
		return byte(len(c.fifo))
	case reg.ComIrqReg, reg.DivIrqReg:
		return c.regs[r] &^ 0x80
	case reg.Status1Reg:
		return c.status1()
	case reg.Status2Reg:
		return c.regs[r]&^reg.ModemStateMsk | c.modem
	case reg.ControlReg:
		return 0x10 | c.rxLast
	case reg.CommandReg:
		return c.regs[r]&(reg.RcvOff|reg.PowerDown) | c.cmd
	case reg.TCounterValueRegH, reg.TCounterValueRegL:
		v := c.timerCounter()
		if r == reg.TCounterValueRegH {
			return byte(v >> 8)
		}
		return byte(v)
	}
	return c.regs[r&0x3F]
}

func (c *Chip) status1() byte {
	s := c.regs[reg.Status1Reg] & (reg.CRCOk | reg.CRCReady)
	if c.irqActive() {
		s |= reg.IRq
	}
	if c.timerOn {
		s |= reg.TRunning
	}
	n := len(c.fifo)
	wl := int(c.regs[reg.WaterLevelReg] & 0x3F)
	if reg.MaxFIFOLength-n <= wl {
		s |= reg.HiAlert
	}
	if n <= wl {
		s |= reg.LoAlert
	}
	return s
}

func (c *Chip) writeReg(r byte, v byte) {
	if c.wedge == WedgeStuckState {
		return // the state machine is frozen: writes land nowhere
	}
	switch r {
	case reg.CommandReg:
		c.regs[r] = v & (reg.RcvOff | reg.PowerDown)
		c.fieldChanged()
		if cmd := v & 0x0F; cmd != reg.CmdNoCmdChange {
			c.startCommand(cmd)
		}
	case reg.ComIrqReg, reg.DivIrqReg:
		mask := v & 0x7F
		if r == reg.DivIrqReg {
			mask &= reg.MfinActIRq | reg.CRCIRq
		}
		if v&0x80 != 0 {
			c.regs[r] |= mask
		} else {
			c.regs[r] &^= mask
		}
	case reg.FIFODataReg:
		c.pushFIFO(v)
	case reg.FIFOLevelReg:
		if v&reg.FlushBuffer != 0 {
			c.fifo = c.fifo[:0]
			c.regs[reg.ErrorReg] &^= reg.BufferOvfl
			c.updateAlerts()
		}
	case reg.ControlReg:
		if v&reg.TStopNow != 0 {
			c.timerOn = false
		}
		if v&reg.TStartNow != 0 {
			c.startTimer(c.now())
		}
	case reg.BitFramingReg:
		c.regs[r] = v
		if v&reg.StartSend != 0 && c.cmd == reg.CmdTransceive && c.modem == reg.ModemWaitStart {
			c.startTransmit(false)
		}
	case reg.CollReg:
		c.regs[r] = c.regs[r]&^reg.ValuesAfterColl | v&reg.ValuesAfterColl
	case reg.Status2Reg:
		// MFCrypto1On can only be cleared by software; the rest is status.
		c.regs[r] = c.regs[r]&^(reg.TempSensClear|reg.I2CForceHS) | v&(reg.TempSensClear|reg.I2CForceHS)
		if v&reg.MFCrypto1On == 0 {
			c.regs[r] &^= reg.MFCrypto1On
		}
	case reg.ErrorReg, reg.Status1Reg, reg.VersionReg, reg.CRCResultRegH, reg.CRCResultRegL,
		reg.TCounterValueRegH, reg.TCounterValueRegL:
		// read-only
	case reg.TxControlReg:
		c.regs[r] = v
		c.fieldChanged()
	default:
		c.regs[r&0x3F] = v
	}
	c.updateIRQ()
}

// pushFIFO is a host write to FIFODataReg.
func (c *Chip) pushFIFO(v byte) {
	if c.cmd == reg.CmdMFAuthent || (c.ex != nil && c.ex.delivered && !c.ex.transmit) {
		c.regs[reg.ErrorReg] |= reg.WrErr
	}
	c.fillFIFO(v)
	if c.crcOn {
		c.runCRC()
	}
}

// fillFIFO puts a byte in the FIFO, from the host or the receiver.
func (c *Chip) fillFIFO(v byte) {
	if len(c.fifo) >= reg.MaxFIFOLength {
		c.regs[reg.ErrorReg] |= reg.BufferOvfl
		return
	}
	c.fifo = append(c.fifo, v)
	c.updateAlerts()
}

func (c *Chip) updateAlerts() {
	s := c.status1()
	if s&reg.HiAlert != 0 {
		c.regs[reg.ComIrqReg] |= reg.HiAlertIRq
	}
	if s&reg.LoAlert != 0 {
		c.regs[reg.ComIrqReg] |= reg.LoAlertIRq
	}
}

func (c *Chip) crcPreset() uint16 {
	return [4]uint16{0x0000, 0x6363, 0xA671, 0xFFFF}[c.regs[reg.ModeReg]&reg.CRCPresetMsk]
}

func (c *Chip) startCommand(cmd byte) {
	// A new command ends the one running; the host's Idle sets no IdleIRq.
	// ErrorReg is "the error status of the last command executed" (9.3.1.7):
	// a new command starts clean, but for a FIFO overflow, which only
	// FlushBuffer clears.
	c.regs[reg.ErrorReg] &= reg.BufferOvfl
	c.ex = nil
	c.crcOn = false
	c.modem = reg.ModemIdle
	c.cmd = cmd
	done := func() {
		c.cmd = reg.CmdIdle
		c.regs[reg.ComIrqReg] |= reg.IdleIRq
	}
	switch cmd {
	case reg.CmdIdle:
	case reg.CmdSoftReset:
		c.stats.SoftResets++
		c.resetRegisters()
		c.regs[reg.ComIrqReg] |= reg.IdleIRq
	case reg.CmdMem:
		if len(c.fifo) == 0 {
			for _, b := range c.internal {
				c.fillFIFO(b)
			}
		} else {
			n := copy(c.internal[:], c.fifo)
			c.fifo = c.fifo[n:]
			c.updateAlerts()
		}
		done()
	case reg.CmdGenerateRandomID:
		for i := range 10 {
			c.internal[i] = byte(c.rnd.Uint32())
		}
		done()
	case reg.CmdCalcCRC:
		c.crcOn = true
		c.crc = c.crcPreset()
		c.regs[reg.DivIrqReg] &^= reg.CRCIRq
		c.runCRC()
	case reg.CmdTransmit:
		c.startTransmit(true)
	case reg.CmdReceive:
		c.modem = reg.ModemWaitData
	case reg.CmdTransceive:
		c.modem = reg.ModemWaitStart
		if c.regs[reg.BitFramingReg]&reg.StartSend != 0 {
			// StartSend already set when the command starts: the chip
			// sends at once. Drivers that rewrite BitFramingReg before
			// Transceive never meet this; those that do not must have
			// the FIFO and the framing ready first.
			c.startTransmit(false)
		}
	case reg.CmdMFAuthent:
		c.mfAuthent()
	default:
		// Unknown commands (datasheet 9.3.1.5: IdleIRq).
		done()
	}
}

// runCRC feeds the FIFO to the CRC coprocessor (CalcCRC): the FIFO empties,
// CRCResultReg follows, and CRCIRq and CRCReady say all data is processed.
// The command stays active and takes further bytes until another command.
func (c *Chip) runCRC() {
	c.crc = iso14443a.UpdateCRCA(c.crc, c.fifo)
	c.fifo = c.fifo[:0]
	c.updateAlerts()
	c.regs[reg.CRCResultRegL] = byte(c.crc)
	c.regs[reg.CRCResultRegH] = byte(c.crc >> 8)
	c.regs[reg.DivIrqReg] |= reg.CRCIRq
	c.regs[reg.Status1Reg] |= reg.CRCReady
	if c.crc == 0 {
		c.regs[reg.Status1Reg] |= reg.CRCOk
	} else {
		c.regs[reg.Status1Reg] &^= reg.CRCOk
	}
}

// mfAuthent models MFAuthent far enough for drivers that authenticate: the
// FIFO must hold 12 bytes (command, block, 6-byte key, 4 UID bytes); a card
// in ACTIVE with that UID and key turns MFCrypto1On on and the command ends.
// Otherwise the card stays silent and only the timer ends the wait.
// Encrypted traffic afterwards is not modelled.
func (c *Chip) mfAuthent() {
	if len(c.fifo) < 12 {
		c.regs[reg.ErrorReg] |= reg.ProtocolErr
		c.regs[reg.ComIrqReg] |= reg.ErrIRq | reg.IdleIRq
		c.cmd = reg.CmdIdle
		return
	}
	in := c.fifo[:12]
	c.fifo = c.fifo[12:]
	c.updateAlerts()
	for _, card := range c.cards {
		if card.state != stateActive && card.state != stateActiveStar {
			continue
		}
		last := card.parts[len(card.parts)-1]
		if (in[0] == 0x60 || in[0] == 0x61) && [6]byte(in[2:8]) == card.key && [4]byte(in[8:12]) == [4]byte(last[:4]) {
			c.regs[reg.Status2Reg] |= reg.MFCrypto1On
			c.regs[reg.ComIrqReg] |= reg.IdleIRq
			c.cmd = reg.CmdIdle
			return
		}
		card.fallBack()
	}
	c.startTimer(c.now())
}

func (c *Chip) timerPeriod() time.Duration {
	pre := int64(c.regs[reg.TModeReg]&reg.TPrescalerHi)<<8 | int64(c.regs[reg.TPrescalerReg])
	div := 2*pre + 1
	if c.regs[reg.DemodReg]&reg.TPrescalEven != 0 {
		div = 2*pre + 2
	}
	reload := int64(c.regs[reg.TReloadRegH])<<8 | int64(c.regs[reg.TReloadRegL])
	return time.Duration(div * (reload + 1) * int64(time.Second) / iso14443a.Fc)
}

func (c *Chip) startTimer(at time.Time) {
	c.timerOn = true
	c.timerEnd = at.Add(c.dur(c.timerPeriod()))
}

func (c *Chip) timerCounter() uint16 {
	reload := uint16(c.regs[reg.TReloadRegH])<<8 | uint16(c.regs[reg.TReloadRegL])
	if !c.timerOn {
		return 0
	}
	period := c.timerPeriod()
	left := c.timerEnd.Sub(c.now())
	if period <= 0 || left <= 0 {
		return 0
	}
	return uint16(int64(reload) * int64(left) / int64(period))
}

// startTransmit sends the FIFO on air: TxLastBits valid bits in its last
// byte, CRC_A appended when TxCRCEn is set.
func (c *Chip) startTransmit(transmitOnly bool) {
	data := append([]byte(nil), c.fifo...)
	c.fifo = c.fifo[:0]
	c.updateAlerts()
	last := int(c.regs[reg.BitFramingReg] & reg.TxLastBitsMsk)
	if c.regs[reg.TxModeReg]&reg.TxCRCEn != 0 && last == 0 {
		data = iso14443a.AppendCRCA(data)
	}
	nbits := len(data) * 8
	if last != 0 && len(data) > 0 {
		nbits = (len(data)-1)*8 + last
	}
	c.stats.Frames++
	if c.opts.OnFrame != nil {
		c.opts.OnFrame(data, nbits, c.now())
	}
	c.modem = reg.ModemTransmitting
	c.ex = &exchange{
		tx:       data,
		txBits:   nbits,
		txStart:  c.now(),
		txEnd:    c.now().Add(c.dur(iso14443a.AirTime(nbits))),
		transmit: transmitOnly,
		collAt:   -1,
	}
	c.log.Debug("rc522emu: frame sent", "data", fmt.Sprintf("% X", data), "bits", nbits)
}

// cardsHear reports whether the cards can decode what the chip sends: a
// 106 kBd ISO/IEC 14443 A signal needs 100 % ASK (TxASKReg Force100ASK).
func (c *Chip) cardsHear() bool {
	return c.fieldOn() && c.regs[reg.TxASKReg]&reg.Force100ASK != 0 &&
		c.regs[reg.TxModeReg]&reg.SpeedMsk == 0
}

// chipHears reports whether the receiver is on and set for 106 kBd.
func (c *Chip) chipHears() bool {
	return c.regs[reg.CommandReg]&reg.RcvOff == 0 && c.regs[reg.RxModeReg]&reg.SpeedMsk == 0
}

// deliver hands the frame to every powered card and merges their answers
// as the receiver would hear them: where the cards' bits differ, a bit
// collision.
func (c *Chip) deliver(ex *exchange) {
	ex.delivered = true
	if !c.cardsHear() {
		return
	}
	if len(ex.tx) > 0 && c.lost[ex.tx[0]] > 0 {
		c.lost[ex.tx[0]]--
		c.log.Debug("rc522emu: frame lost on the way to the cards (injected)", "data", fmt.Sprintf("% X", ex.tx))
		return
	}
	var answers []frame
	var from []*Card
	for _, card := range slices.Clone(c.cards) {
		if card.powered.Add(card.startUp).After(ex.txStart) {
			// Placed (or the field came back) while the frame was on air,
			// or still starting up when it began: it missed its start.
			continue
		}
		if f, ok := card.receive(ex.tx, ex.txBits); ok {
			answers = append(answers, f)
			from = append(from, card)
		}
	}
	// After Transmit the receiver is off: the cards answer into the void.
	if ex.transmit || len(answers) == 0 || !c.chipHears() {
		return
	}
	if c.take(FaultNoAnswer) {
		c.log.Debug("rc522emu: answer lost (injected)")
		return
	}
	n := 0
	for _, a := range answers {
		n = max(n, a.nbits)
	}
	out := make([]byte, (n+7)/8)
	afterColl := c.regs[reg.CollReg]&reg.ValuesAfterColl != 0
	for i := 0; i < n; i++ {
		var ones, zeros int
		for _, a := range answers {
			if i < a.nbits {
				if a.bit(i) == 1 {
					ones++
				} else {
					zeros++
				}
			}
		}
		var b byte
		switch {
		case ones > 0 && zeros > 0 && ex.collAt < 0:
			ex.collAt = i
			b = 1 // both halves of the bit carry load modulation
		case ex.collAt >= 0 && !afterColl:
			b = 0 // ValuesAfterColl = 0: bits after a collision read 0
		case ones > 0:
			b = 1
		}
		out[i/8] |= b << (i % 8)
	}
	rx := frame{data: out, nbits: n}
	if n%8 == 0 && n >= 24 && c.take(FaultCRCError) {
		out[len(out)-1] ^= 0x5A
		ex.crcErr = true
	}
	if c.take(FaultParityError) {
		out[0] ^= 0x01
		ex.parityErr = true
	}
	start := ex.txEnd.Add(c.dur(iso14443a.FDT(lastBit(ex.tx, ex.txBits) == 1)))
	if c.removeMid != nil && slices.Contains(from, c.removeMid) {
		cut := n / 2
		rx.nbits = cut
		if cut%8 != 0 {
			ex.parityErr = true // the last byte ends without its parity bit
		}
		c.removeLocked(c.removeMid)
		c.removeMid = nil
	}
	ex.answered = true
	ex.rx = rx
	ex.rxStop = start.Add(c.dur(5 * iso14443a.BitTime))
	ex.rxEnd = start.Add(c.dur(iso14443a.AirTime(rx.nbits)))
}

func lastBit(data []byte, nbits int) byte {
	if nbits == 0 {
		return 0
	}
	i := nbits - 1
	return data[i/8] >> (i % 8) & 1
}

// receiveDone stores an answer in the FIFO as the MFRC522 does: the first
// bit at BitFramingReg RxAlign, RxLastBits for a partial last byte, CollReg
// and ErrorReg for what went wrong. With RxCRCEn the chip checks the CRC_A
// and keeps it out of the FIFO.
func (c *Chip) receiveDone(ex *exchange) {
	align := int(c.regs[reg.BitFramingReg] >> reg.RxAlignShift & 0x07)
	total := align + ex.rx.nbits
	buf := make([]byte, (total+7)/8)
	for i := 0; i < ex.rx.nbits; i++ {
		p := align + i
		buf[p/8] |= ex.rx.bit(i) << (p % 8)
	}
	errs := byte(0)
	if ex.collAt >= 0 {
		errs |= reg.CollErr
		pos := align + ex.collAt + 1
		if pos > 32 {
			c.regs[reg.CollReg] = c.regs[reg.CollReg]&reg.ValuesAfterColl | reg.CollPosNotValid
		} else {
			c.regs[reg.CollReg] = c.regs[reg.CollReg]&reg.ValuesAfterColl | byte(pos%32)
		}
	} else {
		c.regs[reg.CollReg] = c.regs[reg.CollReg]&reg.ValuesAfterColl | reg.CollPosNotValid
	}
	if ex.parityErr {
		errs |= reg.ParityErr
	}
	if c.regs[reg.RxModeReg]&reg.RxCRCEn != 0 && total%8 == 0 && ex.collAt < 0 {
		if len(buf) < 3 || !iso14443a.CheckCRCA(buf) {
			errs |= reg.CRCErr
		} else {
			buf = buf[:len(buf)-2]
		}
	}
	for _, b := range buf {
		c.fillFIFO(b)
	}
	c.rxLast = byte(total % 8)
	c.regs[reg.ErrorReg] |= errs
	c.regs[reg.ComIrqReg] |= reg.RxIRq
	if c.regs[reg.ErrorReg] != 0 {
		c.regs[reg.ComIrqReg] |= reg.ErrIRq
	}
	c.log.Debug("rc522emu: frame received", "data", fmt.Sprintf("% X", buf), "bits", ex.rx.nbits, "errors", errs)
}

// advance runs the chip's clock up to now: ends of transmissions, answers,
// timer expiries. In instant mode everything due is due at once.
func (c *Chip) advance(now time.Time) {
	if c.wedge == WedgeStuckState || c.powerDown || c.unplugged {
		return
	}
	for {
		ex := c.ex
		switch {
		case ex != nil && !ex.delivered && !now.Before(ex.txEnd):
			c.regs[reg.ComIrqReg] |= reg.TxIRq
			if ex.transmit {
				c.deliver(ex)
				c.ex = nil
				c.cmd = reg.CmdIdle
				c.modem = reg.ModemIdle
				c.regs[reg.ComIrqReg] |= reg.IdleIRq
				continue
			}
			// Receiver start-up clears the reception errors.
			c.regs[reg.ErrorReg] &^= reg.CollErr | reg.CRCErr | reg.ParityErr | reg.ProtocolErr
			c.modem = reg.ModemWaitData
			if c.regs[reg.TModeReg]&reg.TAuto != 0 {
				c.startTimer(ex.txEnd)
			}
			c.deliver(ex)
			continue
		case ex != nil && ex.answered && c.timerOn && !now.Before(ex.rxStop) && !ex.rxStop.After(c.timerEnd):
			c.timerOn = false // stopped by the 5th bit of the answer
			c.modem = reg.ModemReceiving
			continue
		case c.timerOn && !now.Before(c.timerEnd):
			c.regs[reg.ComIrqReg] |= reg.TimerIRq
			if c.regs[reg.TModeReg]&reg.TAutoRestart != 0 && c.timerPeriod() > 0 {
				c.timerEnd = c.timerEnd.Add(c.dur(c.timerPeriod()))
				if !c.opts.Timed {
					c.timerOn = false
				}
			} else {
				c.timerOn = false
			}
			continue
		case ex != nil && ex.answered && !now.Before(ex.rxEnd):
			c.receiveDone(ex)
			c.ex = nil
			c.timerOn = false
			if c.cmd == reg.CmdTransceive {
				c.modem = reg.ModemWaitStart
			} else {
				c.cmd = reg.CmdIdle
				c.modem = reg.ModemIdle
				c.regs[reg.ComIrqReg] |= reg.IdleIRq
			}
			continue
		}
		break
	}
	c.updateIRQ()
	c.schedule(now)
}

// schedule arranges, in timed mode, to advance again at the next event so
// that the IRQ pin moves on time even when the host is only waiting on it.
func (c *Chip) schedule(now time.Time) {
	if !c.opts.Timed || c.closed {
		return
	}
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if ex := c.ex; ex != nil {
		if !ex.delivered {
			consider(ex.txEnd)
		} else if ex.answered {
			if c.timerOn {
				consider(ex.rxStop)
			}
			consider(ex.rxEnd)
		}
	}
	if c.timerOn {
		consider(c.timerEnd)
	}
	if next.IsZero() {
		return
	}
	d := max(next.Sub(now), 0)
	if d < 2*time.Millisecond {
		// A real chip is on time to the microsecond; Go timers may fire a
		// millisecond late. Spin for short waits, so the IRQ pin moves when
		// the datasheet says, not when the scheduler gets round to it.
		if !c.spinUntil.IsZero() && !c.spinUntil.After(next) {
			return // a spinner will be there first and reschedule
		}
		c.spinUntil = next
		go func() {
			for time.Now().Before(next) {
				runtime.Gosched()
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.spinUntil.Equal(next) {
				c.spinUntil = time.Time{}
			}
			c.advance(c.now())
		}()
		return
	}
	if c.wake != nil {
		c.wake.Stop()
	}
	c.wake = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.advance(c.now())
	})
}

func (c *Chip) irqActive() bool {
	return c.regs[reg.ComIEnReg]&c.regs[reg.ComIrqReg]&0x7F != 0 ||
		c.regs[reg.DivIEnReg]&c.regs[reg.DivIrqReg]&(reg.MfinActIRq|reg.CRCIRq) != 0
}

// updateIRQ drives the IRQ pin: Status1Reg IRq, inverted by IRqInv.
// ErrIRq follows any error bit in ErrorReg (datasheet 9.3.1.5).
func (c *Chip) updateIRQ() {
	if c.powerDown {
		return
	}
	if c.regs[reg.ErrorReg] != 0 {
		c.regs[reg.ComIrqReg] |= reg.ErrIRq
	}
	active := c.irqActive()
	if c.regs[reg.ComIEnReg]&reg.IRqInv != 0 {
		active = !active
	}
	l := gpio.Low
	if active {
		l = gpio.High
	}
	c.irq.drive(l)
}

var (
	_ spi.PortCloser = (*Chip)(nil)
	_ spi.Conn       = (*spiConn)(nil)
)
