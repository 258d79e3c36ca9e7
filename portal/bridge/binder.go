package bridge

import (
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/protocol"
)

// registryLabel derives the card registry's key from the signing key: a
// card is known across centres by HMAC-SHA256(registry key, UID), and the
// raw UID is never kept.
const registryLabel = "kiumtap card registry v1"

func registryKey(k []byte) []byte {
	key, err := hkdf.Key(sha256.New, k, nil, registryLabel, sha256.Size)
	if err != nil {
		panic(err) // only for a length SHA-256 cannot give
	}
	return key
}

// cardID is a card's identity across centres: the HMAC of its UID (hex,
// as the event carries it; any other form is taken as its bytes).
func (b *Bridge) cardID(uid string) string {
	raw, err := hex.DecodeString(uid)
	if err != nil {
		raw = []byte(strings.ToUpper(uid))
	}
	m := hmac.New(sha256.New, b.regKey)
	m.Write(raw)
	return hex.EncodeToString(m.Sum(nil))
}

// bindingFor makes a card_bound event's binding job (Store.Put calls it
// in the event's transaction).
func (b *Bridge) bindingFor(e *protocol.Event) *binding {
	at := e.Time
	if !e.ClockSynced && !e.Corrected {
		at = b.o.Now() // the terminal's clock was not set: the binding counts as made when stored
	}
	return &binding{Centre: e.Centre, Device: e.Device, Log: e.Log, Seq: e.Seq, Child: e.Child, Card: e.Card, OldCard: e.OldCard,
		By: e.By, Flow: firmware.Flow(e.Reason), At: at.UTC(), CardID: b.cardID(e.UID)}
}

