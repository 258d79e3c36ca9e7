package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

// playDemo puts cards on the emulated reader and checks the events that
// come back, so that make run shows, and proves, the reader's promises.
func playDemo(ctx context.Context, chip *rc522emu.Chip, dev *rc522.Dev, taps <-chan rc522.Event, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	say := func(s string) { fmt.Fprintf(out, "\n— %s\n", s) }
	expect := func(kind rc522.EventKind, cards ...*rc522emu.Card) error {
		want := map[string]bool{}
		for _, c := range cards {
			want[string(c.UID())] = true
		}
		for len(want) > 0 {
			select {
			case ev := <-taps:
				if ev.Kind != kind || !want[string(ev.Card.UID)] {
					return fmt.Errorf("demo: got %s % X, want %s of %v", ev.Kind, ev.Card.UID, kind, cards)
				}
				delete(want, string(ev.Card.UID))
			case <-ctx.Done():
				return fmt.Errorf("demo: no %s of %v: %w", kind, cards, ctx.Err())
			}
		}
		return nil
	}
	quiet := func(d time.Duration) error {
		select {
		case ev := <-taps:
			return fmt.Errorf("demo: unexpected %s % X", ev.Kind, ev.Card.UID)
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	minjun := rc522emu.NewCard([]byte{0xDE, 0xAD, 0xBE, 0xEF}, rc522emu.CardOptions{})
	seoyeon := rc522emu.NewCard([]byte{0x04, 0x6A, 0x2B, 0x5C, 0x1D, 0x80, 0x41}, rc522emu.CardOptions{})
	jiho := rc522emu.NewCard([]byte{0x05, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90}, rc522emu.CardOptions{})

	say("a child taps a 4-byte card")
	chip.Place(minjun)
	if err := expect(rc522.Presented, minjun); err != nil {
		return err
	}
	say("and leaves it on the reader for 3 s: still one presentation")
	if err := quiet(3 * time.Second); err != nil {
		return err
	}
	chip.Remove(minjun)
	if err := expect(rc522.Removed, minjun); err != nil {
		return err
	}
	say("two children tap at once (7-byte and 10-byte UIDs): anticollision reads both")
	chip.Place(seoyeon)
	chip.Place(jiho)
	if err := expect(rc522.Presented, seoyeon, jiho); err != nil {
		return err
	}
	chip.Remove(seoyeon)
	chip.Remove(jiho)
	if err := expect(rc522.Removed, seoyeon, jiho); err != nil {
		return err
	}
	say("the same card comes back: a second presentation")
	chip.Place(minjun)
	if err := expect(rc522.Presented, minjun); err != nil {
		return err
	}
	say("the reader chip locks up with the card on it; the driver resets it through RST")
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
	if err := expect(rc522.Removed, minjun); err != nil {
		return err
	}
	chip.Place(seoyeon)
	if err := expect(rc522.Presented, seoyeon); err != nil {
		return err
	}
	chip.Remove(seoyeon)
	if err := expect(rc522.Removed, seoyeon); err != nil {
		return err
	}
	s := dev.Stats()
	fmt.Fprintf(out, "\ndemo done: %d frames on air, %d SPI transactions, %d collisions resolved, %d bad frames dropped, %d chip recoveries\n",
		s.Frames, s.SPITransactions, s.Collisions, s.BadFrames, s.Recoveries)
	return nil
}
