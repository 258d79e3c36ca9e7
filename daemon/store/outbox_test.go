package store

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox's depth, kept as a count so that it is read without walking
// the events, is the number of events the bucket holds through taps, acks
// and reopening; a store written by a version that does not keep the
// count (the count no longer matching) is counted again.
func TestOutboxDepthKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s := open(t, path)
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := kst("2026-11-23 13:00:00")
	acked := uint64(0)
	check := func(when string) {
		t.Helper()
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		o, err := s.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		var keys int
		s.db.View(func(tx *bolt.Tx) error { keys = tx.Bucket(bEvents).Stats().KeyN; return nil })
		if o.Depth != keys {
			t.Fatalf("%s: depth %d, the bucket holds %d", when, o.Depth, keys)
		}
	}
	for i := range 300 {
		now = now.Add(time.Minute)
		if _, _, err := s.Tap(TapRequest{At: stamp(now), CardKey: ck(byte(1 + rng.IntN(4)))}); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(10) == 0 {
			last := s.seq
			acked = max(acked, uint64(rng.Int64N(int64(last)+1)))
			if _, err := s.Ack(acked); err != nil {
				t.Fatal(err)
			}
		}
		if i%25 == 0 {
			check("taps and acks")
		}
	}
	check("the end")
	// An earlier version appends and acknowledges without keeping the
	// count: here, an event deleted behind the count's back.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bEvents).Cursor().First()
		return tx.Bucket(bEvents).Delete(k)
	}); err != nil {
		t.Fatal(err)
	}
	check("an event deleted by an earlier version")
	s.Close()
	s = open(t, path)
	check("reopened")
	if _, _, err := s.Tap(TapRequest{At: stamp(now.Add(time.Minute)), CardKey: ck(1)}); err != nil {
		t.Fatal(err)
	}
	check("a tap after reopening")
}
