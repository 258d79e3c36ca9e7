// Package pi wires the terminal's parts to a Raspberry Pi through
// periph.io/x/host: the MFRC522 on an SPI port with its RST and IRQ lines,
// the LEDs and buzzer, and the enrolment buttons. Pins are named as periph
// names them (GPIO25, SPI0.0); errors name the pin and the part that
// failed.
//
// It owns opening the board's ports and pins, nothing else.
package pi

import (
	"fmt"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"

	// The Raspberry Pi's drivers only, not every board's that
	// periph.io/x/host registers (Allwinner, BeagleBone, ODROID, …): a
	// terminal is a Pi, and the others cost the ARMv6 binary some 0.4 MiB.
	_ "periph.io/x/host/v3/bcm283x"
	_ "periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/rpi"
	_ "periph.io/x/host/v3/sysfs"

	"kiumtap/hal/indicator"
)

// None, as a pin name, leaves that line out (IRQ: poll the chip instead;
// an LED or the buzzer: this terminal has none).
const None = "none"

// Options name the ports and pins; empty names take the defaults, which
// match the wiring table in the README.
type Options struct {
	SPI    string // default "SPI0.0" (CE0)
	RST    string // default "GPIO25" (header pin 22)
	IRQ    string // default "GPIO24" (header pin 18); "none" to poll
	Green  string // default "GPIO17" (header pin 11)
	Red    string // default "GPIO27" (header pin 13)
	Buzzer string // default "GPIO22" (header pin 15)
}

func (o *Options) ensureDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.SPI, "SPI0.0")
	def(&o.RST, "GPIO25")
	def(&o.IRQ, "GPIO24")
	def(&o.Green, "GPIO17")
	def(&o.Red, "GPIO27")
	def(&o.Buzzer, "GPIO22")
}

// Board is what Open found.
type Board struct {
	SPI  spi.PortCloser
	RST  gpio.PinIO
	IRQ  gpio.PinIO // nil when Options.IRQ is "none"
	Pins indicator.Pins
}

// Close releases the SPI port.
func (b *Board) Close() error { return b.SPI.Close() }

// pin looks a pin up by its periph name; optional pins may be "none".
func pin(name, part string, optional bool) (gpio.PinIO, error) {
	if optional && strings.EqualFold(name, None) {
		return nil, nil
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("pi: %s pin %q not found: give a periph pin name such as GPIO25%s", part, name, map[bool]string{true: `, or "none"`}[optional])
	}
	return p, nil
}

// Open initialises periph's host drivers and opens every port and pin.
func Open(opts Options) (*Board, error) {
	opts.ensureDefaults()
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("pi: initialising periph host drivers: %w", err)
	}
	var b Board
	var err error
	if b.RST, err = pin(opts.RST, "RC522 RST", false); err != nil {
		return nil, err
	}
	if b.IRQ, err = pin(opts.IRQ, "RC522 IRQ", true); err != nil {
		return nil, err
	}
	var leds [3]gpio.PinIO
	for i, o := range []struct{ name, part string }{{opts.Green, "green LED"}, {opts.Red, "red LED"}, {opts.Buzzer, "buzzer"}} {
		if leds[i], err = pin(o.name, o.part, true); err != nil {
			return nil, err
		}
		if leds[i] != nil {
			if err := leds[i].Out(gpio.Low); err != nil {
				return nil, fmt.Errorf("pi: setting %s pin %s as output: %w", o.part, o.name, err)
			}
		}
	}
	// A nil gpio.PinIO must stay a nil gpio.PinOut.
	for i, dst := range []*gpio.PinOut{&b.Pins.Green, &b.Pins.Red, &b.Pins.Buzzer} {
		if leds[i] != nil {
			*dst = leds[i]
		}
	}
	if b.SPI, err = spireg.Open(opts.SPI); err != nil {
		return nil, fmt.Errorf("pi: opening SPI port %q for the RC522: %w (enable SPI with raspi-config or dtparam=spi=on)", opts.SPI, err)
	}
	return &b, nil
}

// Buttons looks up the enrolment buttons' pins by name (periph names such
// as GPIO5 and GPIO6: kiumtapd's buttons.next and buttons.choose) for
// package button, which sets them up. A pin the board already uses for
// the reader, the LEDs or the buzzer, or the same pin for both buttons, is
// an error that names the part on it.
func (b *Board) Buttons(next, choose string) (nextPin, choosePin gpio.PinIn, err error) {
	used := map[string]string{} // real pin name → the part on it
	add := func(p any, part string) {
		if n := realName(p); n != "" && n != gpio.INVALID.Name() {
			used[n] = part
		}
	}
	add(b.RST, "the RC522's RST")
	add(b.IRQ, "the RC522's IRQ")
	add(b.Pins.Green, "the green LED")
	add(b.Pins.Red, "the red LED")
	add(b.Pins.Buzzer, "the buzzer")
	if sp, ok := b.SPI.(spi.Pins); ok {
		for _, p := range []any{sp.CLK(), sp.MOSI(), sp.MISO(), sp.CS()} {
			add(p, "the RC522's SPI port")
		}
	}
	var pins [2]gpio.PinIO
	for i, o := range []struct{ name, part string }{{next, "Next button"}, {choose, "Choose button"}} {
		if pins[i], err = pin(o.name, o.part, false); err != nil {
			return nil, nil, err
		}
		n := realName(pins[i])
		if on, ok := used[n]; ok {
			return nil, nil, fmt.Errorf("pi: %s pin %s is already %s's: give the button a free GPIO (the README's wiring table has GPIO5 and GPIO6)", o.part, n, on)
		}
		used[n] = "the " + o.part
	}
	return pins[0], pins[1], nil
}

// realName is the name of the pin behind an alias (P1_29 is GPIO5), or ""
// for no pin.
func realName(p any) string {
	if r, ok := p.(gpio.RealPin); ok {
		p = r.Real()
	}
	if n, ok := p.(interface{ Name() string }); ok && n != nil {
		return n.Name()
	}
	return ""
}
