package bridge

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// The bridge's own tests of its control answers, on a bridge that is
// never connected (the binder's are package binder's).

var (
	testKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	keyOf    = map[string][]byte{"m1": []byte("centre-key-of-m1-0123456789"), "m2": []byte("centre-key-of-m2-0123456789")}
	cardUIDs = map[string][]byte{"c1": {1, 1, 1, 1}, "X": {0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}}
	t0       = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
)

func cardKey(centre, card string) string { return firmware.CardKey(keyOf[centre], cardUIDs[card]) }

// centreSource: children c1, c2, c3, each with an active card and a
// booking in use all year.
func centreSource(centre string) *source.Source {
	from, to := firmware.DateOf(t0).AddDays(-30), firmware.DateOf(t0).AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	r := &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: centre, Name: "센터 " + centre, Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}}}
	for i, name := range []string{"김민준", "이서연", "박지호"} {
		child := fmt.Sprintf("c%d", i+1)
		r.Children = append(r.Children, firmware.Child{ID: child, Name: name})
		r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(keyOf[centre], []byte{byte(i + 1), byte(i + 1), byte(i + 1), byte(i + 1)}), ChildID: child, State: firmware.CardActive})
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b" + child, ChildID: child, Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: day})
	}
	return &source.Source{Roster: r, Guardians: map[string][]source.Guardian{"c1": {{Name: "김지현", Phone: "01012345678", Texts: true}}}}
}

type harness struct {
	t   *testing.T
	dir string
	st  *boltstore.Store
	b   *Bridge
	now time.Time
}

// newHarness is a bridge, never connected, on a store and the sources of
// centres.
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
	h := &harness{t: t, dir: dir, st: st, now: t0.Add(time.Hour)}
	h.b, err = New(Options{Broker: "tcp://127.0.0.1:1", Key: testKey, Store: st, SourceDir: dir, Provider: sms.NewConsole(io.Discard),
		Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// bound is a card_bound event: device binds card to child at centre, at.
func bound(centre, device string, seq uint64, child, card string, at time.Time) protocol.Event {
	return protocol.Event{V: 1, ID: fmt.Sprintf("%s-%d", device, seq), Centre: centre, Device: device, Log: "L" + device, Seq: seq, Time: at, ClockSynced: true,
		BootID: "boot", Card: cardKey(centre, card), UID: strings.ToUpper(hex.EncodeToString(cardUIDs[card])), Child: child,
		Outcome: protocol.OutcomeCardBound, Reason: "device", By: "s1", RosterRev: 1}
}

// put stores events as the ingest does, then applies the binding jobs.
func (h *harness) put(evs ...protocol.Event) {
	h.t.Helper()
	if err := (ingestStore{h.b}).Put(evs); err != nil {
		h.t.Fatal(err)
	}
	if err := h.b.bind.Drain(); err != nil {
		h.t.Fatal(err)
	}
}
