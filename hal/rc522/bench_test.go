package rc522_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/devices/v3/mfrc522"

	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

var benchUIDs = map[int][]byte{4: uid4, 7: uid7, 10: uid10}

// readFunc reads the card once; the card stays in the field between calls.
type readFunc func() ([]byte, error)

func newReadFunc(tb testing.TB, driver string, chip *rc522emu.Chip, card *rc522emu.Card) readFunc {
	tb.Helper()
	switch driver {
	case "periph":
		dev, err := mfrc522.NewSPI(chip, chip.RST(), chip.IRQ())
		if err != nil {
			tb.Fatal(err)
		}
		// The stock driver switches the field off and on at every read, so
		// the card it left ACTIVE is IDLE again.
		return func() ([]byte, error) { return dev.ReadUID(time.Second) }
	case "kiumtap":
		dev, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		ctx := context.Background()
		return func() ([]byte, error) {
			// Ours halts the card, so present it anew: no SPI involved.
			chip.Remove(card)
			chip.Place(card)
			c, err := dev.Scan(ctx)
			return c.UID, err
		}
	}
	tb.Fatalf("no driver %q", driver)
	return nil
}

// spiPerRead counts SPI transactions per read on an instant emulator: the
// structural cost, free of the polling a driver does while it waits.
func spiPerRead(tb testing.TB, driver string, uid []byte) float64 {
	chip := rc522emu.New(rc522emu.Options{})
	card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
	chip.Place(card)
	read := newReadFunc(tb, driver, chip, card)
	const n = 20
	before := chip.Stats().SPITransactions
	for range n {
		if _, err := read(); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(chip.Stats().SPITransactions-before) / n
}

// BenchmarkReadUID reads a card present in the field: ns/op on the timed
// emulator (air time at 106 kbit/s, 10 µs per SPI transaction), spi-tx/op
// from the same read on the instant emulator, and spi-tx-timed/op, what the
// driver spent while waiting in timed mode.
func BenchmarkReadUID(b *testing.B) {
	for _, tc := range []struct {
		driver string
		uid    int
	}{
		{"periph", 4}, {"periph", 7},
		{"kiumtap", 4}, {"kiumtap", 7}, {"kiumtap", 10},
	} {
		b.Run(fmt.Sprintf("driver=%s/uid=%d", tc.driver, tc.uid), func(b *testing.B) {
			uid := benchUIDs[tc.uid]
			perRead := spiPerRead(b, tc.driver, uid)
			chip := rc522emu.New(rc522emu.Options{Timed: true})
			defer chip.Close()
			card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
			chip.Place(card)
			read := newReadFunc(b, tc.driver, chip, card)
			before := chip.Stats().SPITransactions
			b.ResetTimer()
			for range b.N {
				got, err := read()
				if err != nil || len(got) != tc.uid {
					b.Fatalf("read % X, %v", got, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(perRead, "spi-tx/op")
			b.ReportMetric(float64(chip.Stats().SPITransactions-before)/float64(b.N), "spi-tx-timed/op")
		})
	}
}

// BenchmarkIdle runs the reader loop with default options (IRQ pin, 45 ms
// poll) on the timed emulator. spi-tx/s is the SPI traffic of an empty
// field over two seconds; each op places a new card at a random moment of
// the poll cycle and waits for its Presented: detect-p99-ms is the 99th
// percentile of placed → Presented. Run with -benchtime=300x for a p99 of
// substance.
func BenchmarkIdle(b *testing.B) { benchIdle(b, true) }

// BenchmarkIdlePolling is BenchmarkIdle without the IRQ pin.
func BenchmarkIdlePolling(b *testing.B) { benchIdle(b, false) }

func benchIdle(b *testing.B, useIRQ bool) {
	chip := rc522emu.New(rc522emu.Options{Timed: true})
	defer chip.Close()
	var irq gpio.PinIn
	if useIRQ {
		irq = chip.IRQ()
	}
	dev, err := rc522.New(chip, chip.RST(), irq, rc522.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan rc522.Event, 16)
	done := make(chan error, 1)
	go func() { done <- dev.Run(ctx, events) }()
	defer func() { cancel(); <-done }()

	const idle = 2 * time.Second
	time.Sleep(100 * time.Millisecond) // past start-up
	tx0, t0 := chip.Stats().SPITransactions, time.Now()
	time.Sleep(idle)
	rate := float64(chip.Stats().SPITransactions-tx0) / time.Since(t0).Seconds()

	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(time.Duration(rng.Int64N(int64(45 * time.Millisecond))))
		uid := []byte{0x10, byte(i >> 16), byte(i >> 8), byte(i)}
		card := rc522emu.NewCard(uid, rc522emu.CardOptions{})
		start := time.Now()
		chip.Place(card)
		for ev := range events {
			if ev.Kind == rc522.Presented && string(ev.Card.UID) == string(uid) {
				break
			}
		}
		lat = append(lat, float64(time.Since(start))/float64(time.Millisecond))
		if testing.Verbose() && lat[len(lat)-1] > 52 {
			b.Logf("slow detect %.1f ms, stats %+v", lat[len(lat)-1], dev.Stats())
		}
		chip.Remove(card)
	}
	b.StopTimer()
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, int(float64(len(lat))*0.99))]
	if testing.Verbose() {
		b.Logf("detect ms: p50 %.1f p90 %.1f max %.1f", lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
	}
	b.ReportMetric(rate, "spi-tx/s")
	b.ReportMetric(p99, "detect-p99-ms")
}
