package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"kiumtap/firmware"
)

// crash stops s as a power cut would: the applier is gone first, so taps
// made after stopApplier stay in the journal only, and nothing is flushed.
func stopApplier(s *Store) {
	close(s.stop)
	<-s.stopped
}

func crash(s *Store) {
	s.jr.close()
	s.db.Close()
}

// Taps that only reached the journal are in bbolt after the next Open, once
// each, with their presence; a torn record after them is dropped; records
// left from before the journal started again are not applied twice.
func TestJournalReplay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	tap := func(s *Store, at string, card byte) Event {
		t.Helper()
		ev, _, err := s.Tap(TapRequest{At: stamp(kst(at)), CardKey: ck(card)})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	tap(s, "2026-11-23 14:00:00", 1)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	stopApplier(s)
	tap(s, "2026-11-23 14:01:00", 2)
	tap(s, "2026-11-23 17:00:00", 1)
	// A torn record: a header promising more than was written.
	if _, err := s.jr.f.WriteAt([]byte{200, 0, 0, 0, 1, 2, 3, 4, 1, 1}, s.jr.off); err != nil {
		t.Fatal(err)
	}
	crash(s)

	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, "check_in c1", "check_in c2", "check_out c1")
	// The journal starts again at 0 and holds seq 4 only; seqs 1..3 after
	// it are stale and must not come back.
	stopApplier(s)
	tap(s, "2026-11-23 18:00:00", 2)
	crash(s)

	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkLog(t, s, "check_in c1", "check_in c2", "check_out c1", "check_out c2")
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got, want := mustPresence(t, s), replay(t, s); !samePresence(got, want) {
		t.Fatalf("presence %+v, the log says %+v", got, want)
	}
}

func checkLog(t *testing.T, s *Store, want ...string) {
	t.Helper()
	var got []string
	if err := s.Events(0, func(ev Event) bool {
		got = append(got, string(ev.Outcome)+" "+ev.ChildID)
		if ev.Seq != uint64(len(got)) {
			t.Fatalf("event %d has sequence %d", len(got), ev.Seq)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("log %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("log %q, want %q", got, want)
		}
	}
}

func mustPresence(t *testing.T, s *Store) map[string]firmware.Presence {
	t.Helper()
	p, err := s.Presence()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Reads see a journaled tap before bbolt has it, and a read-only store
// (kiumctl after a crash of kiumtapd) sees it too, without applying it.
func TestPendingVisible(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
	stopApplier(s)
	if _, _, err := s.Tap(TapRequest{At: stamp(kst("2026-11-23 14:00:00")), CardKey: ck(1)}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, "check_in c1")
	if o, err := s.Outbox(); err != nil || o.Depth != 1 || o.LastSeq != 1 {
		t.Fatalf("outbox %+v, %v", o, err)
	}
	if p := mustPresence(t, s); !p["c1"].Inside {
		t.Fatalf("presence %+v", p)
	}
	crash(s)
	ro, err := Open(Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, ro, "check_in c1")
	ro.Close()
	fi, _ := os.Stat(journalOf(t, path))
	if fi == nil || fi.Size() == 0 {
		t.Fatal("the read-only open lost the journal")
	}
}

func FuzzReadJournal(f *testing.F) {
	b := &batch{}
	ev := sampleEvent()
	b.events, b.raw = []Event{ev}, [][]byte{mustMarshal(f, ev)}
	b.presence = []childPresence{{"c1", []byte(`{"day":"2026-11-23","inside":true}`)}}
	p := b.encode()
	rec := func(p []byte) []byte {
		r := make([]byte, recordHeader, recordHeader+len(p))
		putHeader(r, p)
		return append(r, p...)
	}
	f.Add(rec(p))
	f.Add(append(rec(p), rec(p)...))
	bev := bindingEvent()
	bb := &batch{events: []Event{bev}, raw: [][]byte{mustMarshal(f, bev)},
		bindings: []localBinding{{bev.Seq, []byte(`{"child":"c1","old_card":"` + ck(1) + `","new_card":"` + ck(50) + `","by":"s1","flow":"device","at":"2026-11-23T06:02:00Z"}`)}}}
	f.Add(rec(bb.encode()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range readRecords(data) {
			if len(b.events) == 0 || len(b.raw) != len(b.events) {
				t.Fatalf("a batch of %d events, %d encodings", len(b.events), len(b.raw))
			}
			again, err := decodeBatch(b.encode())
			if err != nil || again.last() != b.last() {
				t.Fatalf("re-encoding: %v", err)
			}
		}
	})
}

// A journal that grew while bbolt could not keep up (a full disk) is given
// back once Open has applied it.
func TestJournalShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-0001", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
	stopApplier(s)
	now := kst("2026-11-23 14:00:00")
	const n = 1500
	for i := range n {
		if _, _, err := s.Tap(TapRequest{At: stamp(now.Add(time.Duration(i) * time.Minute)), CardKey: ck(byte(1 + i%4)), UID: make([]byte, 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if s.jr.size <= 4*journalChunk {
		t.Fatalf("the journal grew to %d bytes only", s.jr.size)
	}
	crash(s)
	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Replayed() != n {
		t.Fatalf("%d taps replayed, want %d", s.Replayed(), n)
	}
	fi, err := os.Stat(journalOf(t, path))
	if err != nil || fi.Size() != journalChunk {
		t.Fatalf("journal of %v bytes (%v) after Open, want %d", fi.Size(), err, journalChunk)
	}
	if o, _ := s.Outbox(); o.Depth != n {
		t.Fatalf("outbox of %d, want %d", o.Depth, n)
	}
}

func journalOf(t *testing.T, path string) string {
	m, _ := filepath.Glob(path + ".*.journal")
	if len(m) != 1 {
		t.Fatalf("journals beside %s: %v", path, m)
	}
	return m[0]
}

// A store made anew beside an old journal (the old database moved aside)
// does not take up the old journal's taps.
func TestNewStoreIgnoresOldJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
	stopApplier(s)
	s.Tap(TapRequest{At: stamp(kst("2026-11-23 14:00:00")), CardKey: ck(1)})
	crash(s)
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if o, _ := s.Outbox(); o.Depth != 0 || s.Replayed() != 0 {
		t.Fatalf("the new store took up %d old taps", o.Depth)
	}
}
