package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/internal/wait"
)

// Ping answers while the store does; a write to the database that does
// not return for StuckAfter (a disk that hangs) makes it fail, and the
// journal's lag shows the taps waiting meanwhile.
func TestPingAndJournalLag(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("a healthy store: %v", err)
	}
	if n, oldest := s.JournalLag(); n != 0 || !oldest.IsZero() {
		t.Fatalf("lag %d, %v with nothing pending", n, oldest)
	}
	// Hold bbolt's writer lock, as a write stuck in the kernel would: the
	// applier's next commit waits behind it.
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, _, err := s.Tap(TapRequest{At: stamp(kst("2026-11-23 14:00:00")), CardKey: ck(1)}); err != nil {
		t.Fatal(err)
	}
	n, oldest := s.JournalLag()
	if n != 1 || oldest.Before(before) {
		t.Fatalf("lag %d, %v: want the tap waiting", n, oldest)
	}
	wait.For(t, 5*time.Second, "the applier to start writing", func() bool {
		s.pmu.Lock()
		defer s.pmu.Unlock()
		return !s.writing.IsZero()
	})
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("a write just started is no hang: %v", err)
	}
	s.pmu.Lock()
	s.writing = s.writing.Add(-StuckAfter - time.Second) // as if it had hung that long
	s.pmu.Unlock()
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "the disk does not answer") {
		t.Fatalf("a hung write: %v", err)
	}
	tx.Rollback()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("after the write returned: %v", err)
	}
	if n, _ := s.JournalLag(); n != 0 {
		t.Fatalf("lag %d after Sync", n)
	}
}
