package binder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/publish"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

var (
	testKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	keyOf    = map[string][]byte{"m1": []byte("centre-key-of-m1-0123456789"), "m2": []byte("centre-key-of-m2-0123456789")}
	cardUIDs = map[string][]byte{"c1": {1, 1, 1, 1}, "c2": {2, 2, 2, 2}, "c3": {3, 3, 3, 3}, "X": {0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}, "Y": {0x04, 9, 9, 9, 9, 9, 9}}
	t0       = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
)

func cardKey(centre, card string) string { return firmware.CardKey(keyOf[centre], cardUIDs[card]) }

// centreSource: children c1, c2, c3 with their own cards; c3's booking is
// scheduled (이용예정), the others' in use.
func centreSource(centre string) *source.Source {
	from, to := firmware.DateOf(t0).AddDays(-30), firmware.DateOf(t0).AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	book := func(id, child string, st firmware.BookingStatus) firmware.Booking {
		return firmware.Booking{ID: id, ChildID: child, Type: firmware.Regular, Status: st, From: from, To: to, Weekdays: all, Window: day}
	}
	r := &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: centre, Name: "센터 " + centre, Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}},
		Cards: []firmware.Card{{Key: cardKey(centre, "c1"), ChildID: "c1", State: firmware.CardActive}, {Key: cardKey(centre, "c2"), ChildID: "c2", State: firmware.CardActive},
			{Key: cardKey(centre, "c3"), ChildID: "c3", State: firmware.CardActive}},
		Bookings: []firmware.Booking{book("b1", "c1", firmware.InUse), book("b2", "c2", firmware.InUse), book("b3", "c3", firmware.Scheduled)}}
	return &source.Source{Roster: r, Guardians: map[string][]source.Guardian{"c1": {{Name: "김지현", Phone: "01012345678", Texts: true}}}}
}

type harness struct {
	t     *testing.T
	dir   string
	st    *boltstore.Store
	b     *Binder
	pub   *publish.Publisher
	fail  func(point string) error // the next binder's Failpoint
	now   time.Time
	lastQ map[string]uint64 // device/log → last seq put
}

