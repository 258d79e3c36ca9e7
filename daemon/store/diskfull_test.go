package store

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A store on a full disk refuses taps with ErrDiskFull, loses nothing it
// already holds, and takes taps again once there is room.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (make test runs as root in CI)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 256<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-FULL"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	now := kst("2026-11-23 13:00:00")
	var stored uint64
	refusals := 0
	// Tap until the disk has refused twice: the journal takes taps while it
	// has room, and room comes back each time bbolt catches up, so refusals
	// and accepted taps may alternate; every accepted one must stay.
	for i := 0; refusals < 2; i++ {
		if i > 200_000 {
			t.Fatal("the disk never filled")
		}
		now = now.Add(time.Minute)
		ev, _, err := s.Tap(TapRequest{At: stamp(now), CardKey: ck(byte(1 + i%4)), UID: make([]byte, 200)})
		switch {
		case errors.Is(err, ErrDiskFull):
			refusals++
		case err != nil:
			t.Fatalf("tap %d: %v", i, err)
		case ev.Seq != stored+1:
			t.Fatalf("tap %d: sequence %d after %d", i, ev.Seq, stored)
		default:
			stored = ev.Seq
		}
	}
	// Still readable, nothing lost.
	var n uint64
	if err := s.Events(0, func(ev Event) bool { n++; return ev.Seq == n }); err != nil || n != stored {
		t.Fatalf("after the disk filled: %d events readable (%v), %d stored", n, err, stored)
	}
	// Room again: taps go on with the next sequence.
	os.Remove(filler)
	ev, _, err := s.Tap(TapRequest{At: stamp(now.Add(time.Hour)), CardKey: ck(2)})
	if err != nil || ev.Seq != stored+1 {
		t.Fatalf("after freeing space: seq %d, %v; want %d", ev.Seq, err, stored+1)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("applying the journal once there is room: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
