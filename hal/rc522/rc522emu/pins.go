package rc522emu

import (
	"errors"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// IRQPin is the chip's IRQ output as the host sees it: a gpio.PinIO whose
// level follows Status1Reg IRq (inverted when ComIEnReg IRqInv is set, as
// after reset) and whose WaitForEdge reports the edges asked for with In.
// Edges that nobody waits for are kept, one deep, as a kernel GPIO driver
// keeps a pending interrupt.
type IRQPin struct {
	name string

	mu      sync.Mutex
	level   gpio.Level
	edge    gpio.Edge
	pending chan struct{} // one pending edge
	halt    chan struct{}
}

func newIRQPin(name string) *IRQPin {
	return &IRQPin{name: name, level: gpio.High, pending: make(chan struct{}, 1), halt: make(chan struct{})}
}

// drive is called by the chip, under its lock, with the pin's new level.
func (p *IRQPin) drive(l gpio.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == p.level {
		return
	}
	p.level = l
	want := p.edge == gpio.BothEdges || (l == gpio.Low && p.edge == gpio.FallingEdge) || (l == gpio.High && p.edge == gpio.RisingEdge)
	if want {
		select {
		case p.pending <- struct{}{}:
		default:
		}
	}
}

func (p *IRQPin) String() string   { return p.name }
func (p *IRQPin) Name() string     { return p.name }
func (p *IRQPin) Number() int      { return -1 }
func (p *IRQPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *IRQPin) Func() pin.Func { return gpio.IN }

// SupportedFuncs implements pin.PinFunc.
func (p *IRQPin) SupportedFuncs() []pin.Func { return []pin.Func{gpio.IN} }

// SetFunc implements pin.PinFunc.
func (p *IRQPin) SetFunc(f pin.Func) error {
	if f != gpio.IN {
		return errors.New("rc522emu: the IRQ pin is an input of the host")
	}
	return nil
}

// Halt wakes every WaitForEdge with false.
func (p *IRQPin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.halt)
	p.halt = make(chan struct{})
	return nil
}

// In sets which edges WaitForEdge reports and forgets a pending edge.
func (p *IRQPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edge = edge
	select {
	case <-p.pending:
	default:
	}
	return nil
}

// Read returns the level the chip drives.
func (p *IRQPin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// WaitForEdge waits for an edge of the kind set with In; a negative timeout
// waits for ever.
func (p *IRQPin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	halt := p.halt
	p.mu.Unlock()
	select {
	case <-p.pending:
		return true
	default:
	}
	if timeout == 0 {
		return false
	}
	var after <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		after = t.C
	}
	select {
	case <-p.pending:
		return true
	case <-after:
		return false
	case <-halt:
		return false
	}
}

func (p *IRQPin) Pull() gpio.Pull        { return gpio.PullUp }
func (p *IRQPin) DefaultPull() gpio.Pull { return gpio.PullUp }

// Out fails: the host does not drive the chip's IRQ output.
func (p *IRQPin) Out(gpio.Level) error {
	return errors.New("rc522emu: the IRQ pin is an output of the MFRC522, not of the host")
}

// PWM fails like Out.
func (p *IRQPin) PWM(gpio.Duty, physic.Frequency) error { return p.Out(gpio.Low) }

// RSTPin is the chip's NRSTPD input: driving it low puts the chip in hard
// power-down (the field drops, SPI reads return 00h), a rising edge resets
// every register and clears a wedge.
type RSTPin struct {
	name string
	chip *Chip

	mu    sync.Mutex
	level gpio.Level
}

func (p *RSTPin) String() string   { return p.name }
func (p *RSTPin) Name() string     { return p.name }
func (p *RSTPin) Number() int      { return -1 }
func (p *RSTPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *RSTPin) Func() pin.Func { return gpio.OUT }

// SupportedFuncs implements pin.PinFunc.
func (p *RSTPin) SupportedFuncs() []pin.Func { return []pin.Func{gpio.OUT} }

// SetFunc implements pin.PinFunc.
func (p *RSTPin) SetFunc(f pin.Func) error {
	if f != gpio.OUT {
		return errors.New("rc522emu: the RST pin is an output of the host")
	}
	return nil
}

func (p *RSTPin) Halt() error { return nil }

// In fails: NRSTPD is driven by the host.
func (p *RSTPin) In(gpio.Pull, gpio.Edge) error {
	return errors.New("rc522emu: the RST pin is driven by the host")
}

func (p *RSTPin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

func (p *RSTPin) WaitForEdge(time.Duration) bool { return false }
func (p *RSTPin) Pull() gpio.Pull                { return gpio.PullNoChange }
func (p *RSTPin) DefaultPull() gpio.Pull         { return gpio.PullNoChange }

// Out drives NRSTPD.
func (p *RSTPin) Out(l gpio.Level) error {
	p.mu.Lock()
	prev := p.level
	p.level = l
	p.mu.Unlock()
	switch {
	case l == gpio.Low && prev == gpio.High:
		p.chip.hardPowerDown()
	case l == gpio.High && prev == gpio.Low:
		p.chip.hardReset()
	}
	return nil
}

// PWM fails: a reset line is not a PWM output.
func (p *RSTPin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("rc522emu: PWM on the RST pin makes no sense")
}

var (
	_ gpio.PinIO  = (*IRQPin)(nil)
	_ gpio.PinIO  = (*RSTPin)(nil)
	_ pin.PinFunc = (*IRQPin)(nil)
	_ pin.PinFunc = (*RSTPin)(nil)
)