func newHarness(t *testing.T, centres ...string) *harness {
	t.Helper()
	dir := t.TempDir()
	for _, c := range centres {
		if err := source.Write(filepath.Join(dir, c+".json"), centreSource(c)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, dir: dir, st: st, now: t0.Add(time.Hour), lastQ: map[string]uint64{}}
	h.restart()
	return h
}

// restart makes a new Binder on the same store and sources, as after a
// crash, and publishes every centre's roster, as the bridge does at
// start. The centres a binder changes are published at once (the
// revisions are recorded; nothing is connected to send them).
func (h *harness) restart() {
	h.t.Helper()
	h.fail = nil // the crash was the last binder's
	var err error
	h.pub, err = publish.New(publish.Options{Revisions: h.st.Contract(), Key: testKey, Now: func() time.Time { return h.now },
		Connected: func() bool { return false }, Send: func(string, bool, []byte) error { return nil }})
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := New(Options{Store: h.st.Contract(), Sources: source.Dir(h.dir), Key: testKey.Seed(), Now: func() time.Time { return h.now },
		Failpoint: func(p string) error {
			if h.fail != nil {
				return h.fail(p)
			}
			return nil
		},
		Changed: h.publish})
	if err != nil {
		h.t.Fatal(err)
	}
	h.b = b
	h.publish(b.Centres()...)
}

func (h *harness) publish(centres ...string) {
	for _, c := range centres {
		if err := h.pub.Publish(context.Background(), h.b.Source(c).Roster); err != nil && !errors.Is(err, publish.ErrNotConnected) {
			h.t.Errorf("publishing %s: %v", c, err)
		}
	}
}

// store stores events as the bridge's ingest does: each card_bound
// event with its binding job.
func (h *harness) store(evs ...protocol.Event) error {
	_, err := h.st.Contract().Put(context.Background(), evs, store.Plan{Binding: h.b.Job})
	return err
}

// bound is a card_bound event: device binds card to child at centre, at.
func bound(centre, device string, seq uint64, child, card string, at time.Time) protocol.Event {
	return protocol.Event{V: 1, ID: fmt.Sprintf("%s-%d", device, seq), Centre: centre, Device: device, Log: "L" + device, Seq: seq, Time: at, ClockSynced: true,
		BootID: "boot", Card: cardKey(centre, card), UID: strings.ToUpper(hex.EncodeToString(cardUIDs[card])), Child: child,
		Outcome: protocol.OutcomeCardBound, Reason: "device", By: "s1", RosterRev: 1}
}

// put stores events as ingest does, then applies the binding jobs.
func (h *harness) put(evs ...protocol.Event) {
	h.t.Helper()
	if err := h.store(evs...); err != nil {
		h.t.Fatal(err)
	}
	if err := h.b.Drain(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) source(centre string) *firmware.Roster {
	h.t.Helper()
	s, err := source.Load(filepath.Join(h.dir, centre+".json"))
	if err != nil {
		h.t.Fatal(err)
	}
	return s.Roster
}

func sortedCards(r *firmware.Roster) []firmware.Card {
	cs := slices.Clone(r.Cards)
	slices.SortFunc(cs, func(a, b firmware.Card) int { return strings.Compare(a.Key, b.Key) })
	return cs
}

func (h *harness) history(centre, child string) []api.Change {
	h.t.Helper()
	c, err := h.b.History(context.Background(), centre, child)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func cardState(r *firmware.Roster, key string) (string, firmware.CardState) {
	if c := r.CardByKey(key); c != nil {
		return c.ChildID, c.State
	}
	return "", ""
}

// A binding replaces the child's card at once; the source records it and
// the log's sequence, and the next revision is recorded for publishing.
func TestBindingApplied(t *testing.T) {
	h := newHarness(t, "m1")
	h.put(bound("m1", "T-1", 1, "c1", "X", t0))
	r := h.source("m1")
	if ch, st := cardState(r, cardKey("m1", "X")); ch != "c1" || st != firmware.CardActive {
		t.Fatalf("new card: %s %s", ch, st)
	}
	if _, st := cardState(r, cardKey("m1", "c1")); st != firmware.CardReplaced {
		t.Fatalf("old card: %s", st)
	}
	if r.Applied["T-1/LT-1"] != 1 {
		t.Fatalf("applied_bindings %v", r.Applied)
	}
	hist := h.history("m1", "c1")
	if len(hist) != 1 || hist[0].Outcome != api.ChangeApplied || hist[0].OldCard != cardKey("m1", "c1") || hist[0].By != "s1" || hist[0].Flow != firmware.FlowDevice {
		t.Fatalf("history %+v", hist)
	}
	p, err := h.published("m1")
	if err != nil || p == nil || p.Snapshot.Roster.Applied["T-1/LT-1"] != 1 || p.Delta == nil || p.Delta.Applied["T-1/LT-1"] != 1 {
		t.Fatalf("published %+v, %v", p, err)
	}
	// The event is kept without its raw UID; no text is queued for it.
	h.st.Events("m1", func(e protocol.Event) bool {
		if e.UID != "" {
			t.Errorf("event %s stored with its UID", e.ID)
		}
		return true
	})
	h.st.Jobs(func(j store.Job) bool { t.Errorf("a text for a binding: %+v", j); return true })
}

// Two terminals of one centre bind the same card to two children: the
// binding made first wins whatever order they arrive in; the loser's
// child's old card stays replaced.
func TestConflictInOneCentre(t *testing.T) {
	early := bound("m1", "T-2", 1, "c2", "X", t0)
	late := bound("m1", "T-1", 1, "c1", "X", t0.Add(10*time.Minute))
	var finals [][]firmware.Card
	for _, order := range [][]protocol.Event{{late, early}, {early, late}} {
		h := newHarness(t, "m1")
		for _, e := range order {
			h.put(e)
		}
		r := h.source("m1")
		if ch, st := cardState(r, cardKey("m1", "X")); ch != "c2" || st != firmware.CardActive {
			t.Fatalf("%s first: X is %s's, %s", order[0].Device, ch, st)
		}
		for _, c := range []string{"c1", "c2"} {
			if _, st := cardState(r, cardKey("m1", c)); st != firmware.CardReplaced {
				t.Fatalf("%s first: %s's old card %s", order[0].Device, c, st)
			}
		}
		if r.Applied["T-1/LT-1"] != 1 || r.Applied["T-2/LT-2"] != 1 {
			t.Fatalf("applied %v", r.Applied)
		}
		hist := h.history("m1", "c1")
		if last := hist[len(hist)-1]; last.Outcome != api.ChangeConflict || last.Reason != firmware.RefuseBoundElsewhere {
			t.Fatalf("%s first: c1's history %+v", order[0].Device, hist)
		}
		finals = append(finals, sortedCards(r))
	}
	a, _ := json.Marshal(finals[0])
	b, _ := json.Marshal(finals[1])
	if !bytes.Equal(a, b) {
		t.Fatalf("the order of arrival changed the result:\n%s\n%s", a, b)
	}
}

// Equal times: the lower (centre, device, seq) wins.
func TestFirstTies(t *testing.T) {
	h := &holder{Centre: "m1", Device: "T-2", Seq: 5, At: t0}
	for _, tc := range []struct {
		b    binding
		want bool
	}{
		{binding{Centre: "m1", Device: "T-2", Seq: 4, At: t0}, true},
		{binding{Centre: "m1", Device: "T-2", Seq: 6, At: t0}, false},
		{binding{Centre: "m1", Device: "T-1", Seq: 9, At: t0}, true},
		{binding{Centre: "m0", Device: "T-9", Seq: 9, At: t0}, true},
		{binding{Centre: "m2", Device: "T-0", Seq: 1, At: t0}, false},
		{binding{Centre: "m9", Device: "T-9", Seq: 9, At: t0.Add(-time.Nanosecond)}, true},
	} {
		if got := first(&tc.b, h); got != tc.want {
			t.Errorf("%+v first: %v, want %v", tc.b, got, tc.want)
		}
	}
}

// A terminal's clock not set: the binding counts as made when the bridge
// stored it, so a synced binding made before that wins.
func TestUnsyncedClockCountsAsStored(t *testing.T) {
	h := newHarness(t, "m1", "m2")
	unsynced := bound("m1", "T-1", 1, "c1", "X", time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC))
	unsynced.ClockSynced = false
	h.put(unsynced) // stored at t0+1h
	h.put(bound("m2", "T-9", 1, "c1", "X", t0.Add(30*time.Minute)))
	if _, st := cardState(h.source("m1"), cardKey("m1", "X")); st != firmware.CardConflict {
		t.Fatalf("the unsynced binding (1970) at m1 is %s, want conflict", st)
	}
	if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardActive {
		t.Fatalf("the synced binding at m2 is %s, want active", st)
	}
}

// Killed after planning, or after writing the source but before removing
// the job: run again, the job leaves one binding, one audit record, and
// the job queue empty.
func TestBindingJobKilled(t *testing.T) {
	for _, point := range []string{"planned", "written"} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t, "m1", "m2")
			h.put(bound("m2", "T-9", 1, "c2", "X", t0.Add(time.Minute))) // will lose: m1's binding below is earlier
			crash := errors.New("killed")
			h.fail = func(p string) error {
				if p == point {
					return crash
				}
				return nil
			}
			if err := h.store(bound("m1", "T-1", 1, "c1", "X", t0)); err != nil {
				t.Fatal(err)
			}
			if err := h.b.Drain(); !errors.Is(err, crash) {
				t.Fatalf("drain: %v", err)
			}
			if got := h.source("m1").Applied["T-1/LT-1"]; (point == "written") != (got == 1) {
				t.Fatalf("killed at %s: applied_bindings %d", point, got)
			}
			h.restart() // reads the sources again: a source behind is reconciled there
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			if err := h.b.Drain(); err != nil { // nothing left: harmless
				t.Fatal(err)
			}
			r1, r2 := h.source("m1"), h.source("m2")
			n := 0
			for _, c := range r1.Cards {
				if c.Key == cardKey("m1", "X") {
					n++
					if c.ChildID != "c1" || c.State != firmware.CardActive {
						t.Fatalf("m1's X: %+v", c)
					}
				}
			}
			if n != 1 || r1.Applied["T-1/LT-1"] != 1 {
				t.Fatalf("m1: %d cards X, applied %v", n, r1.Applied)
			}
			if _, st := cardState(r2, cardKey("m2", "X")); st != firmware.CardConflict {
				t.Fatalf("m2's X %s, want conflict", st)
			}
			if hist := h.history("m1", "c1"); len(hist) != 1 || hist[0].Outcome != api.ChangeApplied {
				t.Fatalf("m1 c1 history: %+v", hist)
			}
			if hist := h.history("m2", "c2"); len(hist) != 2 || hist[1].Outcome != api.ChangeConflict {
				t.Fatalf("m2 c2 history: %+v", hist)
			}
			if h.queued() {
				t.Fatal("a job is left")
			}
		})
	}
}

