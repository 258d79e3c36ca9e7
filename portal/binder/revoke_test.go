package binder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
)

// portalKey is the applied_bindings key of the store's portal log, ""
// before its first change.
func (h *harness) portalKey() string {
	h.t.Helper()
	var id string
	err := h.st.Contract().ViewRegistry(context.Background(), func(tx store.RegistryTx) error {
		v, err := tx.Get(tPortal, []byte("log"))
		id = string(v)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if id == "" {
		return ""
	}
	return firmware.AppliedKey(portalDevice, id)
}

// keep copies centre's source as it is now to a file of its own, to push
// later.
func (h *harness) keep(centre string) string {
	h.t.Helper()
	raw, err := os.ReadFile(filepath.Join(h.dir, centre+".json"))
	if err != nil {
		h.t.Fatal(err)
	}
	file := filepath.Join(h.t.TempDir(), centre+".json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return file
}

func (h *harness) revoke(centre, child string) api.Change {
	h.t.Helper()
	c, err := h.b.Revoke(centre, child, "op.kim")
	if err != nil || c.Outcome != api.ChangeApplied {
		h.t.Fatalf("revoking %s at %s: %+v, %v", child, centre, c, err)
	}
	return c
}

type cardWant struct {
	child string
	state firmware.CardState
}

// A revoke made at the portal is counted in applied_bindings under the
// portal's own log, so a source pushed from a copy older than it gets it
// again, in the order the bridge applied it among terminals' bindings:
// whichever came last at the portal wins, whatever the bindings' times.
func TestRevokeSurvivesOlderCopy(t *testing.T) {
	revokeC1 := func(h *harness) { h.revoke("m1", "c1") }
	bindX := func(at time.Duration) func(h *harness) {
		return func(h *harness) { h.put(bound("m1", "T-1", 1, "c1", "X", t0.Add(at))) }
	}
	later := func(h *harness) { h.now = h.now.Add(time.Hour) } // the revoke is at t0+1h
	for _, tc := range []struct {
		name string
		// steps change the source; the copy pushed at the end is the
		// source as it was after the first kept of them.
		steps []func(h *harness)
		kept  int
		want  map[string]cardWant // by card
	}{
		{"a lost card revoked", []func(*harness){revokeC1}, 0,
			map[string]cardWant{"c1": {"c1", firmware.CardRevoked}}},
		{"revoked, then a spare bound at a terminal", []func(*harness){revokeC1, later, bindX(2 * time.Hour)}, 0,
			map[string]cardWant{"c1": {"c1", firmware.CardRevoked}, "X": {"c1", firmware.CardActive}}},
		// The terminal was offline: the spare was bound before the revoke
		// was made, but reached the portal after it, and applied on top.
		{"revoked, then a spare bound earlier offline arrives", []func(*harness){revokeC1, bindX(30 * time.Minute)}, 0,
			map[string]cardWant{"c1": {"c1", firmware.CardRevoked}, "X": {"c1", firmware.CardActive}}},
		{"a spare bound at a terminal, then revoked", []func(*harness){bindX(30 * time.Minute), revokeC1}, 0,
			map[string]cardWant{"c1": {"c1", firmware.CardReplaced}, "X": {"c1", firmware.CardRevoked}}},
		{"a spare bound, then revoked; the copy has the binding", []func(*harness){bindX(30 * time.Minute), revokeC1}, 1,
			map[string]cardWant{"c1": {"c1", firmware.CardReplaced}, "X": {"c1", firmware.CardRevoked}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "m1")
			var older string
			for i, step := range tc.steps {
				if i == tc.kept {
					older = h.keep("m1")
				}
				step(h)
			}
			check := func(when string) {
				t.Helper()
				r := h.source("m1")
				for card, w := range tc.want {
					if ch, st := cardState(r, cardKey("m1", card)); ch != w.child || st != w.state {
						t.Errorf("%s: card %s is %s's, %s; want %s's, %s", when, card, ch, st, w.child, w.state)
					}
				}
				if r.Applied[h.portalKey()] != 1 {
					t.Errorf("%s: applied_bindings %v, want the portal's change 1 taken in", when, r.Applied)
				}
			}
			check("before the push")
			hist := h.history("m1", "c1")

			h.push("m1", older)
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			check("after pushing an older copy")
			if got := h.history("m1", "c1"); len(got) != len(hist) {
				t.Errorf("the push added audit records:\nbefore %+v\nafter  %+v", hist, got)
			}
			p, err := h.published("m1")
			if err != nil || p == nil {
				t.Fatalf("published: %+v, %v", p, err)
			}
			if got, want := sortedCards(p.Snapshot.Roster), sortedCards(h.source("m1")); !slices.Equal(got, want) {
				t.Errorf("published cards:\n%+v\nwant the source's\n%+v", got, want)
			}
		})
	}
}

// Killed after planning a revoke, or after writing its source but before
// the job is done: run again, the source is written as once (the write is
// skipped, its applied_bindings has the change), with one audit record of
// the revoke and one of the card it freed, and an older copy pushed later
// does not undo it.
func TestRevokeKilled(t *testing.T) {
	for _, point := range []string{"planned", "written"} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t, "m1", "m2")
			older := h.keep("m1")
			h.put(bound("m1", "T-1", 1, "c1", "X", t0))                  // wins
			h.put(bound("m2", "T-9", 1, "c2", "X", t0.Add(time.Minute))) // loses
			crash := errors.New("killed")
			h.fail = func(p string) error {
				if p == point {
					return crash
				}
				return nil
			}
			if _, err := h.b.Revoke("m1", "c1", "op.kim"); !errors.Is(err, crash) {
				t.Fatalf("revoke: %v", err)
			}
			key := h.portalKey()
			if got := h.source("m1").Applied[key]; (point == "written") != (got == 1) {
				t.Fatalf("killed at %s: the portal's change in applied_bindings: %d", point, got)
			}
			written := map[string][]byte{}
			for _, c := range []string{"m1", "m2"} {
				written[c], _ = os.ReadFile(filepath.Join(h.dir, c+".json"))
			}

			// Reading the sources again, a source behind is reconciled;
			// the second drain finds nothing left.
			h.restart()
			for range 2 {
				if err := h.b.Drain(); err != nil {
					t.Fatal(err)
				}
			}
			if h.queued() {
				t.Fatal("a job is left")
			}
			if point == "written" {
				for _, c := range []string{"m1", "m2"} {
					if raw, _ := os.ReadFile(filepath.Join(h.dir, c+".json")); !bytes.Equal(raw, written[c]) {
						t.Errorf("%s's source written again", c)
					}
				}
			}
			check := func(when string) {
				t.Helper()
				r1, r2 := h.source("m1"), h.source("m2")
				if _, st := cardState(r1, cardKey("m1", "X")); st != firmware.CardRevoked {
					t.Errorf("%s: X at m1 %s, want revoked", when, st)
				}
				if _, st := cardState(r2, cardKey("m2", "X")); st != firmware.CardRevoked {
					t.Errorf("%s: X at m2 %s, want revoked (freed)", when, st)
				}
				if r1.Applied[key] != 1 || r1.Applied["T-1/LT-1"] != 1 {
					t.Errorf("%s: m1's applied_bindings %v", when, r1.Applied)
				}
				if hist := h.history("m1", "c1"); len(hist) != 2 || hist[1].Outcome != api.ChangeApplied || hist[1].Flow != firmware.FlowPortal || hist[1].OldCard != cardKey("m1", "X") {
					t.Errorf("%s: m1 c1 history %+v", when, hist)
				}
				if hist := h.history("m2", "c2"); len(hist) != 2 || hist[1].Outcome != api.ChangeReleased {
					t.Errorf("%s: m2 c2 history %+v", when, hist)
				}
			}
			check("run again")
			h.push("m1", older)
			if err := h.b.Drain(); err != nil {
				t.Fatal(err)
			}
			check("after pushing an older copy")
		})
	}
}

