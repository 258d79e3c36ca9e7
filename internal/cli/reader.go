// Package cli holds what the binaries share on their command lines: the
// flags that choose and wire a card reader, and opening it. It parses and
// wires; the work is done by the packages it calls.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/spi"

	"kiumtap/hal/indicator"
	"kiumtap/hal/pi"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

// ReaderFlags choose and wire the reader.
type ReaderFlags struct {
	// Kind is "pi" or "emu". It has no default: a command that touches a
	// reader must be told which, so that a probe on a Raspberry Pi never
	// succeeds on the emulator by mistake.
	Kind   string
	Board  pi.Options
	Poll   time.Duration
	RxGain int
	Clones bool // accept MFRC522 clones
	Timed  bool // emulator: charge air time
}

// Register adds the reader flags to fs.
func (f *ReaderFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Kind, "reader", "", `card reader (required): "pi" (the MFRC522 wired to this Raspberry Pi) or "emu" (the emulated MFRC522)`)
	fs.StringVar(&f.Board.SPI, "spi", "SPI0.0", "SPI port of the RC522")
	fs.StringVar(&f.Board.RST, "rst", "GPIO25", "RC522 RST pin")
	fs.StringVar(&f.Board.IRQ, "irq", "GPIO24", `RC522 IRQ pin, or "none" to poll the chip`)
	fs.StringVar(&f.Board.Green, "green", "GPIO17", `green LED pin, or "none"`)
	fs.StringVar(&f.Board.Red, "red", "GPIO27", `red LED pin, or "none"`)
	fs.StringVar(&f.Board.Buzzer, "buzzer", "GPIO22", `buzzer pin, or "none"`)
	fs.DurationVar(&f.Poll, "poll", 0, "time between REQA polls (default 45ms)")
	fs.IntVar(&f.RxGain, "rxgain", 0, "receiver gain in dB: 18, 23, 33, 38, 43 or 48 (default 33)")
	fs.BoolVar(&f.Clones, "allow-clone", false, "accept MFRC522 clones (FM17522: VersionReg 0x88, 0x89, 0xB2; counterfeits: 0x12)")
}

// Reader is an opened reader and its outputs.
type Reader struct {
	Port spi.PortCloser
	RST  gpio.PinOut
	IRQ  gpio.PinIn
	Pins indicator.Pins
	Emu  *rc522emu.Chip // set for the emulated reader
	// Board is the Raspberry Pi's, set for -reader pi: more parts (the
	// enrolment buttons) are opened from it.
	Board *pi.Board
}

// Close releases the SPI port.
func (r *Reader) Close() error { return r.Port.Close() }

// ErrNoReader: no reader was chosen (-reader or reader.kind empty). It is
// a usage error.
var ErrNoReader = fmt.Errorf(`%w: say which reader: -reader pi (the MFRC522 wired to this Raspberry Pi) or -reader emu (the emulated MFRC522, to try the command)`, ErrUsage)

// Open opens the reader the flags name.
func (f *ReaderFlags) Open() (*Reader, error) {
	switch f.Kind {
	case "":
		return nil, ErrNoReader
	case "emu":
		chip := rc522emu.New(rc522emu.Options{Timed: f.Timed})
		r := &Reader{Port: chip, RST: chip.RST(), Emu: chip}
		if f.Board.IRQ != pi.None {
			r.IRQ = chip.IRQ()
		}
		return r, nil
	case "pi":
		b, err := pi.Open(f.Board)
		if err != nil {
			return nil, err
		}
		r := &Reader{Port: b.SPI, RST: b.RST, Pins: b.Pins, Board: b}
		if b.IRQ != nil {
			r.IRQ = b.IRQ
		}
		return r, nil
	}
	return nil, fmt.Errorf(`%w: -reader %q: want "emu" or "pi"`, ErrUsage, f.Kind)
}

// DevOptions are the driver options the flags set.
func (f *ReaderFlags) DevOptions() rc522.Options {
	return rc522.Options{PollInterval: f.Poll, RxGainDB: f.RxGain, AllowClones: f.Clones}
}

// ErrUsage marks command-line mistakes; main prints usage for them.
var ErrUsage = errors.New("usage")
