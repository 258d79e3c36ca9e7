package bridge

import (
	"path/filepath"
	"testing"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Texts go to guardians who want them, for arrivals, departures and
// automatic check-outs (held when so configured); refused taps text no one.
func TestJobsFor(t *testing.T) {
	src := centreSource("m1")
	src.Guardians = map[string][]source.Guardian{"c1": {{Phone: "01012345678", Texts: true}, {Phone: "01099998888", Texts: false}, {Phone: "01055556666", Texts: true}}}
	for _, hold := range []string{"text", "hold"} {
		h := newHarness(t)
		if err := source.Write(filepath.Join(h.dir, "m1.json"), src); err != nil {
			t.Fatal(err)
		}
		if _, err := h.b.bind.Reload(); err != nil {
			t.Fatal(err)
		}
		b := h.b
		b.o.AutoCheckOut = hold
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
				want := store.JobPending
				if tc.outcome == firmware.AutoCheckOut && hold == "hold" {
					want = store.JobHeld
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
