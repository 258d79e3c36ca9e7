package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/bridge"
)

// kiumctl alerts and absent against a running bridge: c1 and c2 are
// booked all day and have not arrived, so each gets a not-arrived alert
// (c3's booking is only 이용예정: none); c2 marked absent tomorrow gets
// none then; a mark for a child not booked is refused with why.
func TestAlertsAndAbsent(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{Users: map[string]string{"portal": portalPass}})
	// The day's windows start at 00:00: the alerts are due at 00:30 KST.
	now := func() time.Time {
		t := time.Now()
		if firmware.ClockOf(t) < 60 {
			t = t.Add(time.Hour)
		}
		return t
	}
	_, _, sock := runCardBridge(t, mq.URL(), bridge.Options{Now: now, NotArrivedEvery: 50 * time.Millisecond})
	if _, err := waitSocket(t, sock); err != nil {
		t.Fatal(err)
	}
	kiumctl := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := run(context.Background(), append(args, "-bridge", sock), &out, &errs)
		return out.String() + errs.String(), err
	}
	var out string
	wait.For(t, 20*time.Second, "the not-arrived alerts of c1 and c2", func() bool {
		out, _ = kiumctl("alerts", "-centre", "mangwon1")
		return strings.Count(out, "NOT ARRIVED (미등원)") == 2
	})
	t.Logf("kiumctl alerts -centre mangwon1:\n%s", out)
	for _, want := range []string{"c1  ", "김*준", "00:00–24:00", "00:30", "not told"} {
		if !strings.Contains(out, want) {
			t.Errorf("alerts lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "c3") || strings.Contains(out, "김민준") {
		t.Errorf("alerts list c3 (only 이용예정) or an unmasked name:\n%s", out)
	}
	tomorrow := firmware.DateOf(now()).AddDays(1).String()
	if out, err := kiumctl("absent", "-centre", "mangwon1", "-child", "c2", "-day", tomorrow, "-by", "mangwon.kim", "-note", "가족 여행"); err != nil || !strings.Contains(out, "c2 marked absent (결석) "+tomorrow) {
		t.Fatalf("absent: %v\n%s", err, out)
	}
	out, err := kiumctl("alerts", "-centre", "mangwon1", "-day", tomorrow, "-json")
	var v api.AlertsView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || len(v.Absent) != 1 || v.Absent[0].Child != "c2" || v.Absent[0].By != "mangwon.kim" || v.Absent[0].Note != "가족 여행" || len(v.Alerts) != 0 {
		t.Errorf("alerts of tomorrow: %v\n%s", err, out)
	}
	if _, err := kiumctl("absent", "-centre", "mangwon1", "-child", "c1", "-by", ""); err == nil || !strings.Contains(err.Error(), "-by NAME") {
		t.Errorf("absent with nobody marking it: %v", err)
	}
	if _, err := kiumctl("absent", "-centre", "mangwon1", "-child", "c3", "-by", "k"); err == nil || !strings.Contains(err.Error(), "not booked") {
		t.Errorf("absent for a child not booked: %v", err)
	}
	if _, err := kiumctl("absent", "-centre", "mangwon1", "-child", "c2", "-day", "12/25", "-by", "k"); err == nil || !strings.Contains(err.Error(), "2026-12-01") {
		t.Errorf("a bad day: %v", err)
	}
	if _, err := kiumctl("absent", "-centre", "mangwon1"); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("no child: %v", err)
	}
	if _, err := kiumctl("alerts", "-centre", "nowhere"); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("an unknown centre: %v", err)
	}
	if out, err := kiumctl("absent", "-centre", "mangwon1", "-child", "c2", "-day", tomorrow, "-undo"); err != nil || !strings.Contains(out, "no longer marked absent") {
		t.Errorf("absent -undo: %v\n%s", err, out)
	}
	var s api.Status
	if err := api.Ask(context.Background(), sock, "GET", "/status", nil, &s); err != nil || len(s.NotArrived) != 2 {
		t.Errorf("status lists %d not arrived: %v", len(s.NotArrived), err)
	}
}
