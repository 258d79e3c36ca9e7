package rc522_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

// A reader off its connector at start is an error for New, unless
// WaitForChip: then Run retries until it is plugged in, and says when it
// stops and starts answering; cards are read once it does. The same when
// it comes loose while running.
func TestUnpluggedReader(t *testing.T) {
	loose := rc522emu.New(rc522emu.Options{})
	defer loose.Close()
	loose.Unplug()
	if _, err := rc522.New(loose, loose.RST(), loose.IRQ(), rc522.Options{}); err == nil {
		t.Fatal("New accepted a reader that does not answer")
	}
	chip := rc522emu.New(rc522emu.Options{})
	defer chip.Close()
	chip.Unplug()
	changes := make(chan error, 16)
	dev, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{
		WaitForChip: true, RetryMax: 20 * time.Millisecond,
		PollInterval: 200 * time.Microsecond, PresenceInterval: 400 * time.Microsecond, HealthInterval: 5 * time.Millisecond,
		OnChange: func(err error) { changes <- err },
	})
	if err != nil {
		t.Fatalf("WaitForChip: %v", err)
	}
	if up, why := dev.Up(); up || why == nil {
		t.Fatalf("Up() = %v, %v for an unplugged reader", up, why)
	}
	events := make(chan rc522.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx, events) }()
	change := func(want bool) {
		t.Helper()
		select {
		case err := <-changes:
			if (err == nil) != want {
				t.Fatalf("OnChange(%v), want up %v", err, want)
			}
			if up, _ := dev.Up(); up != want {
				t.Fatalf("Up() = %v after OnChange", up)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no OnChange to up %v", want)
		}
	}
	// Run retries: wait for a few attempts (a counter the driver grows on
	// its own; polled, with a deadline).
	for deadline := time.Now().Add(10 * time.Second); dev.Stats().ResetFailures < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d resets tried", dev.Stats().ResetFailures)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		}
	}
	chip.Plug()
	change(true)
	read := func(uid []byte) {
		t.Helper()
		card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
		chip.Place(card)
		for _, want := range []rc522.EventKind{rc522.Presented, rc522.Removed} {
			select {
			case ev := <-events:
				if ev.Kind != want {
					t.Fatalf("%s, want %s", ev.Kind, want)
				}
				chip.Remove(card)
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s", want)
			}
		}
	}
	read(uid4)

	chip.Unplug()
	change(false)
	if up, why := dev.Up(); up || why == nil {
		t.Fatalf("Up() = %v, %v while unplugged", up, why)
	}
	chip.Plug()
	change(true)
	// Another card: the same one put back at once would meet the reader's
	// first look after the reset, which merges it ("A reset is no tap").
	read(uid7)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
