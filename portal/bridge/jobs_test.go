package bridge

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

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

// A text that failed for a wrong number goes again to the corrected one,
// which the guardian's entry in the source takes too (Q22); a text of
// another centre, one not failed, or a number that is not one is refused.
func TestResendText(t *testing.T) {
	h := newHarness(t, "m1")
	ctx := context.Background()
	e := protocol.Event{V: 1, ID: "T-1-1", Centre: "m1", Device: "T-1", Log: "LT-1", Seq: 1, Time: t0, ClockSynced: true, Child: "c1", Outcome: "check_in", Reason: "arrival", RosterRev: 1}
	h.put(e)
	jobs, err := h.b.db.Claim(ctx, "t", h.now, 5, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].To != "01012345678" {
		t.Fatalf("claim: %+v %v", jobs, err)
	}
	id := jobs[0].ID
	if err := h.b.ResendText(ctx, "m1", id, "010-9999-8888"); !errors.Is(err, store.ErrNotRetriable) {
		t.Errorf("a text being sent: %v", err)
	}
	jobs[0].State, jobs[0].Reason = store.JobFailed, "invalid number"
	if err := h.b.db.Finish(ctx, "t", jobs...); err != nil {
		t.Fatal(err)
	}
	if err := h.b.ResendText(ctx, "m2", id, "010-9999-8888"); !errors.Is(err, store.ErrNotRetriable) {
		t.Errorf("another centre's text: %v", err)
	}
	if err := h.b.ResendText(ctx, "m1", id, "not a number"); err == nil {
		t.Error("a number that is not one: no error")
	}
	if err := h.b.ResendText(ctx, "m1", id, "010-9999-8888"); err != nil {
		t.Fatal(err)
	}
	src, err := source.Load(filepath.Join(h.dir, "m1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if g := src.Guardians["c1"]; len(g) != 1 || g[0].Phone != "01099998888" {
		t.Errorf("the guardian in the source: %+v", g)
	}
	again, err := h.b.db.Claim(ctx, "t", h.now, 5, time.Minute)
	if err != nil || len(again) != 1 || again[0].ID != id || again[0].To != "01099998888" {
		t.Errorf("the text again: %+v %v", again, err)
	}
}
