package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"kiumtap/firmware"
)

// open opens a store in dir and checks its consistency when the test ends
// (bbolt's own btesting pattern).
func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(Options{Path: path, DeviceID: "T-0001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			t.Errorf("consistency: %v", err)
		}
		s.Close()
	})
	return s
}

var testKey = []byte("centre-key")

func ck(n byte) string { return firmware.CardKey(testKey, []byte{n}) }

func kst(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, firmware.KST)
	if err != nil {
		panic(err)
	}
	return t
}

// testRoster: children c1..c3; c1 and c2 book every weekday 14:00–18:00 in
// the autumn term; c3 is only scheduled.
func testRoster(rev uint64) *firmware.Roster {
	wk := []time.Weekday{1, 2, 3, 4, 5}
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	return &firmware.Roster{
		Revision: rev,
		Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: mk("2026-09-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 13 * 60, End: 19 * 60}},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}},
		Cards: []firmware.Card{
			{Key: ck(1), ChildID: "c1", State: firmware.CardActive},
			{Key: ck(2), ChildID: "c2", State: firmware.CardActive},
			{Key: ck(3), ChildID: "c3", State: firmware.CardActive},
			{Key: ck(9), ChildID: "c1", State: firmware.CardReplaced},
		},
		Bookings: []firmware.Booking{
			{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: wk, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}},
			{ID: "b2", ChildID: "c2", Type: firmware.Regular, Status: firmware.InUse, From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: wk, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}},
			{ID: "b3", ChildID: "c3", Type: firmware.Regular, Status: firmware.Scheduled, From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: wk, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}},
		},
	}
}

func stamp(t time.Time) Stamp {
	return Stamp{Time: t, Synced: true, BootID: [16]byte{1}, Mono: time.Since(t)}
}

func TestTapRecordsEventAndPresence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s := open(t, path)
	if _, _, err := s.Tap(TapRequest{At: stamp(kst("2026-11-23 15:00:00")), CardKey: ck(1)}); !errors.Is(err, ErrNoRoster) {
		t.Fatalf("tap without roster: %v", err)
	}
	if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at   string
		card byte
		want firmware.Outcome
	}{
		{"2026-11-23 15:00:00", 1, firmware.CheckIn},
		{"2026-11-23 15:00:30", 1, firmware.Duplicate},
		{"2026-11-23 15:10:00", 3, firmware.NotInUse},
		{"2026-11-23 15:11:00", 7, firmware.UnknownCard},
		{"2026-11-23 15:12:00", 9, firmware.ReplacedCard},
		{"2026-11-23 17:00:00", 1, firmware.CheckOut},
	}
	for i, st := range steps {
		ev, dec, err := s.Tap(TapRequest{At: stamp(kst(st.at)), CardKey: ck(st.card), UID: []byte{st.card}})
		if err != nil {
			t.Fatal(err)
		}
		if dec.Outcome != st.want || ev.Outcome != st.want || ev.Seq != uint64(i+1) {
			t.Fatalf("tap %d: %s seq %d, want %s seq %d", i, dec.Outcome, ev.Seq, st.want, i+1)
		}
	}
	p, _ := s.Presence()
	if p["c1"].Inside || !p["c1"].Since.Equal(kst("2026-11-23 17:00:00")) {
		t.Errorf("c1 presence %+v", p["c1"])
	}
	// Reopen: the roster, the events and the sequence survive.
	s.Close()
	s2, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Boots() != 2 || s2.DeviceID() != "T-0001" {
		t.Errorf("boots %d device %q", s2.Boots(), s2.DeviceID())
	}
	ev, _, err := s2.Tap(TapRequest{At: stamp(kst("2026-11-23 17:30:00")), CardKey: ck(2)})
	if err != nil || ev.Seq != uint64(len(steps)+1) || ev.Outcome != firmware.CheckIn {
		t.Fatalf("after reopen: %+v %v", ev, err)
	}
	var n int
	s2.Events(0, func(e Event) bool { n++; return true })
	if n != len(steps)+1 {
		t.Errorf("%d events stored", n)
	}
	o, _ := s2.Outbox()
	if o.Depth != n || !o.Oldest.Equal(kst("2026-11-23 15:00:00")) {
		t.Errorf("outbox %+v", o)
	}
}

