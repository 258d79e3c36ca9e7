package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// countingEvents counts the events the store hands out.
type countingEvents struct {
	store.Store
	read int
}

func (c *countingEvents) EventsAfter(ctx context.Context, centre string, after map[store.LogID]uint64, fn func(protocol.Event) bool) error {
	return c.Store.EventsAfter(ctx, centre, after, func(e protocol.Event) bool { c.read++; return fn(e) })
}

var monday = time.Date(2026, 11, 30, 15, 0, 0, 0, firmware.KST)

func dayStart(t time.Time) time.Time {
	d := t.In(firmware.KST)
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, firmware.KST)
}

// A reader of the day reads a centre's history once, then only what was stored since
// it last looked; at midnight (KST) yesterday's events leave the day.
func TestDayEventsReadOnlyWhatIsNew(t *testing.T) {
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := &countingEvents{Store: b.Contract()}
	ctx := context.Background()
	put := func(seq uint64, at time.Time) {
		t.Helper()
		e := protocol.Event{V: 1, ID: "door-" + at.Format("150405"), Centre: "mangwon1", Device: "door", Log: "L", Seq: seq, Time: at, Child: "c1", Outcome: "check_in"}
		if _, err := st.Put(ctx, []protocol.Event{e}, store.Plan{}); err != nil {
			t.Fatal(err)
		}
	}
	yesterday := monday.AddDate(0, 0, -1)
	put(1, yesterday)
	put(2, monday)
	var d store.DayEvents
	read := func(now time.Time, want, readNow int) {
		t.Helper()
		before := st.read
		evs, err := d.Read(ctx, st, "mangwon1", dayStart(now))
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != want || st.read-before != readNow {
			t.Fatalf("at %v: %d events of the day (want %d), %d read from the store (want %d)", now, len(evs), want, st.read-before, readNow)
		}
	}
	read(monday, 1, 2)                  // the history, once
	read(monday, 1, 0)                  // nothing new
	put(3, monday.Add(time.Minute))     // one tap
	read(monday, 2, 1)                  // that one only
	thursday := monday.AddDate(0, 0, 1) // midnight passes
	put(4, thursday)
	read(thursday, 1, 1)
}