// A source pushed from a copy older than the bindings the bridge applied
// gets them again, and a card that lost a conflict stays in conflict.
func TestOlderCopyPushed(t *testing.T) {
	h := newHarness(t, "m1", "m2")
	older := filepath.Join(t.TempDir(), "m1.json")
	raw, _ := os.ReadFile(filepath.Join(h.dir, "m1.json"))
	os.WriteFile(older, raw, 0o600)

	h.put(bound("m1", "T-1", 1, "c1", "X", t0.Add(time.Minute)))   // loses to m2's below
	h.put(bound("m2", "T-9", 1, "c3", "X", t0))                    // won
	h.put(bound("m1", "T-1", 2, "c2", "Y", t0.Add(2*time.Minute))) // applied
	h.put(bound("m1", "T-2", 1, "c9", "Y", t0.Add(3*time.Minute))) // refused: no c9
	want := sortedCards(h.source("m1"))
	if _, st := cardState(h.source("m1"), cardKey("m1", "X")); st != firmware.CardConflict {
		t.Fatalf("X at m1: %s", st)
	}
	// Staff push the copy from before the bindings.
	if _, err := source.Push(h.dir, "m1", "", older, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := h.source("m1"); len(r.Applied) != 0 {
		t.Fatal("the push did not replace the source")
	}
	changed, err := h.b.Reload()
	if err != nil || !slices.Contains(changed, "m1") {
		t.Fatalf("reload: %v %v", changed, err)
	}
	r := h.source("m1") // written back
	if got := sortedCards(r); !slices.Equal(got, want) {
		t.Fatalf("after the push:\n%+v\nwant\n%+v", got, want)
	}
	if r.Applied["T-1/LT-1"] != 2 || r.Applied["T-2/LT-2"] != 1 {
		t.Fatalf("applied %v", r.Applied)
	}
	// Staff set the lost card active by hand: the conflict stands.
	src, _ := source.Load(filepath.Join(h.dir, "m1.json"))
	for i := range src.Roster.Cards {
		if src.Roster.Cards[i].Key == cardKey("m1", "X") {
			src.Roster.Cards[i].State = firmware.CardActive
		}
	}
	source.Write(older, src)
	if _, err := source.Push(h.dir, "m1", "", older, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.b.Reload()
	if _, st := cardState(h.source("m1"), cardKey("m1", "X")); st != firmware.CardConflict {
		t.Fatalf("X at m1 after a push making it active: %s", st)
	}
}

// Revoking from the portal: refused for a scheduled booking (Q18) and
// for no active card, with the reason, and recorded either way. Revoking
// the card that won a conflict frees the cards that lost it.
func TestRevoke(t *testing.T) {
	h := newHarness(t, "m1", "m2")
	_, err := h.b.Revoke("m1", "c3", "op.kim")
	var ref *firmware.Refused
	if !errors.As(err, &ref) || ref.Reason != firmware.RefuseScheduledBooking {
		t.Fatalf("revoking c3 (scheduled): %v", err)
	}
	if hist := h.history("m1", "c3"); len(hist) != 1 || hist[0].Outcome != api.ChangeRefused || hist[0].Reason != firmware.RefuseScheduledBooking {
		t.Fatalf("c3's history %+v", hist)
	}
	if _, st := cardState(h.source("m1"), cardKey("m1", "c3")); st != firmware.CardActive {
		t.Fatal("a refused revoke changed the card")
	}

	h.put(bound("m1", "T-1", 1, "c1", "X", t0))                  // wins
	h.put(bound("m2", "T-9", 1, "c2", "X", t0.Add(time.Minute))) // loses
	c, err := h.b.Revoke("m1", "c1", "op.kim")
	if err != nil || c.Outcome != api.ChangeApplied || c.OldCard != cardKey("m1", "X") {
		t.Fatalf("revoke: %+v %v", c, err)
	}
	if _, st := cardState(h.source("m1"), cardKey("m1", "X")); st != firmware.CardRevoked {
		t.Fatalf("X at m1: %s", st)
	}
	if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardRevoked {
		t.Fatalf("X at m2 (lost the conflict): %s, want revoked (freed)", st)
	}
	if hist := h.history("m2", "c2"); hist[len(hist)-1].Outcome != api.ChangeReleased {
		t.Fatalf("m2 c2 history %+v", hist)
	}
	if _, err := h.b.Revoke("m1", "c1", "op.kim"); !errors.As(err, &ref) || ref.Reason != firmware.RefuseNoActiveCard {
		t.Fatalf("revoking again: %v", err)
	}
	// Freed, the card binds again at m2, and holds.
	h.put(bound("m2", "T-9", 2, "c2", "X", t0.Add(time.Hour)))
	if ch, st := cardState(h.source("m2"), cardKey("m2", "X")); ch != "c2" || st != firmware.CardActive {
		t.Fatalf("X bound again at m2: %s %s", ch, st)
	}
	p, _ := h.published("m2")
	p.Snapshot.Roster.Validate()
	if _, st := cardState(p.Snapshot.Roster, cardKey("m2", "X")); st != firmware.CardActive {
		t.Fatalf("published at m2: %s", st)
	}
}

// push pushes file as centre's source, as kiumctl roster push does (a CSV
// merged with the centre's key), and moves its mtime on so the bridge
// sees it changed however coarse the file system's clock.
func (h *harness) push(centre, file string) {
	h.t.Helper()
	if _, err := source.Push(h.dir, centre, hex.EncodeToString(keyOf[centre]), file, h.now); err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(h.dir, centre+".json")
	fi, err := os.Stat(path)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime().Add(time.Second)); err != nil {
		h.t.Fatal(err)
	}
}

// When the card that won a conflict ends by a source staff push (a CSV
// giving the child a new card, the card revoked by hand, the child gone),
// the card that lost it is freed as if the winner were revoked: it does
// not stay in conflict with nothing left to free it.
func TestWinnerEndedBySource(t *testing.T) {
	uid := func(card string) string { return strings.ToUpper(hex.EncodeToString(cardUIDs[card])) }
	for _, tc := range []struct {
		name string
		file string // the pushed file's name
		make func(cur *source.Source) []byte
	}{
		{"a CSV gives the child a new card", "m1.csv", func(*source.Source) []byte {
			return []byte(strings.Join(source.Columns, ",") + "\n" +
				"c1,김민준," + uid("Y") + ",,,,,,,,,,\n" +
				"c2,이서연," + uid("c2") + ",,,,,,,,,,\n" +
				"c3,박지호," + uid("c3") + ",,,,,,,,,,\n")
		}},
		{"the card revoked in the JSON", "m1.json", func(cur *source.Source) []byte {
			for i, c := range cur.Roster.Cards {
				if c.Key == cardKey("m1", "X") {
					cur.Roster.Cards[i].State = firmware.CardRevoked
				}
			}
			raw, _ := json.Marshal(cur)
			return raw
		}},
		{"the child left", "m1.json", func(cur *source.Source) []byte {
			r := cur.Roster
			r.Children = slices.DeleteFunc(r.Children, func(c firmware.Child) bool { return c.ID == "c1" })
			r.Cards = slices.DeleteFunc(r.Cards, func(c firmware.Card) bool { return c.ChildID == "c1" })
			r.Bookings = slices.DeleteFunc(r.Bookings, func(b firmware.Booking) bool { return b.ChildID == "c1" })
			delete(cur.Guardians, "c1")
			raw, _ := json.Marshal(cur)
			return raw
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "m1", "m2")
			h.put(bound("m1", "T-1", 1, "c1", "X", t0))                  // wins
			h.put(bound("m2", "T-9", 1, "c2", "X", t0.Add(time.Minute))) // loses
			if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardConflict {
				t.Fatalf("X at m2: %s, want conflict", st)
			}
			cur, err := source.Load(filepath.Join(h.dir, "m1.json"))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(file, tc.make(cur), 0o600); err != nil {
				t.Fatal(err)
			}
			h.push("m1", file)
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			if _, st := cardState(h.source("m1"), cardKey("m1", "X")); st == firmware.CardActive {
				t.Fatal("X is still active at m1: the push did not end it")
			}
			if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardRevoked {
				t.Fatalf("X at m2 (lost the conflict): %s, want revoked (freed)", st)
			}
			p, err := h.published("m2")
			if err != nil || p == nil || p.Snapshot.Roster.Validate() != nil {
				t.Fatalf("published at m2: %+v, %v", p, err)
			}
			if _, st := cardState(p.Snapshot.Roster, cardKey("m2", "X")); st != firmware.CardRevoked {
				t.Fatalf("published at m2: X %s", st)
			}
			if hist := h.history("m2", "c2"); hist[len(hist)-1].Outcome != api.ChangeReleased {
				t.Fatalf("m2 c2 history %+v", hist)
			}
			// Freed, the card binds again at m2, and holds.
			h.put(bound("m2", "T-9", 2, "c2", "X", t0.Add(2*time.Hour)))
			if ch, st := cardState(h.source("m2"), cardKey("m2", "X")); ch != "c2" || st != firmware.CardActive {
				t.Fatalf("X bound again at m2: %s %s", ch, st)
			}
		})
	}
}

