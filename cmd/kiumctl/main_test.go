package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/spi/spitest"

	"kiumtap/hal/rc522"
	"kiumtap/internal/cli"
)

func TestProbeRecordsAPlayableFixture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "probe.spi")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"reader", "probe", "-reader", "emu", "-uid", "04A1B2C3D4E5F6", "-record", path}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "UID 04 A1 B2 C3 D4 E5 F6 (7 bytes)") {
		t.Errorf("output:\n%s", out.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := rc522.ParseRecording(f)
	if err != nil {
		t.Fatal(err)
	}
	pb := &spitest.Playback{Playback: conntest.Playback{Ops: ops, DontPanic: true}}
	dev, err := rc522.New(pb, &gpiotest.Pin{N: "RST"}, nil, rc522.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dev.Scan(context.Background())
	if err != nil || !bytes.Equal(c.UID, []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}) {
		t.Errorf("replayed Scan = % X, %v", c.UID, err)
	}
	if err := pb.Close(); err != nil {
		t.Error(err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"reader"},
		{"reader", "probe", "-uid", "123"},
		{"reader", "probe", "-nosuchflag"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"reader", "probe", "-reader", "usb"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `"emu" or "pi"`) {
		t.Errorf("-reader usb: %v", err)
	}
}
