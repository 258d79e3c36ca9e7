package display

import (
	"bytes"
	"flag"
	"image/color"
	"os"
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"kiumtap/firmware"
	"kiumtap/hal/display/font"
)

var update = flag.Bool("update", false, "rewrite docs/screens/*.png")

// oled is the colour of a typical white-on-black SSD1306, a touch blue.
var oled = color.RGBA{0xD8, 0xF0, 0xFF, 0xFF}

var screens = []struct {
	name string
	dec  firmware.Decision
}{
	{"check_in", firmware.Decision{Outcome: firmware.CheckIn}},
	{"check_out", firmware.Decision{Outcome: firmware.CheckOut}},
	{"duplicate", firmware.Decision{Outcome: firmware.Duplicate}},
	{"no_data", firmware.Decision{Outcome: firmware.NoData, Reason: firmware.ReasonNotUsageDay}},
	{"no_data_closed", firmware.Decision{Outcome: firmware.NoData, Reason: firmware.ReasonCentreClosed}},
	{"not_in_use", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonScheduled}},
	{"not_in_use_none", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonNoBooking}},
	{"unknown_card", firmware.Decision{Outcome: firmware.UnknownCard}},
	{"replaced_card", firmware.Decision{Outcome: firmware.ReplacedCard}},
	{"error", firmware.Decision{Outcome: "store_error"}},
}

// Every screen of every outcome fits the panel in both languages, and the
// Korean ones are the pictures in docs/screens (the README shows them).
func TestScreens(t *testing.T) {
	face, err := font.Galmuri11()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 15, 2, 0, 0, firmware.KST)
	for _, s := range screens {
		for _, lang := range []firmware.Language{firmware.Korean, firmware.English} {
			fb := firmware.FeedbackFor(s.dec, "김민준", at, lang)
			img, err := Render(face, fb.Lines)
			if err != nil {
				t.Errorf("%s/%s: %v", s.name, lang, err)
				continue
			}
			lit := 0
			for y := range H {
				for x := range W {
					if r, _, _, _ := img.At(x, y).RGBA(); r > 0 {
						lit++
					}
				}
			}
			if lit < 50 {
				t.Errorf("%s/%s: only %d pixels lit", s.name, lang, lit)
			}
			if lang != firmware.Korean {
				continue
			}
			var buf bytes.Buffer
			if err := WritePNG(&buf, img, 3, oled); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("..", "..", "docs", "screens", s.name+".png")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test ./hal/display -update writes it)", err)
			}
			if !bytes.Equal(want, buf.Bytes()) {
				t.Errorf("%s: the screen no longer matches %s (go test ./hal/display -update, and look at it)", s.name, path)
			}
		}
	}
}

func TestTooMuchText(t *testing.T) {
	face, _ := font.Galmuri11()
	if _, err := Render(face, []string{"a", "b", "c", "d"}); err == nil {
		t.Error("four lines accepted")
	}
	if _, err := Render(face, []string{"아주 아주 아주 긴 줄입니다 정말로 깁니다"}); err == nil {
		t.Error("a line wider than the panel accepted")
	}
}

func TestVirtual(t *testing.T) {
	v, err := NewVirtual()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Show([]string{"김*준", "입실 15:02"}); err != nil {
		t.Fatal(err)
	}
	if v.Frame().Bounds().Dx() != W {
		t.Error("frame size")
	}
}

// The SSD1306 path: through periph's driver, a screen reaches the panel's
// bus as the frame Render drew (GDDRAM bytes after the 0x40 data prefix).
func TestSSD1306(t *testing.T) {
	bus := &i2ctest.Record{}
	s, err := NewSSD1306(bus)
	if err != nil {
		t.Fatal(err)
	}
	bus.Ops = nil
	lines := []string{"김*준", "입실 15:02"}
	if err := s.Show(lines); err != nil {
		t.Fatal(err)
	}
	face, _ := font.Galmuri11()
	want, _ := Render(face, lines)
	var got []byte
	for _, op := range bus.Ops {
		if op.Addr != 0x3C {
			t.Fatalf("write to I2C address %#x, want 0x3C", op.Addr)
		}
		if len(op.W) > 0 && op.W[0] == 0x40 {
			got = append(got, op.W[1:]...)
		}
	}
	if !bytes.Equal(got, want.Pix) {
		t.Errorf("panel got %d bytes of pixels, differing from the rendered frame (%d bytes)", len(got), len(want.Pix))
	}
}
