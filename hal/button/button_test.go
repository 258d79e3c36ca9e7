package button

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"kiumtap/firmware"
)

// within bounds every wait for the code under test: a deadline for a
// condition, never a pause that hopes the state has arrived.
const within = 5 * time.Second

// waitClock is a fake clock that says each time the pin starts a timed
// WaitForEdge, and for how long: the test then knows the pin is waiting
// before it sends an edge or moves time on.
type waitClock struct {
	*clockwork.FakeClock
	waits chan time.Duration
}

func (c *waitClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d) // registered before the test hears of it
	c.waits <- d
	return ch
}

// line is one button's pin with its own fake clock. Between the test's
// steps the pin's goroutine is always inside a WaitForEdge that times out
// after left.
type line struct {
	t    *testing.T
	pin  *gpiotest.Pin
	clk  *waitClock
	left time.Duration
}

func newLine(t *testing.T, name string) *line {
	clk := &waitClock{FakeClock: clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)), waits: make(chan time.Duration, 64)}
	return &line{t: t, clk: clk, pin: &gpiotest.Pin{N: name, Clock: clk, EdgesChan: make(chan gpio.Level)}}
}

// waiting blocks until the pin starts its next wait.
func (l *line) waiting() {
	l.t.Helper()
	select {
	case l.left = <-l.clk.waits:
	case <-time.After(within):
		l.t.Fatalf("%s: the pin never waited for an edge again", l.pin.N)
	}
}

// edge moves the line to lv now.
func (l *line) edge(lv gpio.Level) {
	l.t.Helper()
	select {
	case l.pin.EdgesChan <- lv:
	case <-time.After(within):
		l.t.Fatalf("%s: nobody took the edge to %s", l.pin.N, lv)
	}
	l.waiting()
}

// pass lets d go by on the line's clock, wait after wait.
func (l *line) pass(d time.Duration) {
	l.t.Helper()
	for d > 0 {
		step := min(d, l.left)
		l.clk.Advance(step)
		d, l.left = d-step, l.left-step
		if l.left == 0 {
			l.waiting()
		}
	}
}

type rig struct {
	t            *testing.T
	next, choose *line
	b            *Buttons
	got          chan firmware.Button
	seen         []firmware.Button
	cancel       context.CancelFunc
	done         chan error
}

// newRig starts Run on two fake pins; opts.Next and opts.Choose are set
// here. Cleanup ends Run and checks that it returned ctx's error.
func newRig(t *testing.T, opts Options, before func(*rig)) *rig {
	r := &rig{t: t, next: newLine(t, "GPIO5"), choose: newLine(t, "GPIO6"), got: make(chan firmware.Button, 64), done: make(chan error, 1)}
	opts.Next, opts.Choose = r.next.pin, r.choose.pin
	var err error
	if r.b, err = New(opts); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.b.Run(ctx, func(b firmware.Button) { r.got <- b }) }()
	r.next.waiting()
	r.choose.waiting()
	t.Cleanup(func() {
		cancel()
		// Wake both goroutines from whatever wait they are in; a wait
		// begun after that is woken as it is announced.
		r.next.clk.Advance(time.Second)
		r.choose.clk.Advance(time.Second)
		deadline := time.After(within)
		for {
			select {
			case err := <-r.done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run ended with %v, want context.Canceled", err)
				}
				return
			case d := <-r.next.clk.waits:
				r.next.clk.Advance(d)
			case d := <-r.choose.clk.waits:
				r.choose.clk.Advance(d)
			case <-deadline:
				t.Error("Run did not end after its context was cancelled")
				return
			}
		}
	})
	return r
}

// presses returns every press delivered so far. Run calls press before
// the pin's next wait, so after a step nothing is still on its way.
func (r *rig) presses() []firmware.Button {
	for {
		select {
		case b := <-r.got:
			r.seen = append(r.seen, b)
		default:
			return r.seen
		}
	}
}

// A step of a button script: an edge (to low: the button closes; to high:
// it opens), time passing, or a check of the presses so far.
type step struct {
	edge  gpio.Level
	pass  time.Duration
	check int // when > 0, presses so far must be check-1
}

var (
	down   = step{edge: gpio.Low}
	up     = step{edge: gpio.High}
	pass   = func(d time.Duration) step { return step{pass: d} }
	counts = func(n int) step { return step{check: n + 1} }
)

const ms = time.Millisecond

