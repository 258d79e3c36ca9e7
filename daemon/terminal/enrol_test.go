package terminal

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
)

var (
	staffUID = []byte{0x5A, 0x5A, 0x5A, 0x01}
	oldUID   = []byte{1, 2, 3, 4}
	spareUID = []byte{7, 7, 7, 7}
	otherUID = []byte{2, 2, 2, 2}
)

// enrolRoster: c1 (card oldUID) and c2 (card otherUID), both in use; staff s1.
func enrolRoster() *firmware.Roster {
	r := roster()
	r.Children = append(r.Children, firmware.Child{ID: "c2", Name: "이서연"}, firmware.Child{ID: "c3", Name: "박지호"})
	r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(key, otherUID), ChildID: "c2", State: firmware.CardActive})
	b := r.Bookings[0]
	b.ID, b.ChildID = "b2", "c2"
	b3 := b
	b3.ID, b3.ChildID, b3.Status = "b3", "c3", firmware.Scheduled
	r.Bookings = append(r.Bookings, b, b3)
	r.Staff = []firmware.Staff{{ID: "s1", Name: "박선생", Key: firmware.CardKey(key, staffUID)}}
	return r
}

type rig struct {
	t     *testing.T
	st    *store.Store
	clk   *fixedClock
	term  *Terminal
	shown []firmware.Feedback
	bound []firmware.BindingChange
}

func newRig(t *testing.T) *rig {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "t.db"), DeviceID: "T"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, firmware.KST)
	if err := st.ApplyRoster(enrolRoster(), now); err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, st: st, clk: &fixedClock{now}}
	g.term, err = New(Options{Store: st, Clock: g.clk, Key: key,
		Show:  func(f firmware.Feedback) { g.shown = append(g.shown, f) },
		Bound: func(_ store.Event, ch firmware.BindingChange) { g.bound = append(g.bound, ch) }})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *rig) last() firmware.Feedback { return g.shown[len(g.shown)-1] }

func (g *rig) seq() uint64 {
	o, err := g.st.Outbox()
	if err != nil {
		g.t.Fatal(err)
	}
	return o.LastSeq
}

func (g *rig) tap(uid []byte) (store.Event, firmware.Decision, error) {
	g.clk.t = g.clk.t.Add(5 * time.Second)
	return g.term.Tap(uid)
}

// The device flow end to end on the terminal: a staff tap opens enrolment
// and is never attendance; the buttons pick a child; the next card is
// bound and recorded before the confirmation; the old card is
// replaced_card on the very next tap and the spare checks in.
func TestEnrolOnDevice(t *testing.T) {
	g := newRig(t)
	ev, dec, err := g.tap(staffUID)
	if err != nil || ev.Seq != 0 || dec.Outcome != "" || g.seq() != 0 {
		t.Fatalf("staff tap: %+v %+v %v, %d events", ev, dec, err, g.seq())
	}
	if f := g.last(); f.Pattern != firmware.PatternEnrol || f.Lines[0] != "카드 등록" {
		t.Fatalf("enrolment screen %+v", f)
	}
	for g.last().Lines[1] != firmware.MaskName("김민준") {
		g.term.Press(firmware.ButtonNext)
	}
	g.term.Press(firmware.ButtonChoose)
	if g.last().Lines[1] != "카드를 대주세요" {
		t.Fatalf("choose: %+v", g.last())
	}
	ev, dec, err = g.tap(spareUID)
	if err != nil || dec.Outcome != firmware.CardBound || ev.Seq != 1 || ev.By != "s1" || ev.Reason != "device" || !slices.Equal(ev.UID, spareUID) {
		t.Fatalf("binding: %+v %+v %v", ev, dec, err)
	}
	if f := g.last(); f.Pattern != firmware.PatternBound || f.Lines[1] != "김*준" || len(f.Lines) != 3 {
		t.Fatalf("confirmation %+v", f)
	}
	if g.term.Enrolling() {
		t.Fatal("enrolment still open after the binding")
	}
	_, dec, _ = g.tap(oldUID)
	if dec.Outcome != firmware.ReplacedCard || dec.Reason != firmware.ReasonCardReplaced {
		t.Fatalf("the old card's next tap: %+v", dec)
	}
	_, dec, _ = g.tap(spareUID)
	if dec.Outcome != firmware.CheckIn || dec.ChildID != "c1" {
		t.Fatalf("the spare's tap: %+v", dec)
	}
}

