package pi

import (
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spireg"

	"kiumtap/hal/rc522/rc522emu"
)

func init() {
	// Fake parts under their own names: this machine is no Pi.
	for _, n := range []string{"TEST_RST", "TEST_IRQ", "TEST_GREEN", "TEST_RED", "TEST_BUZZER", "TEST_NEXT", "TEST_CHOOSE"} {
		if err := gpioreg.Register(&gpiotest.Pin{N: n, EdgesChan: make(chan gpio.Level, 1)}); err != nil {
			panic(err)
		}
	}
	if err := gpioreg.RegisterAlias("TEST_P1_29", "TEST_NEXT"); err != nil {
		panic(err)
	}
	if err := spireg.Register("TESTSPI0.0", nil, -1, func() (spi.PortCloser, error) {
		return rc522emu.New(rc522emu.Options{}), nil
	}); err != nil {
		panic(err)
	}
}

func TestOpen(t *testing.T) {
	b, err := Open(Options{SPI: "TESTSPI0.0", RST: "TEST_RST", IRQ: "TEST_IRQ", Green: "TEST_GREEN", Red: "TEST_RED", Buzzer: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.RST == nil || b.IRQ == nil || b.Pins.Green == nil || b.Pins.Red == nil || b.Pins.Buzzer != nil {
		t.Errorf("board %+v", b)
	}
}

func TestOpenNamesTheFailingPin(t *testing.T) {
	base := Options{SPI: "TESTSPI0.0", RST: "TEST_RST", IRQ: "none", Green: "none", Red: "none", Buzzer: "none"}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.RST = "GPIO99" }, `RC522 RST pin "GPIO99"`},
		{func(o *Options) { o.RST = "none" }, `RC522 RST pin "none"`},
		{func(o *Options) { o.IRQ = "GPIO98" }, `RC522 IRQ pin "GPIO98"`},
		{func(o *Options) { o.Buzzer = "GPIO97" }, `buzzer pin "GPIO97"`},
		{func(o *Options) { o.SPI = "SPI9.9" }, `SPI port "SPI9.9"`},
	} {
		o := base
		tc.mod(&o)
		_, err := Open(o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error naming %s", o, err, tc.want)
		}
	}
}

// Buttons finds free pins by name or alias, and refuses a pin the reader,
// the LEDs or the other button already has, naming the part on it.
func TestButtons(t *testing.T) {
	b, err := Open(Options{SPI: "TESTSPI0.0", RST: "TEST_RST", IRQ: "none", Green: "TEST_GREEN", Red: "none", Buzzer: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		next, choose string
		err          []string // in the error; none: no error
	}{
		{"TEST_NEXT", "TEST_CHOOSE", nil},
		{"TEST_P1_29", "TEST_CHOOSE", nil},
		{"TEST_NEXT", "GPIO99", []string{"Choose button", `"GPIO99" not found`}},
		{"TEST_RST", "TEST_CHOOSE", []string{"Next button", "TEST_RST", "RST"}},
		{"TEST_NEXT", "TEST_GREEN", []string{"Choose button", "TEST_GREEN", "green LED"}},
		{"TEST_NEXT", "TEST_P1_29", []string{"Choose button", "TEST_NEXT", "Next button"}},
	} {
		next, choose, err := b.Buttons(tc.next, tc.choose)
		if tc.err == nil {
			if err != nil || next == nil || choose == nil {
				t.Errorf("Buttons(%s, %s) = %v, %v, %v", tc.next, tc.choose, next, choose, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Buttons(%s, %s): no error", tc.next, tc.choose)
			continue
		}
		for _, w := range tc.err {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Buttons(%s, %s): error %q does not say %q", tc.next, tc.choose, err, w)
			}
		}
	}
}
