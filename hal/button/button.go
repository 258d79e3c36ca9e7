// Package button reads the terminal's two enrolment push buttons, Next and
// Choose, on periph GPIO inputs and reports each press once, debounced: a
// press is the line held low (the button closes it to ground against the
// internal pull-up) and steady for the debounce time. Contact bounce gives
// one press, a held button gives one press, a glitch shorter than the
// debounce time gives none.
//
// It owns the two input pins and their timing, nothing else: what a press
// does is package firmware's (Enroller.Press).
package button

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"kiumtap/firmware"
)

// Options name the pins and tune the debouncing.
type Options struct {
	// Next and Choose are the buttons' pins, each a push button to ground;
	// both required. New sets them as inputs with the internal pull-up and
	// edge detection on both edges.
	Next, Choose gpio.PinIn
	// Debounce is how long a level must stay steady before it counts: a
	// press is the line low for at least this long. Default 20 ms, longer
	// than the bounce of common tactile switches (a few ms) and short
	// enough that no real press is missed. At most 1 s.
	Debounce time.Duration
	// Logger gets a warning for a button that is down at start (held, or
	// a line shorted to ground) and debug records of presses and ignored
	// glitches. Default: discard.
	Logger *slog.Logger
}

// DefaultDebounce is Options.Debounce's default.
const DefaultDebounce = 20 * time.Millisecond

// idleWait bounds each wait for an edge while the line is quiet, so that Run
// notices its context ending within this time on any periph pin driver: a
// wait without a deadline (-1) is forever on some drivers and immediate on
// others (gpioioctl), and Halt does not unblock every driver's wait.
const idleWait = 200 * time.Millisecond

func (o *Options) ensureDefaults() error {
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Next == nil && o.Choose == nil:
		return errors.New("button: no pins given: set Options.Next and Options.Choose (a terminal without buttons needs no Buttons)")
	case o.Next == nil:
		return errors.New("button: no pin for the Next button: set Options.Next")
	case o.Choose == nil:
		return errors.New("button: no pin for the Choose button: set Options.Choose")
	case o.Next.Name() != "" && o.Next.Name() == o.Choose.Name():
		return fmt.Errorf("button: Next and Choose are both on pin %s: wire each button to its own pin", o.Next.Name())
	case o.Debounce < 0 || o.Debounce > time.Second:
		return fmt.Errorf("button: debounce time %v is outside 0 to 1s (0 means the default, %v)", o.Debounce, DefaultDebounce)
	}
	return nil
}

// Buttons reads the two buttons; Run delivers their presses.
type Buttons struct {
	opts    Options
	running atomic.Bool
}

// New checks the options and sets both pins up as inputs with pull-up and
// edge detection; call Run to read them.
func New(o Options) (*Buttons, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		pin  gpio.PinIn
		name string
	}{{o.Next, "Next"}, {o.Choose, "Choose"}} {
		if err := p.pin.In(gpio.PullUp, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("button: setting up the %s button's pin %s as an input with pull-up and edge detection: %w (check the pin name, that no other program or overlay holds the line, and that the kernel has GPIO character devices)", p.name, p.pin.Name(), err)
		}
	}
	return &Buttons{opts: o}, nil
}

// Run reads both buttons until ctx ends, calling press once for each
// press, and returns ctx's error. press is called one call at a time, from
// goroutines Run owns and waits for; while it runs, that button's edges
// wait in the driver's queue, so a slow press delays the next press but
// loses none. Run ends within a fraction of a second of ctx ending. Only
// one Run at a time.
func (b *Buttons) Run(ctx context.Context, press func(firmware.Button)) error {
	if press == nil {
		return errors.New("button: Run needs a press function")
	}
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("button: Run is already running for these buttons")
	}
	defer b.running.Store(false)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	report := func(btn firmware.Button) {
		mu.Lock()
		defer mu.Unlock()
		press(btn)
	}
	for _, p := range []struct {
		pin gpio.PinIn
		btn firmware.Button
	}{{b.opts.Next, firmware.ButtonNext}, {b.opts.Choose, firmware.ButtonChoose}} {
		wg.Go(func() { b.watch(ctx, p.pin, p.btn, report) })
	}
	wg.Wait()
	return ctx.Err()
}

// watch debounces one pin until ctx ends.
//
// Why not periph's gpioutil.Debounce (conn v3.7.2): its WaitForEdge, after
// the first edge, sleeps the denoise time and samples the level once, so a
// level that happens to be low at that instant in the middle of a longer
// bounce or noise burst counts, and edges that arrive while it sleeps are
// left queued for the next call; its lock-out (debounce) argument is
// stored but never used; its Halt does not reach the pin, its clock cannot
// be injected, and it wraps only a gpio.PinIO. Here a level counts only
// after a whole debounce time without any edge, measured by the pin's own
// WaitForEdge timeout (real time on a Pi, an injected clock in
// tests).
func (b *Buttons) watch(ctx context.Context, pin gpio.PinIn, btn firmware.Button, press func(firmware.Button)) {
	log := b.opts.Logger.With("button", name(btn), "pin", pin.Name())
	stable := pin.Read()
	if stable == gpio.Low {
		log.Warn("button is down at start: no press until it is released (if it never is, check the button and its wiring for a short to ground)")
	}
	for ctx.Err() == nil {
		if !pin.WaitForEdge(idleWait) && pin.Read() == stable {
			continue // quiet, and no edge missed
		}
		// Something moved: wait until the line has been quiet for a whole
		// debounce time, each edge starting the time again.
		for ctx.Err() == nil && pin.WaitForEdge(b.opts.Debounce) {
		}
		if ctx.Err() != nil {
			return
		}
		level := pin.Read()
		switch {
		case level == stable:
			log.Debug("glitch ignored", "level", level)
		case level == gpio.Low:
			stable = level
			log.Debug("press")
			press(btn)
		default:
			stable = level
			log.Debug("release")
		}
	}
}

func name(b firmware.Button) string {
	switch b {
	case firmware.ButtonNext:
		return "next"
	case firmware.ButtonChoose:
		return "choose"
	}
	return fmt.Sprintf("button %d", int(b))
}
