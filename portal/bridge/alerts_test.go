package bridge_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// The not-arrived alert through the bridge: c1, c2 and c5 are booked all
// day (c3 only 이용예정, c4 not today), none has arrived, the centre tells
// guardians: one alert each and one message per guardian who gets texts,
// sent. The bridge restarts on its store: nothing is raised or sent
// again. c1 then arrives: its alert ends and its guardians get the arrival
// text as usual.
func TestNotArrivedAcrossARestart(t *testing.T) {
	mq := startTestBroker(t)
	dir := t.TempDir()
	today := firmware.DateOf(time.Now())
	src := testSource(today)
	src.NotArrived = &source.NotArrived{GraceMinutes: 30, Guardians: true}
	raw, _ := json.Marshal(src)
	if err := os.WriteFile(filepath.Join(dir, "mangwon1.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.Contract()
	// The windows start at 00:00 KST: the alerts are due at 00:30.
	now := func() time.Time {
		t := time.Now()
		if firmware.ClockOf(t) < 60 {
			t = t.Add(time.Hour)
		}
		return t
	}
	start := func(id string) (*bridge.Bridge, func()) {
		return runBridge(t, bridge.Options{Broker: mq.URL(), Password: portalPass, ClientID: id, Key: portalKey, DB: db, SourceDir: dir,
			Provider: sms.NewConsole(discard{}), From: "0212345678", Now: now, NotArrivedEvery: 20 * time.Millisecond})
	}
	texts := func(kind string) (sent, all int) {
		db.CentreJobs(context.Background(), "mangwon1", today.At(0), func(j store.Job) bool {
			if j.Kind == kind {
				all++
				if j.State == store.JobSent {
					sent++
				}
			}
			return true
		})
		return sent, all
	}
	alerts := func(b *bridge.Bridge) *api.AlertsView {
		v, err := b.Alerts(context.Background(), "mangwon1", "")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	b, stop := start("first")
	wait.For(t, 20*time.Second, "3 alerts and 4 guardians' messages sent", func() bool {
		sent, _ := texts("not_arrived")
		return len(alerts(b).Alerts) == 3 && sent == 4
	})
	stop()
	b, stop = start("second")
	defer stop()
	c := publisher(t, mq.URL())
	arrival := protocol.Event{V: 1, ID: "door-1", Centre: "mangwon1", Device: "door", Log: "L", Seq: 1, Time: now(), ClockSynced: true, BootID: "b",
		Card: firmware.CardKey(centreKey, uids["c1"]), Child: "c1", Outcome: string(firmware.CheckIn), Reason: string(firmware.ReasonArrival), RosterRev: 1}
	var sentAt time.Time
	wait.For(t, 20*time.Second, "c1's alert ended by its arrival, and its arrival texts sent", func() bool {
		if time.Since(sentAt) > 2*time.Second { // as a terminal sends again while no ack comes
			publishEvents(t, c, arrival)
			sentAt = time.Now()
		}
		for _, a := range alerts(b).Alerts {
			if a.Child == "c1" && !a.Arrived.IsZero() {
				sent, _ := texts("arrival")
				return sent == 2
			}
		}
		return false
	})
	v := alerts(b)
	open := 0
	for _, a := range v.Alerts {
		if a.Arrived.IsZero() {
			open++
		}
	}
	if len(v.Alerts) != 3 || open != 2 {
		t.Errorf("after the restart and c1's arrival: %+v", v.Alerts)
	}
	if sent, all := texts("not_arrived"); sent != 4 || all != 4 {
		t.Errorf("guardians' not-arrived messages: %d sent of %d, want 4 once each", sent, all)
	}
	if st := b.Status(); len(st.NotArrived) != 2 {
		t.Errorf("status: %d open alerts, want 2 (c2, c5)", len(st.NotArrived))
	}
}

// runBridge runs a bridge until the stop it returns is called, or the
// test ends.
func runBridge(t *testing.T, o bridge.Options) (*bridge.Bridge, func()) {
	t.Helper()
	b, err := bridge.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	stop := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return b, stop
}