func TestPress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		debounce time.Duration // 0: the default, 20 ms
		script   []step
		want     int
	}{
		{"clean press", 0, []step{down, pass(19 * ms), counts(0), pass(1 * ms), counts(1), pass(300 * ms), up, pass(20 * ms)}, 1},
		{"bounce burst on closing", 0, []step{
			down, pass(1 * ms), up, pass(2 * ms), down, up, pass(500 * time.Microsecond), down, pass(3 * ms), up, pass(1 * ms), down,
			pass(19 * ms), counts(0), pass(1 * ms), counts(1), pass(time.Second), up, pass(20 * ms)}, 1},
		{"bounce burst on opening", 0, []step{
			down, pass(50 * ms), counts(1),
			up, pass(1 * ms), down, pass(2 * ms), up, down, pass(3 * ms), up, pass(20 * ms), pass(time.Second)}, 1},
		{"held button", 0, []step{down, pass(20 * ms), pass(10 * time.Second), counts(1), up, pass(20 * ms), pass(time.Second)}, 1},
		{"short glitch", 0, []step{down, pass(19 * ms), up, pass(time.Second)}, 0},
		{"glitch burst ending high", 0, []step{down, pass(5 * ms), up, pass(5 * ms), down, pass(5 * ms), up, pass(time.Second)}, 0},
		{"release glitch while held", 0, []step{down, pass(20 * ms), counts(1), up, pass(5 * ms), down, pass(time.Second), up, pass(20 * ms)}, 1},
		{"two presses", 0, []step{down, pass(40 * ms), up, pass(40 * ms), down, pass(40 * ms), up, pass(40 * ms)}, 2},
		{"longer debounce", 50 * ms, []step{down, pass(40 * ms), up, pass(time.Second), counts(0), down, pass(50 * ms), up, pass(50 * ms)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{Debounce: tc.debounce}, nil)
			for i, s := range tc.script {
				switch {
				case s.check > 0:
					if got := len(r.presses()); got != s.check-1 {
						t.Fatalf("step %d: %d presses so far, want %d", i, got, s.check-1)
					}
				case s.pass > 0:
					r.next.pass(s.pass)
				default:
					r.next.edge(s.edge)
				}
			}
			got := r.presses()
			if len(got) != tc.want {
				t.Fatalf("%d presses %v, want %d", len(got), got, tc.want)
			}
			for _, b := range got {
				if b != firmware.ButtonNext {
					t.Errorf("pressed %v, want Next", b)
				}
			}
		})
	}
}

// Each button reports as itself, also when both are down together.
func TestBothButtons(t *testing.T) {
	r := newRig(t, Options{}, nil)
	r.next.edge(gpio.Low)
	r.next.pass(20 * ms)
	r.next.edge(gpio.High)
	r.next.pass(20 * ms)
	r.choose.edge(gpio.Low)
	r.choose.pass(20 * ms)
	r.next.edge(gpio.Low) // Next while Choose is held
	r.next.pass(20 * ms)
	r.choose.edge(gpio.High)
	r.next.edge(gpio.High)
	r.choose.pass(20 * ms)
	r.next.pass(20 * ms)
	got := r.presses()
	want := []firmware.Button{firmware.ButtonNext, firmware.ButtonChoose, firmware.ButtonNext}
	if len(got) != len(want) {
		t.Fatalf("presses %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("presses %v, want %v", got, want)
		}
	}
}

// A button down when Run starts (held, or shorted) is no press; the next
// press after its release is.
func TestDownAtStart(t *testing.T) {
	r := newRig(t, Options{}, func(r *rig) { r.next.pin.Out(gpio.Low) })
	r.next.pass(time.Second)
	if got := r.presses(); len(got) != 0 {
		t.Fatalf("a button down at start gave presses %v", got)
	}
	r.next.edge(gpio.High)
	r.next.pass(20 * ms)
	r.next.edge(gpio.Low)
	r.next.pass(20 * ms)
	if got := r.presses(); len(got) != 1 {
		t.Fatalf("presses after the release: %v, want one", got)
	}
}

// Run ends when its context does, with its error, after its goroutines;
// a second Run meanwhile is refused; New set the pins up for a pull-up.
func TestRun(t *testing.T) {
	r := newRig(t, Options{}, nil)
	if r.next.pin.Pull() != gpio.PullUp || r.choose.pin.Pull() != gpio.PullUp {
		t.Error("pins not set to pull up")
	}
	if err := r.b.Run(context.Background(), func(firmware.Button) {}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Run: %v", err)
	}
	if err := r.b.Run(context.Background(), nil); err == nil {
		t.Error("Run without a press function: no error")
	}
	r.cancel()
	r.next.clk.Advance(idleWait)
	r.choose.clk.Advance(idleWait)
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(within):
		t.Fatal("Run did not end after its context was cancelled")
	}
}

func TestNewErrors(t *testing.T) {
	ok := func(name string) *gpiotest.Pin { return &gpiotest.Pin{N: name, EdgesChan: make(chan gpio.Level)} }
	for _, tc := range []struct {
		name string
		opts Options
		want []string // in the error
	}{
		{"no pins", Options{}, []string{"Options.Next", "Options.Choose"}},
		{"no next", Options{Choose: ok("GPIO6")}, []string{"Next", "Options.Next"}},
		{"no choose", Options{Next: ok("GPIO5")}, []string{"Choose", "Options.Choose"}},
		{"same pin", Options{Next: ok("GPIO5"), Choose: ok("GPIO5")}, []string{"GPIO5", "its own pin"}},
		{"negative debounce", Options{Next: ok("GPIO5"), Choose: ok("GPIO6"), Debounce: -ms}, []string{"debounce", "-1ms"}},
		{"debounce too long", Options{Next: ok("GPIO5"), Choose: ok("GPIO6"), Debounce: 2 * time.Second}, []string{"debounce", "2s"}},
		// gpiotest refuses edge detection on a pin without EdgesChan, as a
		// real pin refuses it when the line is busy.
		{"In fails", Options{Next: ok("GPIO5"), Choose: &gpiotest.Pin{N: "GPIO6"}}, []string{"Choose", "GPIO6", "pull-up", "check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
