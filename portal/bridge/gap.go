package bridge

import (
	"context"
	"fmt"

	"kiumtap/portal/api"
	"kiumtap/portal/ingest"
)

// Gaps: a terminal deletes an event once the portal acknowledges it. If
// the bridge's store is then restored from an older backup, the portal
// lacks events the terminal no longer has; the terminal goes on sending
// from beyond the gap, and the ingest holds everything after it. The
// ingest reports such a log as stalled (ingest.Stall); an operator looks
// at it (kiumctl gaps) and records the missing events as lost at the
// portal (kiumctl gap accept), and the events beyond are taken at once.

// Gaps returns a centre's stalled logs and the gaps recorded for it.
func (b *Bridge) Gaps(centre string) (*api.GapsView, error) {
	if !b.serves(centre) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	v := &api.GapsView{Stalled: []ingest.Stall{}, Recorded: []api.Gap{}}
	for _, s := range b.in.Stalled(b.o.Now()) {
		if s.Centre == centre {
			v.Stalled = append(v.Stalled, s)
		}
	}
	gs, err := b.db.Gaps(context.Background(), centre)
	if err != nil {
		return nil, err
	}
	v.Recorded = append(v.Recorded, gs...)
	return v, nil
}

// AcceptGap records the missing events of a stalled log as lost at the
// portal, in one transaction with the log's new last sequence, then lets
// the ingest take the events beyond. It refuses a log that is not
// stalled, and a Through other than the stall's: the terminal still has
// every event after it, and accepting less or more would lose some.
func (b *Bridge) AcceptGap(req api.GapRequest) (*api.Gap, error) {
	if !b.serves(req.Centre) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, req.Centre)
	}
	if req.By == "" {
		return nil, badRequest("who accepts the gap (by) is required: it goes into the record")
	}
	var st *ingest.Stall
	for _, s := range b.in.Stalled(b.o.Now()) {
		if s.Centre == req.Centre && s.Device == req.Device {
			st = &s
			break
		}
	}
	switch {
	case st == nil:
		return nil, fmt.Errorf("%w %s of %s: no stalled event log (a gap is reported once the terminal has sent only later events for %v; kiumctl gaps lists them)",
			api.ErrDevice, req.Device, req.Centre, b.in.StallAfter())
	case req.Through != st.Lowest-1:
		return nil, badRequest(fmt.Sprintf("the portal has %s's events up to %d and the terminal sends from %d: the gap is %d..%d; give -through %d",
			req.Device, st.Last, st.Lowest, st.Last+1, st.Lowest-1, st.Lowest-1))
	}
	g := &api.Gap{Centre: req.Centre, Device: req.Device, Log: st.Log, From: st.Last + 1, To: req.Through, By: req.By, Recorded: b.o.Now().UTC()}
	if err := b.db.RecordGap(context.Background(), *g); err != nil {
		return nil, err
	}
	b.in.Skip(g.Centre, g.Device, g.Log, g.To)
	b.log.Warn("bridge: events recorded as lost at the portal (a store restored from a backup?)", "device", g.Device, "log", g.Log, "from", g.From, "to", g.To, "by", g.By)
	return g, nil
}
