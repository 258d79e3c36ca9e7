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
	{"not_in_use_applied", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonApplied}},
	{"not_in_use_rejected", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonRejected}},
	{"not_in_use_cancelled", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonCancelled}},
	{"not_in_use_ended", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonEnded}},
	{"not_in_use_period_over", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonPeriodOver}},
	{"not_in_use_not_started", firmware.Decision{Outcome: firmware.NotInUse, Reason: firmware.ReasonNotYetStarted}},
	{"no_data_after_closing", firmware.Decision{Outcome: firmware.NoData, Reason: firmware.ReasonAfterClosing}},
	{"replaced_card_revoked", firmware.Decision{Outcome: firmware.ReplacedCard, Reason: firmware.ReasonCardRevoked}},
	{"child_not_in_roster", firmware.Decision{Outcome: firmware.UnknownCard, Reason: firmware.ReasonChildNotInRoster}},
	{"unknown_card", firmware.Decision{Outcome: firmware.UnknownCard, Reason: firmware.ReasonCardUnbound}},
	{"replaced_card", firmware.Decision{Outcome: firmware.ReplacedCard, Reason: firmware.ReasonCardReplaced}},
	{"card_conflict", firmware.Decision{Outcome: firmware.ReplacedCard, Reason: firmware.ReasonCardConflict}},
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
			picture := ""
			if lang == firmware.Korean {
				picture = s.name
			}
			checkScreen(t, face, s.name+"/"+string(lang), fb.Lines, picture)
		}
	}
}

// enrolScreens drives an Enroller through the device flow on a small
// roster and returns the screens it shows, in order, named for their
// pictures (docs/screens/enrol_*.png): the lines are the Enroller's own.
func enrolScreens(t *testing.T) []struct {
	name  string
	lines []string
} {
	d := func(s string) firmware.Date {
		v, err := firmware.ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	key := func(n byte) string { return firmware.CardKey([]byte("centre-key"), []byte{n}) }
	wk := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	afternoon := firmware.Window{Start: 13 * 60, End: 19 * 60}
	r := &firmware.Roster{
		Revision: 1,
		Centre: firmware.Centre{ID: "mangwon1", Name: "우리동네키움센터 망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: d("2026-09-01"), To: d("2026-12-31"), Hours: afternoon},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}},
		// c2 is in use and has no card: listed first.
		Cards: []firmware.Card{{Key: key(1), ChildID: "c1", State: firmware.CardActive}, {Key: key(3), ChildID: "c3", State: firmware.CardActive}},
		Bookings: []firmware.Booking{
			{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: wk, Window: afternoon},
			{ID: "b2", ChildID: "c2", Type: firmware.Regular, Status: firmware.InUse, From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: wk, Window: afternoon},
		},
		Staff: []firmware.Staff{{ID: "s1", Name: "박선생", Key: key(90)}},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, firmware.KST)
	var e firmware.Enroller
	var out []struct {
		name  string
		lines []string
	}
	show := func(name string, s firmware.Step, done bool) {
		t.Helper()
		if len(s.Screen) == 0 || s.Done != done || s.Bind != nil {
			t.Fatalf("enrolment flow, %s: step %+v, want a screen with Done %v and nothing to bind", name, s, done)
		}
		out = append(out, struct {
			name  string
			lines []string
		}{name, s.Screen})
	}
	tap := func(card string) firmware.Step {
		s, handled := e.Tap(r, card, now)
		if !handled {
			t.Fatalf("enrolment flow: card %s not taken by enrolment", card)
		}
		return s
	}
	staff := key(90)
	show("enrol_list", tap(staff), false)                               // staff card: the list, first child
	show("enrol_pick_first", tap(key(50)), false)                       // a card before a child is chosen
	show("enrol_next", e.Press(r, firmware.ButtonNext, now), false)     // Next: the next child
	show("enrol_choose", e.Press(r, firmware.ButtonChoose, now), false) // Choose: waiting for the card
	show("enrol_cancel", tap(staff), true)                              // staff card again: cancelled
	tap(staff)                                                          // open again, then silence
	show("enrol_timeout", e.Tick(now.Add(2*time.Minute)), true)         // past the 60 s default: timed out
	return out
}

// The enrolment flow's screens fit the panel and are the pictures in
// docs/screens/enrol_*.png.
func TestEnrolScreens(t *testing.T) {
	face, err := font.Galmuri11()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range enrolScreens(t) {
		checkScreen(t, face, s.name, s.lines, s.name)
	}
	// The screens after the card: literal until firmware words them.
	for _, s := range []struct {
		name  string
		lines []string
	}{
		{"enrol_done", firmware.BoundFeedback("김민준", true).Lines},
		{"enrol_refused", firmware.RefusedFeedback(firmware.RefuseCardOfOther).Lines},
		{"reader_fault", firmware.ReaderFaultFeedback(firmware.Korean).Lines},
		{"reader_back", firmware.ReaderBackFeedback(firmware.Korean).Lines},
	} {
		checkScreen(t, face, s.name, s.lines, s.name)
	}
}

// checkScreen renders lines and checks that they fit, that every
// character has a glyph (none drawn as the '?' stand-in), and that enough
// pixels are lit; with picture set, that the frame is
// docs/screens/<picture>.png (rewritten by -update).
func checkScreen(t *testing.T, face *font.Face, name string, lines []string, picture string) {
	t.Helper()
	for _, l := range lines {
		for _, r := range l {
			if face.Glyph(r) == nil {
				t.Errorf("%s: no glyph for %q in %q: add it to hal/display/font/cmd/mkfont's keep and regenerate", name, r, l)
			}
		}
	}
	img, err := Render(face, lines)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
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
		t.Errorf("%s: only %d pixels lit", name, lit)
	}
	if picture == "" {
		return
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, img, 3, oled); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "screens", picture+".png")
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
		t.Errorf("%s: the screen no longer matches %s (go test ./hal/display -update, and look at it)", name, path)
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
