package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/protocol"
)

var key = []byte("0123456789abcdef")

// terminalStore is a store with a roster and a morning of taps.
func terminalStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Path: path, DeviceID: "mangwon1-door"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	today := firmware.DateOf(now)
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	day := firmware.Window{Start: 0, End: 24 * 60}
	r := &firmware.Roster{Revision: 3,
		Centre:   firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{{Name: "2학기", From: today.AddDays(-9), To: today.AddDays(9), Hours: day, Weekdays: all}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}},
		Cards: []firmware.Card{
			{Key: firmware.CardKey(key, []byte{1}), ChildID: "c1", State: firmware.CardActive},
			{Key: firmware.CardKey(key, []byte{2}), ChildID: "c2", State: firmware.CardActive},
		},
		Bookings: []firmware.Booking{{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: today.AddDays(-9), To: today.AddDays(9), Weekdays: all, Window: day}},
	}
	if err := st.ApplyRoster(r, now); err != nil {
		t.Fatal(err)
	}
	for i, uid := range []byte{1, 2, 9} {
		if _, _, err := st.Tap(store.TapRequest{At: store.Stamp{Time: now.Add(time.Duration(i) * time.Second), Synced: true}, CardKey: firmware.CardKey(key, []byte{uid})}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestQueriesOverTheSocket(t *testing.T) {
	dir := t.TempDir()
	st := terminalStore(t, filepath.Join(dir, "k.db"))
	defer st.Close()
	sock := filepath.Join(dir, "kiumtapd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- localapi.Serve(ctx, sock, localapi.Handler(st, time.Now, nil)) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"status", "-socket", sock}, &out, &errOut)
		if err == nil {
			for _, want := range []string{"mangwon1-door", "revision 3", "inside today  1", "c1 김민준 since", "3 events waiting"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("status lacks %q:\n%s", want, out.String())
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the socket, with a deadline
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"events", "-socket", sock, "-day", "today", "-outcome", "not_in_use", "-json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var evs []localapi.Event
	if err := json.Unmarshal(out.Bytes(), &evs); err != nil || len(evs) != 1 || evs[0].Child != "c2" || evs[0].Reason != firmware.ReasonNoBooking || evs[0].ID != "mangwon1-door-2" {
		t.Errorf("events -json: %v %+v\n%s", err, evs, out.String())
	}
	// Staff read labels, not codes.
	out.Reset()
	if err := run(context.Background(), []string{"events", "-socket", sock, "-day", "today", "-outcome", "not_in_use"}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), "이용중 아님") || !strings.Contains(out.String(), "예약 없음") || strings.Contains(out.String(), "no_booking") {
		t.Errorf("events: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"roster", "show", "-socket", sock}, &out, &errOut); err != nil || !strings.Contains(out.String(), "regular in_use") {
		t.Errorf("roster show: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"events", "-socket", sock, "-outcome", "arrived"}, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("bad outcome: %v", err)
	}
	if err := run(context.Background(), []string{"status", "-socket", filepath.Join(dir, "none.sock")}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "-store FILE") {
		t.Errorf("no daemon: %v", err)
	}
}

func TestQueriesOnAStoppedTerminal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	terminalStore(t, path).Close()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"events", "-store", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 4 || !strings.Contains(out.String(), "미등록 카드") {
		t.Errorf("events table:\n%s", out.String())
	}
	// A read does not count as a boot of the terminal.
	out.Reset()
	run(context.Background(), []string{"status", "-store", path}, &out, &errOut)
	if !strings.Contains(out.String(), "(boot 1)") {
		t.Errorf("status:\n%s", out.String())
	}
}

// kiumctl status says whether the link to the portal is up, and, while the
// portal refuses the terminal's events, why and since when.
func TestPrintStatusLink(t *testing.T) {
	since := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	var out strings.Builder
	printStatus(&out, localapi.Status{Device: "door", Link: &uplink.Link{Broker: "ssl://mqtt.kium.example:8883", Connected: true, Since: since,
		Refused: &protocol.Refusal{Seq: 27, Reason: `unknown centre "mangwon1"`, Since: since, Count: 3}}})
	for _, want := range []string{"portal\tconnected since 2026-11-23 15:00:00, broker ssl://mqtt.kium.example:8883; last ack never",
		`EVENTS REFUSED	the portal refused this terminal's events (3 refusals) since 2026-11-23 15:00:00, from event 27: unknown centre "mangwon1"`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printStatus(&out, localapi.Status{Device: "door", Link: &uplink.Link{Broker: "tcp://b:1883", Since: since, LastError: "connecting: not Authorized: the broker refused this terminal"}})
	if !strings.Contains(out.String(), "DOWN since 2026-11-23 15:00:00") || !strings.Contains(out.String(), "last error: connecting: not Authorized") {
		t.Fatalf("a link down:\n%s", out.String())
	}
}
