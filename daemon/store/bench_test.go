package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kiumtap/firmware"
)

// fill appends n events quickly (big transactions, no fsync), as a
// terminal offline for weeks would have accumulated them.
func fill(b *testing.B, s *Store, n int) {
	now := kst("2026-11-23 13:00:00")
	for done := 0; done < n; {
		batch := min(n-done, 20_000)
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := range batch {
				at := now.Add(time.Duration(done+i) * time.Second)
				dec := firmware.Decision{Outcome: firmware.CheckIn, Reason: firmware.ReasonArrival, ChildID: fmt.Sprintf("c%d", 1+(done+i)%3)}
				b, err := s.newBatch(stamp(at), 1, nil, &tapped{dec, ck(byte(1 + (done+i)%3)), nil}, func(string) firmware.Presence { return firmware.Presence{} })
				if err != nil {
					return err
				}
				if err := b.apply(tx); err != nil {
					return err
				}
				s.seq = b.last()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		done += batch
	}
}

// BenchmarkTapAppend measures a tap's decision and durable append (fsync
// on) with 1k or 1M events already waiting in the outbox: p99-ms of a tap,
// and bytes/event of the store file.
func BenchmarkTapAppend(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{{"outbox=1k", 1_000}, {"outbox=1M", 1_000_000}} {
		b.Run(tc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			s, err := Open(Options{Path: path, DeviceID: "T-BENCH"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
				b.Fatal(err)
			}
			fill(b, s, tc.n)
			now := kst("2026-12-01 14:00:00")
			lat := make([]float64, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				now = now.Add(61 * time.Second)
				start := time.Now()
				if _, _, err := s.Tap(TapRequest{At: stamp(now), CardKey: ck(byte(1 + i%3))}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, float64(time.Since(start))/float64(time.Millisecond))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-ms")
			size, _ := s.Size()
			o, _ := s.Outbox()
			b.ReportMetric(float64(size)/float64(o.Depth), "bytes/event")
		})
	}
}
