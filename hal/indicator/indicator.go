// Package indicator drives the terminal's LEDs and buzzer on periph GPIO
// outputs with named patterns (ok, refused, error, attention) that play in
// the background: showing a pattern never blocks the reader loop, and a new
// pattern cuts the one playing short, as a new tap's answer must not wait
// for the last one's beeps.
//
// It owns the output pins and nothing else: which pattern an outcome gets is
// decided elsewhere (package firmware).
package indicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Pattern names a feedback sequence.
type Pattern string

// The named patterns.
const (
	OK        Pattern = "ok"        // green, one short beep
	Refused   Pattern = "refused"   // red, two short beeps
	Error     Pattern = "error"     // red blinking, one long beep
	Attention Pattern = "attention" // green and red blinking together, three beeps
)

// Per-outcome patterns (their names match package firmware's): green for
// accepted taps, amber (green and red together) for bookings to fix, red
// for cards to fix.
const (
	Arrival   Pattern = "arrival"
	Departure Pattern = "departure"
	Duplicate Pattern = "duplicate"
	NoData    Pattern = "no_data"
	NotInUse  Pattern = "not_in_use"
	Unknown   Pattern = "unknown"
	Replaced  Pattern = "replaced"
	// Card enrolment: waiting for staff (amber, a soft blip) and a card
	// bound (green, one long beep).
	Enrol Pattern = "enrol"
	Bound Pattern = "bound"
)

// Output is one of the outputs a step can switch on.
type Output uint8

// Outputs.
const (
	Green Output = 1 << iota
	Red
	Buzzer
)

// Step holds a set of outputs on for a time; outputs not named are off.
type Step struct {
	On  Output
	For time.Duration
}

// Patterns are the sequences the named patterns play. Every sequence ends
// with all outputs off.
var Patterns = map[Pattern][]Step{
	OK: {
		{Green | Buzzer, 80 * time.Millisecond},
		{Green, 720 * time.Millisecond},
	},
	Refused: {
		{Red | Buzzer, 80 * time.Millisecond},
		{Red, 80 * time.Millisecond},
		{Red | Buzzer, 80 * time.Millisecond},
		{Red, 960 * time.Millisecond},
	},
	Error: {
		{Red | Buzzer, 600 * time.Millisecond},
		{0, 150 * time.Millisecond},
		{Red, 150 * time.Millisecond},
		{0, 150 * time.Millisecond},
		{Red, 150 * time.Millisecond},
	},
	Arrival: {
		{Green | Buzzer, 100 * time.Millisecond},
		{Green, 1400 * time.Millisecond},
	},
	Departure: {
		{Green | Buzzer, 70 * time.Millisecond},
		{Green, 70 * time.Millisecond},
		{Green | Buzzer, 70 * time.Millisecond},
		{Green, 1290 * time.Millisecond},
	},
	Duplicate: {
		{Green | Buzzer, 30 * time.Millisecond},
		{Green, 700 * time.Millisecond},
	},
	NoData: {
		{Green | Red | Buzzer, 80 * time.Millisecond},
		{Green | Red, 80 * time.Millisecond},
		{Green | Red | Buzzer, 80 * time.Millisecond},
		{Green | Red, 80 * time.Millisecond},
		{Green | Red | Buzzer, 80 * time.Millisecond},
		{Green | Red, 1600 * time.Millisecond},
	},
	NotInUse: {
		{Green | Red | Buzzer, 500 * time.Millisecond},
		{Green | Red, 1500 * time.Millisecond},
	},
	Unknown: {
		{Red | Buzzer, 120 * time.Millisecond},
		{Red, 100 * time.Millisecond},
		{Red | Buzzer, 120 * time.Millisecond},
		{Red, 1660 * time.Millisecond},
	},
	Replaced: {
		{Red | Buzzer, 80 * time.Millisecond},
		{Red, 80 * time.Millisecond},
		{Red | Buzzer, 80 * time.Millisecond},
		{Red, 80 * time.Millisecond},
		{Red | Buzzer, 80 * time.Millisecond},
		{Red, 1600 * time.Millisecond},
	},
	Enrol: {
		{Green | Red | Buzzer, 20 * time.Millisecond},
		{Green | Red, 1980 * time.Millisecond},
	},
	Bound: {
		{Green | Buzzer, 400 * time.Millisecond},
		{Green, 1600 * time.Millisecond},
	},
	Attention: {
		{Green | Red | Buzzer, 60 * time.Millisecond},
		{0, 120 * time.Millisecond},
		{Green | Red | Buzzer, 60 * time.Millisecond},
		{0, 120 * time.Millisecond},
		{Green | Red | Buzzer, 60 * time.Millisecond},
		{Green | Red, 600 * time.Millisecond},
	},
}

// Pins are the GPIO outputs; a nil pin is an output this terminal lacks.
type Pins struct {
	Green, Red, Buzzer gpio.PinOut
}

// Options configure an Indicator.
type Options struct {
	// After returns a channel that fires after d; default time.After. Tests
	// inject a clock here.
	After func(d time.Duration) <-chan time.Time
	// Logger gets errors from the pins; default: discard.
	Logger *slog.Logger
}

// Indicator plays patterns on its pins from its own goroutine (Run).
type Indicator struct {
	pins Pins
	opts Options
	req  chan Pattern
}

// New checks the pins and returns an Indicator; call Run to start it.
func New(pins Pins, opts Options) (*Indicator, error) {
	if pins.Green == nil && pins.Red == nil && pins.Buzzer == nil {
		return nil, errors.New("indicator: no output pin given (green, red, buzzer all nil)")
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Indicator{pins: pins, opts: opts, req: make(chan Pattern, 1)}, nil
}

// Show asks for a pattern and returns at once. A pattern still waiting to
// start is replaced; one playing is cut short.
func (ind *Indicator) Show(p Pattern) error {
	if _, ok := Patterns[p]; !ok {
		return fmt.Errorf("indicator: no pattern %q", p)
	}
	for {
		select {
		case ind.req <- p:
			return nil
		default:
		}
		select {
		case <-ind.req: // drop the older request, keep the newest
		default:
		}
	}
}

// Run plays requested patterns until ctx ends, then switches everything off.
func (ind *Indicator) Run(ctx context.Context) error {
	defer ind.set(0)
	ind.set(0)
	var steps []Step
	var tick <-chan time.Time
	for {
		if tick == nil && len(steps) > 0 {
			ind.set(steps[0].On)
			tick = ind.opts.After(steps[0].For)
			steps = steps[1:]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-ind.req:
			steps, tick = Patterns[p], nil
		case <-tick:
			tick = nil
			if len(steps) == 0 {
				ind.set(0)
			}
		}
	}
}

func (ind *Indicator) set(on Output) {
	for _, o := range []struct {
		pin gpio.PinOut
		bit Output
	}{{ind.pins.Green, Green}, {ind.pins.Red, Red}, {ind.pins.Buzzer, Buzzer}} {
		if o.pin == nil {
			continue
		}
		if err := o.pin.Out(gpio.Level(on&o.bit != 0)); err != nil {
			ind.opts.Logger.Error("indicator: setting output", "pin", o.pin.Name(), "err", err)
		}
	}
}