func TestCloseDay(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
	s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
	s.Tap(TapRequest{At: stamp(kst("2026-11-23 15:00:00")), CardKey: ck(1)})
	evs, err := s.CloseDay(stamp(kst("2026-11-23 19:30:00")), firmware.Settings{})
	if err != nil || len(evs) != 1 || evs[0].Outcome != firmware.AutoCheckOut || evs[0].ChildID != "c1" {
		t.Fatalf("CloseDay: %+v %v", evs, err)
	}
	if p, _ := s.Presence(); p["c1"].Inside {
		t.Error("c1 still inside after auto_check_out")
	}
	if evs, _ := s.CloseDay(stamp(kst("2026-11-23 19:40:00")), firmware.Settings{}); len(evs) != 0 {
		t.Errorf("second CloseDay: %+v", evs)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	// Held by another process (here: another open of the same file).
	path := filepath.Join(dir, "held.db")
	s := open(t, path)
	_ = s
	if _, err := Open(Options{Path: path, LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "is kiumtapd") {
		t.Errorf("second open: %v", err)
	}
	// Not a database at all.
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a bbolt file\n", 1000)), 0o600)
	if _, err := Open(Options{Path: junk, DeviceID: "x"}); !errors.Is(err, ErrForeign) {
		t.Errorf("junk file: %v", err)
	}
	// Some other program's bbolt file.
	other := filepath.Join(dir, "other.db")
	db, _ := bolt.Open(other, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("wallet")); return err })
	db.Close()
	if _, err := Open(Options{Path: other, DeviceID: "x"}); !errors.Is(err, ErrForeign) {
		t.Errorf("foreign bbolt: %v", err)
	}
	// A newer schema.
	newer := filepath.Join(dir, "newer.db")
	s2, _ := Open(Options{Path: newer, DeviceID: "x"})
	s2.db.Update(func(tx *bolt.Tx) error { return putU64(tx.Bucket(bMeta), kSchema, SchemaVersion+1) })
	s2.Close()
	if _, err := Open(Options{Path: newer}); err == nil || !strings.Contains(err.Error(), "newer kiumtap") {
		t.Errorf("newer schema: %v", err)
	}
	// Another device's store.
	if _, err := Open(Options{Path: filepath.Join(dir, "held.db"), DeviceID: "T-9999", LockTimeout: 10 * time.Millisecond}); err == nil {
		t.Error("opened a held store")
	}
	mine := filepath.Join(dir, "mine.db")
	s3, _ := Open(Options{Path: mine, DeviceID: "T-0001"})
	s3.Close()
	if _, err := Open(Options{Path: mine, DeviceID: "T-0002"}); err == nil || !strings.Contains(err.Error(), `belongs to device "T-0001"`) {
		t.Errorf("device mismatch: %v", err)
	}
	if _, err := Open(Options{Path: filepath.Join(dir, "new.db")}); err == nil {
		t.Error("created a store without a device ID")
	}
}

func TestRosterRejected(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
	r := testRoster(1)
	r.Bookings[0].To, _ = firmware.ParseDate("2026-01-01")
	if err := s.ApplyRoster(r, time.Now()); err == nil || !strings.Contains(err.Error(), "bookings[0]") {
		t.Errorf("impossible dates: %v", err)
	}
	if _, _, err := s.Roster(); !errors.Is(err, ErrNoRoster) {
		t.Error("a rejected roster became current")
	}
	for _, in := range []string{`{"revision": "7"}`, `{"revison": 7}`, `[]`, `{} {}`} {
		if _, err := DecodeRoster([]byte(in)); err == nil {
			t.Errorf("DecodeRoster(%s): no error", in)
		}
	}
}