// binder applies binding jobs as they are queued, until ctx ends. A job
// that fails (a source cannot be written) is tried again each second;
// the jobs after it wait, as a log's bindings apply in order.
func (b *Bridge) binder(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		// The store is looked at each second (jobs left by a crash, or
		// queued by another instance, or a drain that failed) and when
		// this instance stored a binding event (bindKick).
		if j, err := b.nextBindJob(ctx); j != nil || err != nil {
			if err := b.drain(); err != nil {
				b.log.Error("bridge: applying a binding; trying again in a second", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.bindKick:
		case <-t.C:
		}
	}
}

// drain applies every queued binding job, in order, then publishes the
// centres whose source changed.
func (b *Bridge) drain() error {
	changed, err := b.locked(b.drainLocked)
	b.markDirty(changed...)
	b.publishDirty()
	return err
}

// locked runs fn holding the sources: no other bridge of the store and no
// roster push changes one meanwhile. Sources staff replaced are taken in
// first. It returns the centres whose source changed.
func (b *Bridge) locked(fn func() ([]string, error)) ([]string, error) {
	mu := editing(b.o.SourceDir)
	mu.Lock()
	defer mu.Unlock()
	unlock, err := source.Lock(b.o.SourceDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	changed, err := b.reloadLocked()
	if err != nil {
		b.log.Error("bridge: a roster source is refused; the last good one stays", "err", err)
	}
	if fn == nil {
		return changed, err
	}
	more, err := fn()
	return append(changed, more...), err
}

func (b *Bridge) drainLocked() ([]string, error) {
	var changed []string
	for {
		j, err := b.nextBindJob(context.Background())
		if err != nil || j == nil {
			return changed, err
		}
		c, err := b.runJob(j)
		changed = append(changed, c...)
		if err != nil {
			return changed, fmt.Errorf("binding job %d: %w", j.Q, err)
		}
	}
}

// failpoint, when set (tests), is called at the named points of a job
// and stops it there with its error, as a crash would.
func (b *Bridge) fail(point string) error {
	if b.failpoint == nil {
		return nil
	}
	return b.failpoint(point)
}

// runJob plans a job if it is not yet (deciding and recording in one
// transaction), writes its edits to the sources, then removes it. Killed
// at any point, it is run again from the start: planned once, the edits
// written again are harmless. It returns the centres changed.
func (b *Bridge) runJob(j *bindJob) ([]string, error) {
	if !j.Planned {
		if err := b.plan(j); err != nil {
			return nil, err
		}
	}
	if err := b.fail("planned"); err != nil {
		return nil, err
	}
	var changed []string
	for _, e := range j.Edits {
		ok, err := b.applyEdit(e)
		if err != nil {
			return changed, err
		}
		if ok && !slices.Contains(changed, e.Centre) {
			changed = append(changed, e.Centre)
		}
	}
	if err := b.fail("written"); err != nil {
		return changed, err
	}
	return changed, b.db.DoneBinding(context.Background(), j.Q)
}

func (b *Bridge) rosterOf(centre string) *firmware.Roster {
	if src := b.source(centre); src != nil {
		return src.Roster
	}
	return nil
}

// plan decides a binding event and records, in one transaction: the
// decision's audit records, the card's registry entry, what the event
// applied to its centre, and the job's edits.
func (b *Bridge) plan(j *bindJob) error {
	bd := j.Binding
	if bd == nil {
		j.Planned = true
		return nil
	}
	return b.updateBindings(b.o.Now().UTC(), func(t *bindTx) error {
		own := b.rosterOf(bd.Centre)
		key := bd.AppliedKey()
		if own != nil && own.Applied[key] >= bd.Seq {
			// Taken in already (a source pushed with it): nothing to do.
			j.Planned, j.Edits = true, nil
			return t.queue(j)
		}
		var edits []edit
		var changes []Change
		cur, err := t.holder(bd.CardID)
		if err != nil {
			return err
		}
		if cur != nil && !holds(b.rosterOf(cur.Centre), cur) {
			// Its card is no longer active there (staff changed the
			// source): it holds nothing, and what lost to it is freed.
			e, c, err := t.drop(bd.CardID, cur, "its card is no longer active at "+cur.Centre)
			if err != nil {
				return err
			}
			edits, changes, cur = e, c, nil
			if own != nil {
				var ops []op
				for _, e := range edits {
					if e.Centre == bd.Centre {
						ops = append(ops, e.Ops...)
					}
				}
				if own, err = applyOps(own, ops); err != nil {
					return err
				}
			}
		}
		v := decide(bd, own, cur)
		ch := Change{Centre: bd.Centre, Outcome: v.Outcome, Reason: v.Reason, Detail: v.Detail, Device: bd.Device, Log: bd.Log, Seq: bd.Seq,
			BindingChange: firmware.BindingChange{Child: bd.Child, NewCard: bd.Card, By: bd.By, Flow: bd.Flow, At: bd.At}}
		if v.Outcome != ChangeRefused {
			ch.OldCard = v.OldCard
		}
		changes = append([]Change{ch}, changes...)
		if l := v.Lost; l != nil {
			changes = append(changes, Change{Centre: l.Centre, Outcome: ChangeConflict, Reason: firmware.RefuseBoundElsewhere,
				Detail: fmt.Sprintf("the same card was bound earlier at %s by %s (%s): this binding lost", bd.Centre, bd.Device, kst(bd.At)),
				Device: l.Device, Log: l.Log, Seq: l.Seq,
				BindingChange: firmware.BindingChange{Child: l.Child, NewCard: l.Card, By: l.By, Flow: l.Flow, At: l.At}})
		}
		if v.Holder != nil {
			if err := t.setHolder(bd.CardID, v.Holder); err != nil {
				return err
			}
		}
		if own != nil {
			edits = append(edits, edit{Centre: bd.Centre, Ops: v.Own, Applied: key, Seq: bd.Seq})
			if err := t.applied(bd.Centre, key, bd.Seq, v.Own); err != nil {
				return err
			}
		}
		if v.Other != nil {
			edits = append(edits, *v.Other)
		}
		if v.OldCard != "" && v.Outcome != ChangeRefused {
			e, c, err := t.release(bd.Centre, v.OldCard, "replaced by a new card")
			if err != nil {
				return err
			}
			edits, changes = append(edits, e...), append(changes, c...)
		}
		for _, c := range changes {
			if err := t.record(c); err != nil {
				return err
			}
		}
		j.Planned, j.Edits = true, edits
		return t.queue(j)
	})
}

// applyEdit writes one edit into its centre's source, atomically. An edit
// whose applied_bindings the source has already is skipped: written
// before a crash. It reports whether the source changed.
func (b *Bridge) applyEdit(e edit) (bool, error) {
	src := b.source(e.Centre)
	if src == nil {
		b.log.Warn("bridge: a binding change for a centre without a source; skipped", "centre", e.Centre)
		return false, nil
	}
	if e.Applied != "" && src.Roster.Applied[e.Applied] >= e.Seq {
		return false, nil
	}
	next, err := applyOps(src.Roster, e.Ops)
	if err != nil {
		// It fitted when decided: staff changed the source since. Trying
		// again would not help.
		b.log.Error("bridge: a binding change does not fit the centre's source any more; skipped", "centre", e.Centre, "err", err)
		return false, nil
	}
	if e.Applied != "" {
		if next.Applied == nil {
			next.Applied = map[string]uint64{}
		}
		next.Applied[e.Applied] = e.Seq
	}
	if protocol.Digest(next) == protocol.Digest(src.Roster) {
		return false, nil
	}
	return true, b.writeSource(&source.Source{Roster: next, Guardians: src.Guardians})
}

// writeSource writes a centre's source where it was read, atomically,
// and keeps it as the centre's current source.
func (b *Bridge) writeSource(src *source.Source) error {
	path := filepath.Join(b.o.SourceDir, src.Roster.Centre.ID+".json")
	if err := source.Write(path, src); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.sources[src.Roster.Centre.ID] = src
	b.seen[path] = stampOf(fi)
	b.mu.Unlock()
	return nil
}

// reconcile lays over a source what the bridge recorded for its centre:
// the changes of each log whose applied_bindings the source is behind on
// (a push from an older copy), terminals' bindings and the portal's own
// changes (revokes) alike; the cards freed from a conflict since (revoked,
// as the release left them); and the conflicts its cards lost. It reports
// whether that changed the source.
//
// The changes are laid over in the order the bridge applied them to the
// source, not by their times. Each change's ops were decided against the
// source as it stood then: a binding made offline at 9:00 whose event
// arrived after a revoke made at 10:00 was decided on top of the revoke,
// and won. Only that order gives again what they gave: a revoke then a
// binding of the same child ends with the new card active, a binding then
// a revoke ends revoked. A copy is the source as it was at some moment,
// so what it lacks is the last of that order.
func (b *Bridge) reconcile(src *source.Source) (*source.Source, bool, error) {
	centre := src.Roster.Centre.ID
	rec, err := b.recorded(centre)
	if err != nil {
		return nil, false, err
	}
	have := src.Roster.Applied
	var ops []op
	for _, r := range rec.ops {
		if r.Seq > have[r.Key] {
			ops = append(ops, r.Ops...)
		}
	}
	// A copy older than a release, behind on the losing binding (replayed
	// above) or not, has the card in conflict: freed, it stays freed.
	for _, card := range slices.Sorted(maps.Keys(rec.released)) {
		l := rec.released[card]
		ops = append(ops, op{Do: opState, Child: l.Child, Card: card, State: firmware.CardRevoked, From: firmware.CardConflict, At: l.At})
	}
	for _, card := range slices.Sorted(maps.Keys(rec.lost)) {
		l := rec.lost[card]
		ops = append(ops, op{Do: opState, Child: l.Child, Card: card, State: firmware.CardConflict, From: firmware.CardActive, At: l.At})
	}
	next, err := applyOps(src.Roster, ops)
	if err != nil {
		return nil, false, fmt.Errorf("laying the recorded bindings over the source of %s: %w", centre, err)
	}
	for k, seq := range rec.applied {
		if next.Applied[k] < seq {
			if next.Applied == nil {
				next.Applied = map[string]uint64{}
			}
			next.Applied[k] = seq
		}
	}
	if protocol.Digest(next) == protocol.Digest(src.Roster) {
		return src, false, nil
	}
	return &source.Source{Roster: next, Guardians: src.Guardians}, true, nil
}

// releaseEnded ends the registry entries held at a centre whose card is
// no longer active for its child in r, the centre's source as reloaded
// (staff replaced the card with a CSV, revoked it or removed the child):
// what lost to them is freed. The frees are queued as one job, in the
// transaction that ends the entries, for the binder to write; it
// reports whether it queued one.
func (b *Bridge) releaseEnded(centre string, r *firmware.Roster) (bool, error) {
	queued := false
	err := b.updateBindings(b.o.Now().UTC(), func(t *bindTx) error {
		held, err := t.heldAt(centre)
		if err != nil {
			return err
		}
		j := &bindJob{Planned: true}
		var changes []Change
		for _, id := range slices.Sorted(maps.Keys(held)) {
			if h := held[id]; !holds(r, h) {
				e, c, err := t.drop(id, h, "its card is no longer active at "+centre)
				if err != nil {
					return err
				}
				j.Edits, changes = append(j.Edits, e...), append(changes, c...)
			}
		}
		for _, c := range changes {
			if err := t.record(c); err != nil {
				return err
			}
		}
		if len(j.Edits) == 0 {
			return nil
		}
		queued = true
		return t.queue(j)
	})
	return queued, err
}

// Revoke revokes a child's active card from the portal (firmware.Unbind
// against the centre's source): refused while the child has a scheduled
// booking (FAQ Q18) or has no active card. Applied or refused, the change
// is recorded; applied, it is written to the source and published. A
// refusal is a *firmware.Refused.
//
// An applied revoke is a change of the portal's own log (portalChange):
// the source's applied_bindings of it is raised in the same write, and
// its op is recorded like a terminal binding's, so a source pushed from a
// copy older than the revoke gets it again (reconcile).
func (b *Bridge) Revoke(centre, child, by string) (Change, error) {
	var out Change
	changed, err := b.locked(func() ([]string, error) {
		var changed []string
		for {
			more, err := b.drainLocked() // bindings that came first apply first
			changed = append(changed, more...)
			if err != nil {
				return changed, err
			}
			var j *bindJob
			j, out, err = b.planRevoke(centre, child, by)
			if errors.Is(err, errQueuedMeanwhile) {
				continue // a binding stored since the drain: it applies first
			}
			if err != nil {
				return changed, err
			}
			more, err = b.runJob(j)
			return append(changed, more...), err
		}
	})
	b.markDirty(changed...)
	b.publishDirty()
	return out, err
}

// errQueuedMeanwhile is planRevoke's: a binding job was queued since the
// drain before it.
var errQueuedMeanwhile = errors.New("a binding job was queued meanwhile")

// planRevoke decides a revoke against the centre's source and records, in
// one transaction: its audit records, its op under the next sequence of
// the portal's log, the cards it frees, and its job (planned: written
// again after a crash, the edits are skipped or harmless). Refused, it
// records the refusal and returns no job and the *firmware.Refused.
//
// While a binding job waits it records nothing and fails with
// errQueuedMeanwhile: a centre's recorded ops must stay in the order they
// are written to its source, the order reconcile lays them over a copy in.
func (b *Bridge) planRevoke(centre, child, by string) (*bindJob, Change, error) {
	src := b.source(centre)
	if src == nil {
		return nil, Change{}, fmt.Errorf("%w %q", ErrUnknownCentre, centre)
	}
	now := b.o.Now().UTC()
	var j *bindJob
	var out Change
	var ref *firmware.Refused
	err := b.updateBindings(now, func(t *bindTx) error {
		if queued, err := t.r.BindingQueued(); err != nil || queued {
			return cmp.Or(err, errQueuedMeanwhile)
		}
		_, ch, err := firmware.Unbind(src.Roster, child, by, firmware.FlowPortal, now)
		if err != nil && !errors.As(err, &ref) {
			return err
		}
		out = Change{Centre: centre, BindingChange: ch, Outcome: ChangeApplied, Detail: "card revoked from the portal", Recorded: now}
		if ref != nil {
			out.Outcome, out.Reason, out.Detail, out.OldCard = ChangeRefused, ref.Reason, ref.Detail, ""
			return t.record(out)
		}
		key, seq, err := t.portalChange(src.Roster.Applied)
		if err != nil {
			return err
		}
		ops := []op{{Do: opState, Child: child, Card: ch.OldCard, State: firmware.CardRevoked, From: firmware.CardActive, At: now}}
		if err := t.applied(centre, key, seq, ops); err != nil {
			return err
		}
		freed, changes, err := t.release(centre, ch.OldCard, "revoked by "+by)
		if err != nil {
			return err
		}
		for _, c := range append([]Change{out}, changes...) {
			if err := t.record(c); err != nil {
				return err
			}
		}
		j = &bindJob{Planned: true, Edits: append([]edit{{Centre: centre, Ops: ops, Applied: key, Seq: seq}}, freed...)}
		return t.queue(j)
	})
	if err != nil {
		return nil, out, err
	}
	if ref != nil {
		return nil, out, ref
	}
	return j, out, nil
}

// editing is the lock on a source directory among the bridges of this
// process (source.Lock holds it among processes and hosts).
func editing(dir string) *sync.Mutex {
	mu, _ := editLocks.LoadOrStore(filepath.Clean(dir), &sync.Mutex{})
	return mu.(*sync.Mutex)
}

var editLocks sync.Map
