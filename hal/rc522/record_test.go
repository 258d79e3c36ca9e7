package rc522_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/spi/spitest"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

var update = flag.Bool("update", false, "re-record testdata/*.spi from the emulator")

// recordScan records New and one Scan of card on the instant emulator, in
// polling mode (a playback has no IRQ line), as kiumctl reader probe
// --record does on real hardware.
func recordScan(t *testing.T, uid []byte) []conntest.IO {
	t.Helper()
	chip := rc522emu.New(rc522emu.Options{})
	chip.Place(rc522emu.NewCard(uid, rc522emu.CardOptions{}))
	rec := &spitest.Record{Port: chip}
	dev, err := rc522.New(rec, chip.RST(), nil, rc522.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dev.Scan(context.Background())
	if err != nil || !bytes.Equal(c.UID, uid) {
		t.Fatalf("recording: Scan = % X, %v", c.UID, err)
	}
	return rec.Ops
}

// TestPlayback replays a read recorded from the emulator: the driver must
// issue exactly the recorded transactions and get the UID out of them.
func TestPlayback(t *testing.T) {
	for name, uid := range map[string][]byte{"scan_uid4.spi": uid4, "scan_uid7.spi": uid7} {
		path := filepath.Join("testdata", name)
		if *update {
			var buf bytes.Buffer
			if err := rc522.WriteRecording(&buf, recordScan(t, uid)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestPlayback -update to record it)", err)
		}
		ops, err := rc522.ParseRecording(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		pb := &spitest.Playback{Playback: conntest.Playback{Ops: ops, DontPanic: true}}
		dev, err := rc522.New(pb, &gpiotest.Pin{N: "RST"}, nil, rc522.Options{})
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		c, err := dev.Scan(context.Background())
		if err != nil || !bytes.Equal(c.UID, uid) {
			t.Errorf("%s: Scan = % X, %v; want % X", name, c.UID, err, uid)
		}
		if err := pb.Close(); err != nil {
			t.Errorf("%s: playback not fully consumed: %v", name, err)
		}
	}
}

func TestRecordingRoundTrip(t *testing.T) {
	ops := recordScan(t, uid10)
	var buf bytes.Buffer
	if err := rc522.WriteRecording(&buf, ops); err != nil {
		t.Fatal(err)
	}
	got, err := rc522.ParseRecording(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("%d ops back, wrote %d", len(got), len(ops))
	}
	for i := range ops {
		if !bytes.Equal(got[i].W, ops[i].W) || !bytes.Equal(got[i].R, ops[i].R) {
			t.Fatalf("op %d: %+v, wrote %+v", i, got[i], ops[i])
		}
	}
}

func TestParseRecordingRejects(t *testing.T) {
	for _, in := range []string{
		"x 12",
		"w 1",          // odd hex
		"r 8E00 00",    // MISO shorter than MOSI
		"r 1200 0000",  // a write address on an r line
		"w 8E00",       // a read address on a w line
		"w",            // no bytes
		"r 8E00",       // no MISO
		"w 12 34 56 7", // too many fields
	} {
		if _, err := rc522.ParseRecording(strings.NewReader(in)); err == nil {
			t.Errorf("ParseRecording(%q): no error", in)
		}
	}
}

func FuzzParseRecording(f *testing.F) {
	for _, name := range []string{"scan_uid4.spi", "scan_uid7.spi"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("r 8E00 0092\nw 1200\n# c\n")
	f.Fuzz(func(t *testing.T, in string) {
		ops, err := rc522.ParseRecording(strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses writes back and parses to the same thing.
		var buf bytes.Buffer
		if err := rc522.WriteRecording(&buf, ops); err != nil {
			t.Fatal(err)
		}
		again, err := rc522.ParseRecording(&buf)
		if err != nil || len(again) != len(ops) {
			t.Fatalf("round trip: %d ops, %v; had %d", len(again), err, len(ops))
		}
	})
}
