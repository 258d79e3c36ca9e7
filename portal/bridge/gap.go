package bridge

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"kiumtap/portal/api"
	"kiumtap/portal/ingest"
	"kiumtap/portal/store"
)

// Gaps: a terminal deletes an event once the portal acknowledges it. If
// the bridge's store is then restored from an older backup, the portal
// lacks events the terminal no longer has; the terminal goes on sending
// from beyond the gap, and the ingest holds everything after it. The
// ingest reports such a log as stalled (ingest.Stall); an operator looks
// at it (kiumctl gaps) and records the missing events as lost at the
// portal (kiumctl gap accept), and the events beyond are taken at once.

//
// With several instances a terminal's messages may reach only some of
// them (a broker's dispatch by client ID, or one broker of several), and
// a stall is seen only where they arrive. So each instance shares the
// stalls it sees through the store (the registry's table "stalls",
// refreshed every stallRefresh while they last), and every instance lists
// and accepts them: kiumctl gaps and gap accept answer alike whichever
// bridge they ask.

const (
	tStalls = "stalls" // centre \0 device \0 log → sharedStall
	// stallRefresh is how often an instance writes its stalls again while
	// they last; one unwritten for stallFresh is taken for gone (its
	// instance stopped).
	stallRefresh = 20 * time.Second
	stallFresh   = time.Minute
)

// sharedStall is a stall as an instance shared it.
type sharedStall struct {
	ingest.Stall
	By   string    `json:"by"`   // the instance (its owner name)
	Seen time.Time `json:"seen"` // when it was written
}

func stallKey(s ingest.Stall) []byte { return []byte(s.Centre + "\x00" + s.Device + "\x00" + s.Log) }

// shareStalls writes the stalls this instance sees into the store, when
// they change and every stallRefresh while any lasts, and deletes those
// it wrote that ended.
func (b *Bridge) shareStalls() {
	now := b.o.Now()
	local := b.in.Stalled(now)
	sig := fmt.Sprint(local)
	b.mu.Lock()
	due := sig != b.stallSig || (len(local) > 0 && now.Sub(b.stallAt) >= stallRefresh)
	gone := map[string]bool{}
	for k := range b.stallKeys {
		gone[k] = true
	}
	b.mu.Unlock()
	if !due {
		return
	}
	written := map[string]bool{}
	err := b.db.UpdateRegistry(context.Background(), func(tx store.RegistryTx) error {
		for _, s := range local {
			raw, err := json.Marshal(sharedStall{Stall: s, By: b.owner, Seen: now.UTC()})
			if err != nil {
				return err
			}
			if err := tx.Put(tStalls, stallKey(s), raw); err != nil {
				return err
			}
			written[string(stallKey(s))] = true
			delete(gone, string(stallKey(s)))
		}
		for k := range gone {
			if err := tx.Delete(tStalls, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.log.Warn("bridge: sharing the stalled logs with the other instances; trying again in a second", "err", err)
		return
	}
	b.mu.Lock()
	b.stallSig, b.stallAt, b.stallKeys = sig, now, written
	b.mu.Unlock()
}

// stalled is a centre's stalled logs: this instance's, and those other
// instances shared that still hold (fresh, and the log not moved since).
func (b *Bridge) stalled(ctx context.Context, centre string) ([]ingest.Stall, error) {
	now := b.o.Now()
	var out []ingest.Stall
	have := map[string]bool{}
	for _, s := range b.in.Stalled(now) {
		if s.Centre == centre {
			out = append(out, s)
			have[string(stallKey(s))] = true
		}
	}
	var shared []sharedStall
	err := b.db.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		shared = shared[:0]
		return tx.Scan(tStalls, []byte(centre+"\x00"), func(k, v []byte) error {
			var s sharedStall
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("a shared stall %q: %w", k, err)
			}
			shared = append(shared, s)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("the stalls other instances see: %w", err)
	}
	for _, s := range shared {
		if have[string(stallKey(s.Stall))] || now.Sub(s.Seen) > stallFresh {
			continue
		}
		if last, err := b.db.Last(ctx, s.Device, s.Log); err != nil || last != s.Last {
			continue // the log moved on since: that stall is over
		}
		out = append(out, s.Stall)
	}
	slices.SortFunc(out, func(a, b ingest.Stall) int { return cmp.Compare(a.Device+"\x00"+a.Log, b.Device+"\x00"+b.Log) })
	return out, nil
}

// Gaps returns a centre's stalled logs (seen by any instance) and the
// gaps recorded for it.
func (b *Bridge) Gaps(centre string) (*api.GapsView, error) {
	if !b.serves(centre) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	v := &api.GapsView{Stalled: []ingest.Stall{}, Recorded: []api.Gap{}}
	st, err := b.stalled(context.Background(), centre)
	if err != nil {
		return nil, err
	}
	v.Stalled = append(v.Stalled, st...)
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
// stalled (at any instance), and a Through other than the stall's: the
// terminal still has every event after it, and accepting less or more
// would lose some.
func (b *Bridge) AcceptGap(req api.GapRequest) (*api.Gap, error) {
	if !b.serves(req.Centre) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, req.Centre)
	}
	if req.By == "" {
		return nil, badRequest("who accepts the gap (by) is required: it goes into the record")
	}
	stalls, err := b.stalled(context.Background(), req.Centre)
	if err != nil {
		return nil, err
	}
	var st *ingest.Stall
	for _, s := range stalls {
		if s.Device == req.Device {
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
