package terminal

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

type wallClock struct{}

func (wallClock) Stamp() store.Stamp { return store.Stamp{Time: time.Now(), Synced: true} }

// BenchmarkTap measures a tap end to end on the timed emulator: from the
// REQA that finds the card (the first one sent after it is placed) to the
// feedback, through anticollision, SELECT, the decision and the store's
// fsync. Each op places a card at a random moment and waits for its
// feedback.
func BenchmarkTap(b *testing.B) {
	b.Run("emulator=timed", func(b *testing.B) {
		var probe rc522emu.REQAProbe
		chip := rc522emu.New(rc522emu.Options{Timed: true, OnFrame: probe.OnFrame})
		defer chip.Close()
		dev, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(store.Options{Path: filepath.Join(benchDir(b), "bench.db"), DeviceID: "T-BENCH"})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		r := roster()
		now := time.Now()
		all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
		r.Centre.Terms[0].From, r.Centre.Terms[0].To = firmware.DateOf(now).AddDays(-1), firmware.DateOf(now).AddDays(1)
		r.Centre.Terms[0].Hours = firmware.Window{Start: 0, End: 24 * 60}
		r.Bookings[0].From, r.Bookings[0].To, r.Bookings[0].Weekdays = r.Centre.Terms[0].From, r.Centre.Terms[0].To, all
		if err := st.ApplyRoster(r, now); err != nil {
			b.Fatal(err)
		}
		shown := make(chan time.Time, 16)
		term, err := New(Options{Store: st, Clock: wallClock{}, Key: key, Show: func(firmware.Feedback) { shown <- time.Now() }})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		events := make(chan rc522.Event, 16)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); dev.Run(ctx, events) }()
		go func() { defer wg.Done(); term.Run(ctx, events) }()
		defer func() { cancel(); wg.Wait() }()

		card := rc522emu.NewCard([]byte{1, 2, 3, 4}, rc522emu.CardOptions{})
		var lat []float64
		b.ResetTimer()
		for i := range b.N {
			time.Sleep(time.Duration(i*7919%45) * time.Millisecond)
			probe.Placed()
			chip.Place(card)
			var at time.Time
			select {
			case at = <-shown:
			case <-time.After(5 * time.Second):
				b.Fatal("no feedback within 5 s")
			}
			lat = append(lat, float64(at.Sub(probe.First()))/float64(time.Millisecond))
			if testing.Verbose() && lat[len(lat)-1] > 8 {
				b.Logf("slow tap %.1f ms", lat[len(lat)-1])
			}
			chip.Remove(card)
			time.Sleep(300 * time.Millisecond) // until it is seen leaving
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-ms")
	})
}

// benchDir is where the benchmark's store lives: KIUMTAP_BENCH_DIR, to
// compare disks, or a temporary directory.
func benchDir(b *testing.B) string {
	if d := os.Getenv("KIUMTAP_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "bench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}