// replay computes presence from the event log alone: the reference the
// stored presence must agree with.
func replay(t *testing.T, s *Store) map[string]firmware.Presence {
	out := map[string]firmware.Presence{}
	var last uint64
	err := s.Events(0, func(ev Event) bool {
		if ev.Seq != last+1 {
			t.Fatalf("sequence %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		if ev.ChildID == "" || ev.Outcome == firmware.UnknownCard {
			return true
		}
		out[ev.ChildID] = out[ev.ChildID].After(firmware.Decision{Outcome: ev.Outcome, ChildID: ev.ChildID}, ev.Time)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func samePresence(a, b map[string]firmware.Presence) bool {
	if len(a) != len(b) {
		return false
	}
	for k, p := range a {
		q := b[k]
		if p.Day != q.Day || p.Inside != q.Inside || !p.Since.Equal(q.Since) || !p.LastTap.Equal(q.LastTap) {
			return false
		}
	}
	return true
}

// No sequence of taps and clock steps (forward, backward, across midnight,
// closing the day) makes the stored presence disagree with the event log.
func TestPresenceAgreesWithEvents(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
		s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
		now := kst("2026-11-23 13:30:00")
		for range 200 {
			switch rng.IntN(10) {
			case 0:
				now = now.Add(-time.Duration(rng.IntN(600)) * time.Second) // the clock steps back
			case 1:
				now = now.Add(time.Duration(rng.IntN(20)) * time.Hour) // days pass
			case 2:
				if _, err := s.CloseDay(stamp(now), firmware.Settings{}); err != nil {
					t.Fatal(err)
				}
			default:
				now = now.Add(time.Duration(rng.IntN(180)) * time.Second)
				if _, _, err := s.Tap(TapRequest{At: stamp(now), CardKey: ck(byte(1 + rng.IntN(4)))}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Presence()
			if err != nil {
				t.Fatal(err)
			}
			if want := replay(t, s); !samePresence(got, want) {
				t.Fatalf("seed %d: presence %+v, events say %+v", seed, got, want)
			}
		}
	}
}

func jsonRoster() ([]byte, error) { return json.Marshal(testRoster(3)) }

// Acknowledged events leave the log, others stay; times of a boot without a
// set clock are corrected from the portal's, once.
func TestAckAndCorrectClock(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
	s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00"))
	boot := [16]byte{7}
	for i := range 6 {
		at := Stamp{Time: time.Unix(int64(i), 0), Synced: false, BootID: boot, Mono: time.Duration(i) * time.Second}
		if i >= 4 {
			at = stamp(kst("2026-11-23 15:00:00").Add(time.Duration(i) * time.Minute))
		}
		if _, _, err := s.Tap(TapRequest{At: at, CardKey: ck(5)}); err != nil {
			t.Fatal(err)
		}
	}
	if s.LogID() == "" {
		t.Fatal("no log ID")
	}
	n, err := s.Ack(3)
	if err != nil || n != 3 {
		t.Fatalf("Ack: %d, %v; want 3", n, err)
	}
	for _, through := range []uint64{2, 3, 0} {
		if n, _ := s.Ack(through); n != 0 {
			t.Fatalf("acking through %d again deleted %d", through, n)
		}
	}
	o, _ := s.Outbox()
	if o.Depth != 3 || o.First != 4 || o.LastSeq != 6 {
		t.Fatalf("outbox %+v", o)
	}
	base := kst("2026-11-23 14:00:00")
	if n, err := s.CorrectClock(boot, base); err != nil || n != 1 {
		t.Fatalf("CorrectClock: %d, %v; want 1 (seq 4)", n, err)
	}
	s.Events(0, func(ev Event) bool {
		if ev.Seq == 4 && (!ev.ClockCorrected || !ev.Time.Equal(base.Add(3*time.Second))) {
			t.Errorf("event 4: %+v", ev)
		}
		if ev.Seq > 4 && ev.ClockCorrected {
			t.Errorf("event %d had a set clock and was corrected", ev.Seq)
		}
		return true
	})
	if n, _ := s.CorrectClock(boot, base.Add(time.Hour)); n != 0 {
		t.Fatalf("corrected twice: %d", n)
	}
}

// The midnight rule: the first tap of a new day closes every child still
// inside on an earlier day (auto_check_out, day_rolled_over, no card) in
// the same record, before the tap is decided; the tapping child's new day
// starts from nothing. Before, the tap overwrote yesterday's presence and
// yesterday's session was never closed.
func TestMidnightClosesTheDayBefore(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "kiumtap.db"))
	r := testRoster(1)
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	r.Centre.Terms[0].Hours = firmware.Window{Start: 0, End: 24 * 60}
	for i := range r.Bookings {
		r.Bookings[i].Weekdays, r.Bookings[i].Window = all, firmware.Window{Start: 0, End: 24 * 60}
	}
	if err := s.ApplyRoster(r, kst("2026-11-24 08:00:00")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []byte{1, 2} {
		if _, d, err := s.Tap(TapRequest{At: stamp(kst("2026-11-24 23:58:00").Add(time.Duration(c) * time.Second)), CardKey: ck(c)}); err != nil || d.Outcome != firmware.CheckIn {
			t.Fatalf("tap %d: %+v %v", c, d, err)
		}
	}
	ev, d, err := s.Tap(TapRequest{At: stamp(kst("2026-11-25 00:01:00")), CardKey: ck(1)})
	if err != nil || d.Outcome != firmware.CheckIn || ev.Seq != 5 {
		t.Fatalf("the tap after midnight: %+v, event %d, %v; want a check_in, event 5 after two closings", d, ev.Seq, err)
	}
	var got []string
	s.Events(3, func(e Event) bool {
		got = append(got, fmt.Sprintf("%d %s %s %s card=%q", e.Seq, e.ChildID, e.Outcome, e.Reason, e.CardKey))
		return true
	})
	want := []string{
		`3 c1 auto_check_out day_rolled_over card=""`,
		`4 c2 auto_check_out day_rolled_over card=""`,
		fmt.Sprintf(`5 c1 check_in arrival card=%q`, ck(1)),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	pres, _ := s.Presence()
	if p := pres["c1"]; !p.Inside || p.Day.String() != "2026-11-25" {
		t.Errorf("c1 after midnight: %+v", p)
	}
	if p := pres["c2"]; p.Inside || p.Day.String() != "2026-11-24" {
		t.Errorf("c2, closed with its day: %+v", p)
	}
	// Later taps of the day close nothing more.
	if _, _, err := s.Tap(TapRequest{At: stamp(kst("2026-11-25 00:05:00")), CardKey: ck(2)}); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Outbox(); o.LastSeq != 6 {
		t.Fatalf("last sequence %d, want 6", o.LastSeq)
	}
}

// A signed command's ID is kept, durably, until the command expires: a
// command published again after the terminal restarted does not run again.
func TestCommandOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiumtap.db")
	s := open(t, path)
	now := kst("2026-11-23 15:00:00")
	for i, want := range []bool{true, false} {
		if first, err := s.CommandOnce("cmd-1", now.Add(5*time.Minute), now); err != nil || first != want {
			t.Fatalf("round %d: first %v, %v; want %v", i, first, err, want)
		}
	}
	s.Close()
	s = open(t, path)
	if first, _ := s.CommandOnce("cmd-1", now.Add(5*time.Minute), now.Add(time.Minute)); first {
		t.Fatal("after a restart the command ran again")
	}
	// Expired IDs are forgotten as new ones come.
	if first, _ := s.CommandOnce("cmd-2", now.Add(20*time.Minute), now.Add(10*time.Minute)); !first {
		t.Fatal("a new command refused")
	}
	n := 0
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bCommands).Stats().KeyN; return nil })
	if n != 1 {
		t.Fatalf("%d command IDs kept, want 1 (cmd-1 expired)", n)
	}
}

// A roster file's errors name the key's path and line, and the type in
// words.
func TestDecodeRosterSaysWhere(t *testing.T) {
	good, _ := json.MarshalIndent(testRoster(1), "", "  ")
	bad := strings.Replace(string(good), `"end": "18:00"`, `"end": 1800`, 1)
	_, err := DecodeRoster([]byte(bad))
	if err == nil || !strings.Contains(err.Error(), "roster: bookings[0].window.end (line") || !strings.Contains(err.Error(), `want a time of day such as "13:00"`) {
		t.Fatalf("a number for a time of day: %v", err)
	}
	if _, err := DecodeRoster(good); err != nil {
		t.Fatal(err)
	}
}
