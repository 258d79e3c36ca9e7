package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"kiumtap/internal/pgtest"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// BenchmarkPut: what one flush of the bridge's ingest costs, 100
// terminals' taps in one call, each with two texts: events/s.
func BenchmarkPut(b *testing.B) {
	s := open(b, pgtest.Shared(b).NewDatabase(b))
	defer s.Close()
	plan := store.Plan{Texts: func(e *protocol.Event) []store.Job {
		var js []store.Job
		for g := range 2 {
			js = append(js, store.Job{ID: fmt.Sprintf("%s/%d", e.ID, g), EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: "arrival",
				At: e.Time, To: "01012345678", Created: e.Time, State: store.JobPending, NextAt: e.Time})
		}
		return js
	}}
	t0 := time.Now()
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		evs := make([]protocol.Event, 100)
		for d := range evs {
			dev := fmt.Sprintf("door%d", d)
			evs[d] = protocol.Event{V: 1, ID: fmt.Sprintf("%s-%d", dev, i+1), Centre: "mangwon1", Device: dev, Log: "L1", Seq: uint64(i + 1),
				Time: t0.Add(time.Duration(i) * time.Second), ClockSynced: true, Child: "c1", Outcome: "check_in", Reason: "in_window", RosterRev: 1}
		}
		if _, err := s.Put(ctx, evs, plan); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "events/s")
}