// A source whose applied_bindings of the portal's log is above the
// store's (the store restored from an older backup, or a source edited by
// hand): the next revoke still counts above it, and is written.
func TestRevokeAboveSourceMark(t *testing.T) {
	h := newHarness(t, "m1")
	h.revoke("m1", "c1")
	key := h.portalKey()
	src, err := source.Load(filepath.Join(h.dir, "m1.json"))
	if err != nil {
		t.Fatal(err)
	}
	src.Roster.Applied[key] = 5
	file := filepath.Join(t.TempDir(), "m1.json")
	if err := source.Write(file, src); err != nil {
		t.Fatal(err)
	}
	h.push("m1", file)
	if err := h.b.Drain(); err != nil {
		t.Fatal(err)
	}
	h.revoke("m1", "c2")
	r := h.source("m1")
	if _, st := cardState(r, cardKey("m1", "c2")); st != firmware.CardRevoked {
		t.Fatalf("c2's card %s, want revoked", st)
	}
	if r.Applied[key] != 6 {
		t.Fatalf("applied_bindings %v, want %s at 6", r.Applied, key)
	}
}

// A binding stored before a revoke is decided applies first, even stored
// after the revoke's drain: the revoke is decided on top of it, so the
// order the bridge records is the order it wrote.
func TestRevokeAfterQueuedBinding(t *testing.T) {
	h := newHarness(t, "m1")
	if err := h.store(bound("m1", "T-1", 1, "c1", "X", t0)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.b.planRevoke("m1", "c1", "op.kim"); !errors.Is(err, errQueuedMeanwhile) {
		t.Fatalf("planning a revoke with a binding queued: %v", err)
	}
	if hist := h.history("m1", "c1"); len(hist) != 0 || h.portalKey() != "" {
		t.Fatalf("a revoke not planned recorded %+v, portal log %q", hist, h.portalKey())
	}
	if c := h.revoke("m1", "c1"); c.OldCard != cardKey("m1", "X") {
		t.Fatalf("revoked %s, want the card just bound", c.OldCard)
	}
	r := h.source("m1")
	if _, st := cardState(r, cardKey("m1", "c1")); st != firmware.CardReplaced {
		t.Errorf("c1's old card %s, want replaced", st)
	}
	if _, st := cardState(r, cardKey("m1", "X")); st != firmware.CardRevoked {
		t.Errorf("X %s, want revoked", st)
	}
	if !strings.HasPrefix(h.portalKey(), portalDevice+"/") || r.Applied[h.portalKey()] != 1 || r.Applied["T-1/LT-1"] != 1 {
		t.Errorf("applied_bindings %v", r.Applied)
	}
}
