package binder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/pgtest"
	"kiumtap/portal/api"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// instance is one kiumbridge's binder, on its own handle of the store and
// its own view of the sources kept there.
type instance struct {
	st store.Store
	b  *Binder
}

func startInstance(t *testing.T, st store.Store, now func() time.Time) *instance {
	t.Helper()
	b, err := New(Options{Store: st, Sources: source.Stored(st), Key: testKey.Seed(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return &instance{st: st, b: b}
}

// cityEvents are bindings from two centres' terminals that meet: cards X
// and Y bound at both (conflicts decided by time), children's cards
// replaced, one binding of a child the source lacks.
func cityEvents() [][]protocol.Event {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	return [][]protocol.Event{
		{bound("m1", "T-1", 1, "c1", "X", at(5))},
		{bound("m2", "T-9", 1, "c2", "X", at(1))}, // earlier: wins X
		{bound("m1", "T-2", 1, "c2", "Y", at(7))},
		{bound("m2", "T-9", 2, "c3", "Y", at(9))}, // later: loses Y
		{bound("m1", "T-1", 2, "c9", "c3", at(11))},
		{bound("m1", "T-2", 2, "c3", "c3", at(12))},
	}
}

// Two instances on one store, each with its own handle and its own view
// of the sources kept in the store (hosts without a shared directory),
// store bindings and drain the jobs at the same time: each binding is
// decided once, the sources both see are the same, and they equal what
// one instance alone makes of the same events.
func TestSeveralInstances(t *testing.T) {
	now := func() time.Time { return t0.Add(time.Hour) }
	for _, kind := range []string{"bbolt", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			open := func(t *testing.T) (store.Store, store.Store) {
				if kind == "bbolt" {
					s, err := boltstore.Open(filepath.Join(t.TempDir(), "b.db"))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s.Contract(), s.Contract() // one process holds a bbolt file
				}
				dsn := pgtest.Shared(t).NewDatabase(t)
				var out [2]store.Store
				for i := range out {
					s, err := pgstore.Open(context.Background(), dsn)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					out[i] = s
				}
				return out[0], out[1]
			}
			push := func(t *testing.T, st store.Store) {
				dir := t.TempDir()
				for _, c := range []string{"m1", "m2"} {
					f := filepath.Join(dir, c+".json")
					if err := source.Write(f, centreSource(c)); err != nil {
						t.Fatal(err)
					}
					if _, err := source.PushTo(context.Background(), source.Stored(st), "", "", f, now()); err != nil {
						t.Fatal(err)
					}
				}
			}

			// One instance alone: what the events make.
			s1, _ := open(t)
			push(t, s1)
			alone := startInstance(t, s1, now)
			for _, evs := range cityEvents() {
				if _, err := s1.Put(context.Background(), evs, store.Plan{Binding: alone.b.Job}); err != nil {
					t.Fatal(err)
				}
				if err := alone.b.Drain(); err != nil {
					t.Fatal(err)
				}
			}

			// Two at once.
			a, b := open(t)
			push(t, a)
			ia, ib := startInstance(t, a, now), startInstance(t, b, now)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i, evs := range cityEvents() {
				in := []*instance{ia, ib}[i%2] // each event stored through one of them
				if _, err := in.st.Put(context.Background(), evs, store.Plan{Binding: in.b.Job}); err != nil {
					t.Fatal(err)
				}
				for _, in := range []*instance{ia, ib} {
					wg.Add(1)
					go func() { defer wg.Done(); errs <- in.b.Drain() }()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if j, err := a.NextBinding(context.Background()); err != nil || j != nil {
				t.Fatalf("a job left: %+v, %v", j, err)
			}
			for _, centre := range []string{"m1", "m2"} {
				want := alone.b.Source(centre).Roster
				for name, in := range map[string]*instance{"a": ia, "b": ib} {
					if _, err := in.b.Reload(); err != nil {
						t.Fatal(err)
					}
					got := in.b.Source(centre).Roster
					if !slices.Equal(sortedCards(got), sortedCards(want)) {
						t.Errorf("%s: %s's cards\n%+v\nwant (one instance alone)\n%+v", centre, name, sortedCards(got), sortedCards(want))
					}
				}
				hist, err := ib.b.History(context.Background(), centre, "")
				if err != nil {
					t.Fatal(err)
				}
				wantHist, _ := alone.b.History(context.Background(), centre, "")
				if outcomes(hist) != outcomes(wantHist) {
					t.Errorf("%s: the audit records\n%s\nwant (one instance alone)\n%s", centre, outcomes(hist), outcomes(wantHist))
				}
			}
			// The conflicts were decided: X is m2's, Y m1's.
			if _, st := cardState(ia.b.Source("m1").Roster, cardKey("m1", "X")); st != firmware.CardConflict {
				t.Errorf("X at m1: %s, want conflict", st)
			}
			if _, st := cardState(ib.b.Source("m2").Roster, cardKey("m2", "Y")); st != firmware.CardConflict {
				t.Errorf("Y at m2: %s, want conflict", st)
			}
		})
	}
}

// outcomes lists audit records by child, outcome and device, sorted: one
// line per decision (a decision made twice shows twice).
func outcomes(cs []api.Change) string {
	var lines []string
	for _, c := range cs {
		lines = append(lines, fmt.Sprintf("%s %s %s %s/%d", c.Child, c.Outcome, c.Reason, c.Device, c.Seq))
	}
	slices.Sort(lines)
	return fmt.Sprint(lines)
}