// Every rule is refused with its reason on the screen and nothing recorded;
// cancel and timeout leave nothing half-bound.
func TestEnrolRefusedCancelledTimedOut(t *testing.T) {
	g := newRig(t)
	choose := func(name string) {
		t.Helper()
		g.tap(staffUID)
		for i := 0; g.last().Lines[1] != firmware.MaskName(name); i++ {
			if i > 5 {
				t.Fatalf("%s not in the list", name)
			}
			g.term.Press(firmware.ButtonNext)
		}
		g.term.Press(firmware.ButtonChoose)
	}
	for _, tc := range []struct {
		name   string
		child  string
		card   []byte
		refuse firmware.Reason
		line   string
	}{
		{"another child's card", "김민준", otherUID, firmware.RefuseCardOfOther, "다른 아이의 카드"},
		{"the child's own card", "김민준", oldUID, firmware.RefuseAlreadyBound, "이미 등록된 카드"},
	} {
		before := g.seq()
		choose(tc.child)
		_, _, err := g.tap(tc.card)
		var ref *firmware.Refused
		if !errors.As(err, &ref) || ref.Reason != tc.refuse {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if f := g.last(); f.Lines[1] != tc.line || g.seq() != before {
			t.Fatalf("%s: screen %+v, %d events (was %d)", tc.name, f, g.seq(), before)
		}
	}
	// A staff card presented as the child's card: the same staff card
	// cancels; another staff's card is refused as a staff card.
	r := enrolRoster()
	r.Revision = 2
	other := []byte{0x5A, 0x5A, 0x5A, 0x02}
	r.Staff = append(r.Staff, firmware.Staff{ID: "s2", Name: "최선생", Key: firmware.CardKey(key, other)})
	if err := g.st.ApplyRoster(r, g.clk.t); err != nil {
		t.Fatal(err)
	}
	choose("김민준")
	var ref *firmware.Refused
	if _, _, err := g.tap(other); !errors.As(err, &ref) || ref.Reason != firmware.RefuseStaffCard {
		t.Fatalf("a staff card as a child's: %v", err)
	}
	choose("김민준")
	g.tap(staffUID)
	if f := g.last(); f.Lines[0] != "등록 취소" || g.term.Enrolling() {
		t.Fatalf("cancel: %+v", f)
	}
	// Timeout: a minute of silence, then the card is an ordinary tap.
	choose("김민준")
	g.clk.t = g.clk.t.Add(61 * time.Second)
	g.term.Tick()
	if f := g.last(); f.Lines[0] != "시간 초과" || g.term.Enrolling() {
		t.Fatalf("timeout: %+v", f)
	}
	_, dec, _ := g.tap(spareUID)
	if dec.Outcome != firmware.UnknownCard {
		t.Fatalf("after the timeout the spare is %+v", dec)
	}
	if len(g.bound) != 0 {
		t.Fatalf("bound %+v", g.bound)
	}
	rr, _, _ := g.st.Roster()
	if rr.CardByKey(firmware.CardKey(key, oldUID)).State != firmware.CardActive {
		t.Fatal("the old card is no longer active")
	}
}

// The portal's flow: the enrol command opens enrolment for one child; the
// next card is bound with flow portal; an unknown child is refused.
func TestEnrolFromPortal(t *testing.T) {
	g := newRig(t)
	var ref *firmware.Refused
	if _, err := g.term.EnrolFor("c99", "op.kim"); !errors.As(err, &ref) || ref.Reason != firmware.RefuseUnknownChild {
		t.Fatalf("unknown child: %v", err)
	}
	screen, err := g.term.EnrolFor("c3", "op.kim")
	if err != nil || screen[1] != "카드를 대주세요" || g.last().Lines[0] != "박*호" {
		t.Fatalf("open: %v %q", err, screen)
	}
	// Nobody may be at the door yet: a child arriving checks in, and the
	// enrolment keeps waiting.
	if _, dec, _ := g.tap(oldUID); dec.Outcome != firmware.CheckIn || !g.term.Enrolling() {
		t.Fatalf("a child's tap during the portal's enrolment: %+v, enrolling %v", dec, g.term.Enrolling())
	}
	ev, dec, err := g.tap(spareUID)
	if err != nil || dec.Outcome != firmware.CardBound || ev.Reason != "portal" || ev.By != "op.kim" || ev.OldCard != "" || ev.ChildID != "c3" {
		t.Fatalf("binding: %+v %v", ev, err)
	}
	if f := g.last(); len(f.Lines) != 2 {
		t.Fatalf("a first card is no replacement: %+v", f)
	}
}
