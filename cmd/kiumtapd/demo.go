package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"kiumtap/daemon/config"
	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

var demoKey = []byte("kiumtap-demo-centre-key!")

// The demo's cards.
var (
	minjunCard    = []byte{0xDE, 0xAD, 0xBE, 0xEF}
	minjunOldCard = []byte{0x04, 0x11, 0x22, 0x33}
	seoyeonCard   = []byte{0x04, 0x6A, 0x2B, 0x5C, 0x1D, 0x80, 0x41}
	jihoCard      = []byte{0x05, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90}
	haeunCard     = []byte{0xCA, 0xFE, 0xBA, 0xBE}
	strangerCard  = []byte{0x0B, 0xAD, 0xF0, 0x0D}
)

// demoConfig makes a configuration and a roster for today: 김민준 and 이서연
// in use every day, 박지호 only scheduled, 최하은 in use on every weekday but
// today's, and 김민준's old card replaced.
func demoConfig(dir string, now time.Time) (*config.Config, *firmware.Roster) {
	cfg := &config.Config{DeviceID: "demo-door", Store: filepath.Join(dir, "kiumtap.db"), Socket: filepath.Join(dir, "kiumtapd.sock"), CentreKey: hex.EncodeToString(demoKey), Language: "ko"}
	cfg.Reader.Kind = "emu"
	cfg.Decisions.DuplicateWindow = config.Duration(2 * time.Second)
	today := firmware.DateOf(now)
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	notToday := slices.DeleteFunc(slices.Clone(all), func(d time.Weekday) bool { return d == today.Weekday() })
	from, to := today.AddDays(-30), today.AddDays(60)
	day := firmware.Window{Start: 0, End: 24 * 60}
	key := func(uid []byte) string { return firmware.CardKey(demoKey, uid) }
	r := &firmware.Roster{
		Revision: 1, Issued: now,
		Centre: firmware.Centre{ID: "mangwon1", Name: "우리동네키움센터 망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: from, To: to, Hours: day, Weekdays: all},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}, {ID: "c4", Name: "최하은"}},
		Cards: []firmware.Card{
			{Key: key(minjunCard), ChildID: "c1", State: firmware.CardActive},
			{Key: key(minjunOldCard), ChildID: "c1", State: firmware.CardReplaced},
			{Key: key(seoyeonCard), ChildID: "c2", State: firmware.CardActive},
			{Key: key(jihoCard), ChildID: "c3", State: firmware.CardActive},
			{Key: key(haeunCard), ChildID: "c4", State: firmware.CardActive},
		},
		Bookings: []firmware.Booking{
			{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: day},
			{ID: "b2", ChildID: "c2", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: day},
			{ID: "b3", ChildID: "c3", Type: firmware.Regular, Status: firmware.Scheduled, From: from, To: to, Weekdays: all, Window: day},
			{ID: "b4", ChildID: "c4", Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: notToday, Window: day},
		},
	}
	return cfg, r
}

// playDemo puts cards on the emulated reader and checks what comes back, so
// that make run shows, and proves, the terminal's promises.
func playDemo(ctx context.Context, chip *rc522emu.Chip, dev *rc522.Dev, st *store.Store, taps <-chan tapped, removed <-chan rc522.Event, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	say := func(s string) { fmt.Fprintf(out, "\n— %s\n", s) }
	card := func(uid []byte) *rc522emu.Card { return rc522emu.NewCard(uid, rc522emu.CardOptions{}) }
	expect := func(want ...firmware.Outcome) error {
		for len(want) > 0 {
			select {
			case t := <-taps:
				i := slices.Index(want, t.dec.Outcome)
				if i < 0 {
					return fmt.Errorf("demo: tap decided %s (%s), want one of %v", t.dec.Outcome, t.dec.Reason, want)
				}
				want = slices.Delete(want, i, i+1)
			case <-ctx.Done():
				return fmt.Errorf("demo: no tap decided %v: %w", want, ctx.Err())
			}
		}
		return nil
	}
	gone := func(n int) error {
		for range n {
			select {
			case <-removed:
			case <-ctx.Done():
				return fmt.Errorf("demo: a card was not seen leaving: %w", ctx.Err())
			}
		}
		return nil
	}
	quiet := func(d time.Duration) error {
		select {
		case t := <-taps:
			return fmt.Errorf("demo: unexpected tap %s", t.dec.Outcome)
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tap := func(uid []byte, want ...firmware.Outcome) error {
		c := card(uid)
		chip.Place(c)
		if err := expect(want...); err != nil {
			return err
		}
		chip.Remove(c)
		return gone(1)
	}
	minjun := card(minjunCard)

	say("김민준 taps in")
	if err := tap(minjunCard, firmware.CheckIn); err != nil {
		return err
	}
	say("and again at once: within the duplicate window (2 s in the demo), not a departure")
	if err := tap(minjunCard, firmware.Duplicate); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	say("later he taps out, and leaves the card on the reader for 3 s: still one tap")
	chip.Place(minjun)
	if err := expect(firmware.CheckOut); err != nil {
		return err
	}
	if err := quiet(3 * time.Second); err != nil {
		return err
	}
	chip.Remove(minjun)
	if err := gone(1); err != nil {
		return err
	}
	say("이서연 (7-byte UID) and 박지호 (10-byte UID, booking only scheduled) tap together")
	a, b := card(seoyeonCard), card(jihoCard)
	chip.Place(a)
	chip.Place(b)
	if err := expect(firmware.CheckIn, firmware.NotInUse); err != nil {
		return err
	}
	chip.Remove(a)
	chip.Remove(b)
	if err := gone(2); err != nil {
		return err
	}
	say("최하은 taps on a day her booking does not use: 노데이터")
	if err := tap(haeunCard, firmware.NoData); err != nil {
		return err
	}
	say("a card nobody registered")
	if err := tap(strangerCard, firmware.UnknownCard); err != nil {
		return err
	}
	say("김민준's old card, replaced by the one he uses now")
	if err := tap(minjunOldCard, firmware.ReplacedCard); err != nil {
		return err
	}
	say("김민준 comes back; the reader chip locks up with his card on it and is reset through RST")
	chip.Place(minjun)
	if err := expect(firmware.CheckIn); err != nil {
		return err
	}
	chip.Wedge(rc522emu.WedgeStuckState)
	for dev.Stats().Recoveries == 0 {
		if err := quiet(50 * time.Millisecond); err != nil {
			return err
		}
	}
	if err := quiet(time.Second); err != nil { // no phantom second tap
		return err
	}
	chip.Remove(minjun)
	if err := gone(1); err != nil {
		return err
	}

	counts := map[firmware.Outcome]int{}
	st.Events(0, func(ev store.Event) bool { counts[ev.Outcome]++; return true })
	o, _ := st.Outbox()
	s := dev.Stats()
	fmt.Fprintf(out, "\ndemo done: %d events stored (outbox %d)", o.LastSeq, o.Depth)
	for _, k := range []firmware.Outcome{firmware.CheckIn, firmware.CheckOut, firmware.Duplicate, firmware.NoData, firmware.NotInUse, firmware.UnknownCard, firmware.ReplacedCard} {
		fmt.Fprintf(out, ", %s %d", k, counts[k])
	}
	fmt.Fprintf(out, "\nreader: %d frames, %d SPI transactions, %d collisions resolved, %d bad frames dropped, %d chip recoveries\n",
		s.Frames, s.SPITransactions, s.Collisions, s.BadFrames, s.Recoveries)
	return nil
}
