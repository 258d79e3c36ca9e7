package store

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"kiumtap/firmware"
)

func bind(t *testing.T, s *Store, at, child string, card byte) (Event, firmware.BindingChange, error) {
	t.Helper()
	return s.Bind(BindRequest{At: stamp(kst(at)), Child: child, CardKey: ck(card), UID: []byte{card, 0xA0, 0xB0, 0xC0}, By: "s1", Flow: firmware.FlowDevice})
}

func decideNow(t *testing.T, s *Store, at string, card byte) firmware.Decision {
	t.Helper()
	_, dec, err := s.Tap(TapRequest{At: stamp(kst(at)), CardKey: ck(card)})
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

// A binding is an event in the outbox and takes effect at once; it stays
// on top of every roster from the portal that has not taken it in, across
// reopening and a crash, and gives way to one that has.
func TestBindOverlay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s, err := Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	ev, ch, err := bind(t, s, "2026-11-23 14:00:00", "c1", 50)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 1 || ev.Outcome != firmware.CardBound || ev.Reason != "device" || ev.CardKey != ck(50) || ev.OldCard != ck(1) || ev.By != "s1" || len(ev.UID) != 4 || ev.ChildID != "c1" {
		t.Fatalf("binding event %+v", ev)
	}
	if ch.OldCard != ck(1) || ch.NewCard != ck(50) {
		t.Fatalf("change %+v", ch)
	}
	// Q20: the lost card stops working at once; the spare works.
	if d := decideNow(t, s, "2026-11-23 14:01:00", 1); d.Outcome != firmware.ReplacedCard {
		t.Fatalf("old card: %+v", d)
	}
	if d := decideNow(t, s, "2026-11-23 14:02:00", 50); d.Outcome != firmware.CheckIn {
		t.Fatalf("new card: %+v", d)
	}
	if p, _, _ := s.PortalRoster(); p.CardByKey(ck(50)) != nil {
		t.Fatal("the portal's roster was changed")
	}
	// Refused by the rules: nothing recorded.
	var ref *firmware.Refused
	if _, _, err := bind(t, s, "2026-11-23 14:03:00", "c2", 50); !errors.As(err, &ref) || ref.Reason != firmware.RefuseCardOfOther {
		t.Fatalf("another child's card: %v", err)
	}
	if o, _ := s.Outbox(); o.LastSeq != 3 {
		t.Fatalf("a refusal was recorded: last seq %d", o.LastSeq)
	}
	// A new revision that does not know of it: the binding stays on top.
	if err := s.ApplyRoster(testRoster(2), kst("2026-11-23 15:00:00")); err != nil {
		t.Fatal(err)
	}
	activeIs := func(s *Store, card byte, state firmware.CardState) {
		t.Helper()
		r, _, _ := s.Roster()
		if c := r.CardByKey(ck(card)); c == nil || c.ChildID != "c1" || c.State != state {
			t.Fatalf("card %d: %+v, want %s", card, c, state)
		}
	}
	activeIs(s, 50, firmware.CardActive)
	activeIs(s, 1, firmware.CardReplaced)
	// Killed with a second binding only in the journal.
	stopApplier(s)
	if _, _, err := bind(t, s, "2026-11-23 15:10:00", "c1", 51); err != nil {
		t.Fatal(err)
	}
	crash(s)
	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	activeIs(s, 51, firmware.CardActive)
	activeIs(s, 50, firmware.CardReplaced)
	if seqs, chs := s.Bindings(); len(seqs) != 2 || seqs[1] != 4 || chs[1].NewCard != ck(51) {
		t.Fatalf("bindings %v %+v", seqs, chs)
	}
	// The portal took the first in, and gave the second card to another
	// centre first (a conflict): its verdict wins.
	r3 := testRoster(3)
	r3.Cards = append(r3.Cards, firmware.Card{Key: ck(50), ChildID: "c1", State: firmware.CardActive})
	r3.Applied = map[string]uint64{firmware.AppliedKey("T-0001", s.LogID()): 1}
	if err := s.ApplyRoster(r3, kst("2026-11-23 16:00:00")); err != nil {
		t.Fatal(err)
	}
	activeIs(s, 51, firmware.CardActive) // seq 4 not taken in yet: still on top
	r4 := testRoster(4)
	r4.Cards = append(r4.Cards, firmware.Card{Key: ck(50), ChildID: "c1", State: firmware.CardReplaced}, firmware.Card{Key: ck(51), ChildID: "c1", State: firmware.CardConflict})
	r4.Applied = map[string]uint64{firmware.AppliedKey("T-0001", s.LogID()): 4}
	if err := s.ApplyRoster(r4, kst("2026-11-23 16:10:00")); err != nil {
		t.Fatal(err)
	}
	activeIs(s, 51, firmware.CardConflict)
	if d := decideNow(t, s, "2026-11-23 16:11:00", 51); d.Outcome != firmware.ReplacedCard || d.Reason != firmware.ReasonCardConflict {
		t.Fatalf("the loser's next tap: %+v", d)
	}
	s.Close()
	// A read-only reader (kiumctl) sees the same.
	ro, err := Open(Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	activeIs(ro, 51, firmware.CardConflict)
}

// A store of schema 1 (before enrolment) is migrated on open.
func TestMigrateBindings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s := open(t, path)
	if err := s.write(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bBindings, bCommands} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return putU64(tx.Bucket(bMeta), kSchema, 1)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Path: path, ReadOnly: true}); err == nil {
		t.Fatal("a read-only open of schema 1 should ask for kiumtapd to migrate it")
	}
	s = open(t, path)
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bind(t, s, "2026-11-23 14:00:00", "c2", 60); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommandOnce("cmd-1", kst("2026-11-23 15:00:00"), kst("2026-11-23 14:00:00")); err != nil {
		t.Fatalf("the commands of schema 3 after migrating: %v", err)
	}
}
