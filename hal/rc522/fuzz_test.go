package rc522_test

import (
	"context"
	"testing"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"

	"kiumtap/hal/iso14443a"
	"kiumtap/hal/rc522"
)

// misoPort answers every SPI read with bytes from a fuzzer, after the
// version check: the driver's decoding of what comes back on MISO.
type misoPort struct {
	data []byte
	pos  int
	n    int
}

func (p *misoPort) String() string                                            { return "fuzz" }
func (p *misoPort) Close() error                                              { return nil }
func (p *misoPort) LimitSpeed(physic.Frequency) error                         { return nil }
func (p *misoPort) Duplex() conn.Duplex                                       { return conn.Full }
func (p *misoPort) TxPackets([]spi.Packet) error                              { return nil }
func (p *misoPort) Connect(physic.Frequency, spi.Mode, int) (spi.Conn, error) { return p, nil }

func (p *misoPort) Tx(w, r []byte) error {
	p.n++
	if p.n == 1 { // CommandReg, VersionReg at reset
		copy(r, []byte{0, 0x20, 0x92})
		return nil
	}
	for i := range r {
		if len(p.data) > 0 {
			r[i] = p.data[p.pos%len(p.data)]
			p.pos++
		}
	}
	return nil
}

func FuzzScanMISO(f *testing.F) {
	f.Add([]byte{0x20, 0, 2, 0, 0xA0, 0x04, 0x00})
	f.Add([]byte{0x22, 0x08, 5, 0, 0x0B, 0x11, 0x04, 0, 0, 0})
	f.Add([]byte{0xFF})
	f.Fuzz(func(t *testing.T, miso []byte) {
		p := &misoPort{data: miso}
		dev, err := rc522.New(p, &gpiotest.Pin{N: "RST"}, nil, rc522.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := dev.Scan(context.Background())
		if err != nil {
			return
		}
		// Whatever the bytes, a card that comes out is well formed.
		if _, perr := iso14443a.Parts(c.UID); perr != nil {
			t.Fatalf("Scan returned a UID of %d bytes", len(c.UID))
		}
		if len(c.UID) == 4 && c.UID[0] == iso14443a.CascadeTag {
			t.Fatalf("UID % X starts with the cascade tag", c.UID)
		}
	})
}
