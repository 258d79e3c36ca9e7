package indicator

import (
	"context"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"kiumtap/firmware"
)

// fakeClock hands out timers the test fires by hand.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.asked <- d
	return c.fire
}

type rig struct {
	t                  *testing.T
	clock              *fakeClock
	green, red, buzzer *gpiotest.Pin
	ind                *Indicator
	mu                 sync.Mutex
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, clock: newFakeClock(),
		green: &gpiotest.Pin{N: "GREEN"}, red: &gpiotest.Pin{N: "RED"}, buzzer: &gpiotest.Pin{N: "BUZZER"}}
	ind, err := New(Pins{Green: r.green, Red: r.red, Buzzer: r.buzzer}, Options{After: r.clock.After})
	if err != nil {
		t.Fatal(err)
	}
	r.ind = ind
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ind.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if r.lit() != 0 {
			t.Error("outputs left on after Run ended")
		}
	})
	return r
}

func (r *rig) lit() Output {
	var on Output
	if r.green.Read() == gpio.High {
		on |= Green
	}
	if r.red.Read() == gpio.High {
		on |= Red
	}
	if r.buzzer.Read() == gpio.High {
		on |= Buzzer
	}
	return on
}

// step waits for the indicator to start a step and checks it.
func (r *rig) step(want Step) {
	r.t.Helper()
	select {
	case d := <-r.clock.asked:
		if d != want.For || r.lit() != want.On {
			r.t.Fatalf("step: outputs %03b for %v, want %03b for %v", r.lit(), d, want.On, want.For)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no step started; want %03b for %v", want.On, want.For)
	}
}

func (r *rig) fire() { r.clock.fire <- time.Time{} }

func TestPatternsPlayInFull(t *testing.T) {
	for name, steps := range Patterns {
		t.Run(string(name), func(t *testing.T) {
			r := newRig(t)
			if err := r.ind.Show(name); err != nil {
				t.Fatal(err)
			}
			for _, s := range steps {
				r.step(s)
				r.fire()
			}
			// After the last step everything goes dark.
			deadline := time.Now().Add(5 * time.Second)
			for r.lit() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("outputs %03b still on after the pattern", r.lit())
				}
				time.Sleep(time.Millisecond) // polling a condition, with a deadline
			}
		})
	}
}

func TestNewPatternCutsShort(t *testing.T) {
	r := newRig(t)
	r.ind.Show(OK)
	r.step(Patterns[OK][0])
	// A refused tap while OK is still beeping: Refused starts at once.
	r.ind.Show(Refused)
	r.step(Patterns[Refused][0])
}

func TestShowNeverBlocks(t *testing.T) {
	ind, err := New(Pins{Buzzer: &gpiotest.Pin{N: "BUZZER"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody runs the indicator: Show must still return, keeping the newest.
	for range 100 {
		if err := ind.Show(Error); err != nil {
			t.Fatal(err)
		}
	}
	ind.Show(Attention)
	if p := <-ind.req; p != Attention {
		t.Errorf("pending pattern %q, want the newest, attention", p)
	}
	if err := ind.Show("party"); err == nil {
		t.Error("unknown pattern accepted")
	}
}

func TestNeedsAPin(t *testing.T) {
	if _, err := New(Pins{}, Options{}); err == nil {
		t.Error("New with no pins: no error")
	}
}

// Every pattern firmware asks for is one the indicator can play.
func TestFirmwarePatterns(t *testing.T) {
	for _, p := range []string{firmware.PatternArrival, firmware.PatternDeparture, firmware.PatternDuplicate, firmware.PatternNoData,
		firmware.PatternNotInUse, firmware.PatternUnknown, firmware.PatternReplaced, firmware.PatternError,
		firmware.PatternEnrol, firmware.PatternBound} {
		if _, ok := Patterns[Pattern(p)]; !ok {
			t.Errorf("firmware's pattern %q has no sequence", p)
		}
	}
}
