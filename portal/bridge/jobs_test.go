package bridge

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/protocol"
)

// Texts go to guardians who want them, for arrivals, departures and
// automatic check-outs (held when so configured); refused taps text no one.
func TestJobsFor(t *testing.T) {
	src := &source.Source{Roster: &firmware.Roster{Centre: firmware.Centre{ID: "m1", Name: "망원1동"}},
		Guardians: map[string][]source.Guardian{"c1": {{Phone: "01012345678", Texts: true}, {Phone: "01099998888", Texts: false}, {Phone: "01055556666", Texts: true}}}}
	for _, hold := range []string{"text", "hold"} {
		b := &Bridge{o: Options{AutoCheckOut: hold, Now: time.Now}, sources: map[string]*source.Source{"m1": src}}
		for _, tc := range []struct {
			outcome firmware.Outcome
			jobs    int
		}{
			{firmware.CheckIn, 2}, {firmware.CheckOut, 2}, {firmware.AutoCheckOut, 2},
			{firmware.Duplicate, 0}, {firmware.NoData, 0}, {firmware.NotInUse, 0}, {firmware.UnknownCard, 0}, {firmware.ReplacedCard, 0},
		} {
			jobs := b.jobsFor(&protocol.Event{ID: "d-1", Centre: "m1", Device: "d", Child: "c1", Outcome: string(tc.outcome)})
			if len(jobs) != tc.jobs {
				t.Fatalf("%s, %s: %d texts, want %d", hold, tc.outcome, len(jobs), tc.jobs)
			}
			for _, j := range jobs {
				want := JobPending
				if tc.outcome == firmware.AutoCheckOut && hold == "hold" {
					want = JobHeld
				}
				if j.State != want || j.To == "01099998888" {
					t.Fatalf("%s, %s: %+v", hold, tc.outcome, j)
				}
			}
		}
		if jobs := b.jobsFor(&protocol.Event{ID: "d-2", Centre: "zz", Child: "c1", Outcome: "check_in"}); len(jobs) != 0 {
			t.Fatal("texts for an unknown centre")
		}
	}
}

// flaky answers garbage first, then hangs past the client's patience, then
// takes the text.
// A roster change is recorded as the next revision before it goes out,
// once: trying again while offline does not make another revision, and a
// real change later does.
func TestPublishRecordsFirst(t *testing.T) {
	st, err := OpenStore(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	r := &firmware.Roster{Revision: 7, Centre: firmware.Centre{ID: "m1", Name: "망원1동", Terms: []firmware.Term{{Name: "t", From: mk("2026-01-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 600, End: 1100}}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &Bridge{o: Options{Store: st, Now: time.Now}, db: st.Contract(), owner: "test", log: slog.New(slog.DiscardHandler), sources: map[string]*source.Source{"m1": {Roster: r}}}
	rev := func() uint64 {
		p, err := st.Published("m1")
		if err != nil || p == nil {
			t.Fatalf("published: %v", err)
		}
		return p.Snapshot.Roster.Revision
	}
	for range 2 {
		if err := b.Publish("m1"); err == nil || !strings.Contains(err.Error(), "not connected") {
			t.Fatalf("offline publish: %v", err)
		}
		if rev() != 7 {
			t.Fatalf("revision %d, want 7 (the source's, the first time)", rev())
		}
	}
	r2 := *r
	r2.Children = append([]firmware.Child{}, r.Children...)
	r2.Children = append(r2.Children, firmware.Child{ID: "c2", Name: "이서연"})
	r2.Validate()
	b.sources["m1"] = &source.Source{Roster: &r2}
	b.Publish("m1")
	p, _ := st.Published("m1")
	if p.Snapshot.Roster.Revision != 8 || p.Delta == nil || p.Delta.Base != 7 || len(p.Delta.Children.Upsert) != 1 {
		t.Fatalf("after a change: %+v", p)
	}
}