// A source pushed at the losing centre from a copy older than the
// release, behind on the losing binding or not, ends as the release left
// it: the card revoked (free), not back in conflict with nothing to free
// it. Lost again later, it is in conflict again.
func TestReleaseSurvivesOlderCopy(t *testing.T) {
	for _, copied := range []string{"before the losing binding", "after the losing binding"} {
		t.Run(copied, func(t *testing.T) {
			h := newHarness(t, "m1", "m2")
			older := filepath.Join(t.TempDir(), "m2.json")
			save := func() {
				raw, err := os.ReadFile(filepath.Join(h.dir, "m2.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(older, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			save()
			h.put(bound("m1", "T-1", 1, "c1", "X", t0))                  // wins
			h.put(bound("m2", "T-9", 1, "c2", "X", t0.Add(time.Minute))) // loses
			if copied == "after the losing binding" {
				save()
			}
			if _, err := h.b.Revoke("m1", "c1", "op.kim"); err != nil {
				t.Fatal(err)
			}
			want := sortedCards(h.source("m2"))
			if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardRevoked {
				t.Fatalf("X at m2 after the revoke: %s", st)
			}

			h.push("m2", older)
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			r := h.source("m2")
			if got := sortedCards(r); !slices.Equal(got, want) {
				t.Fatalf("after the push:\n%+v\nwant\n%+v", got, want)
			}
			if r.Applied["T-9/LT-9"] != 1 {
				t.Fatalf("applied %v", r.Applied)
			}
			// Free, it binds again at m2; then a binding made earlier at
			// m1 wins it again, and it is in conflict again, pushes or not.
			h.put(bound("m2", "T-9", 2, "c2", "X", t0.Add(2*time.Hour)))
			if ch, st := cardState(h.source("m2"), cardKey("m2", "X")); ch != "c2" || st != firmware.CardActive {
				t.Fatalf("X bound again at m2: %s %s", ch, st)
			}
			h.put(bound("m1", "T-1", 2, "c2", "X", t0.Add(time.Hour)))
			if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardConflict {
				t.Fatalf("X at m2 lost again: %s, want conflict", st)
			}
			h.push("m2", older)
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			if _, st := cardState(h.source("m2"), cardKey("m2", "X")); st != firmware.CardConflict {
				t.Fatalf("X at m2 lost again, after an older copy: %s, want conflict", st)
			}
		})
	}
}

// Staff import the usual export again after a terminal bound a spare: the
// list still gives the child the lost card, which stays replaced, and
// the spare stays active (the source is not behind, so nothing would
// bind it again).
func TestCSVAfterTerminalBinding(t *testing.T) {
	h := newHarness(t, "m1")
	h.put(bound("m1", "T-1", 1, "c1", "X", t0)) // X replaces c1's lost card
	uid := func(card string) string { return strings.ToUpper(hex.EncodeToString(cardUIDs[card])) }
	list := filepath.Join(t.TempDir(), "m1.csv")
	err := os.WriteFile(list, []byte(strings.Join(source.Columns, ",")+"\n"+
		"c1,김민준,"+uid("c1")+",,,,,,,,,,\n"+
		"c2,이서연,"+uid("c2")+",,,,,,,,,,\n"+
		"c3,박지호,"+uid("c3")+",,,,,,,,,,\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h.push("m1", list)
	if err := h.b.Drain(); err != nil {
		t.Fatal(err)
	}
	r := h.source("m1")
	if ch, st := cardState(r, cardKey("m1", "X")); ch != "c1" || st != firmware.CardActive {
		t.Errorf("the spare X: %s %s, want c1's, active", ch, st)
	}
	if ch, st := cardState(r, cardKey("m1", "c1")); ch != "c1" || st != firmware.CardReplaced {
		t.Errorf("the lost card: %s %s, want c1's, replaced", ch, st)
	}
	if r.Applied["T-1/LT-1"] != 1 {
		t.Errorf("applied %v", r.Applied)
	}
	// X still holds: bound later at another terminal of m1, it loses.
	h.put(bound("m1", "T-2", 1, "c2", "X", t0.Add(time.Minute)))
	if ch, st := cardState(h.source("m1"), cardKey("m1", "X")); ch != "c1" || st != firmware.CardActive {
		t.Errorf("X after a later binding to c2: %s %s, want c1's, active", ch, st)
	}
}

// queued reports whether any binding job waits.
func (h *harness) queued() bool {
	h.t.Helper()
	j, err := h.st.Contract().NextBinding(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return j != nil
}

// published is a centre's latest revision recorded, nil if none.
func (h *harness) published(centre string) (*store.Published, error) {
	return h.st.Contract().Published(context.Background(), centre)
}
