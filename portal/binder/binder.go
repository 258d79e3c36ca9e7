// Package binder is where card bindings made at terminals meet the
// portal's roster sources. A card_bound event stored by the ingest brings
// a binding job (Job, in the event's transaction); the binder takes the
// jobs in order and, for each, decides by package registry's rule (pure
// functions of the rosters and the card's registry entry: who holds a
// card bound at several centres), records the decision, the card's
// registry entry and the audit records in the store (store.Registry), and
// writes the centres' sources (source.Sources: a directory, or the store
// for instances on several hosts). Staff's revokes from the portal go the
// same way (Revoke).
//
// It also keeps the sources as last read (Source): a source pushed from
// an older copy is laid over again with what the binder recorded since
// (reconcile), so a push never undoes a terminal's binding. Every writer
// holds the sources (Sources.Hold) while it reads, decides and writes:
// one binding is decided once, whichever instance takes it.
package binder

import (
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Store is what the binder needs of the portal's store: the registry and
// the binding jobs' queue.
type Store interface {
	store.Registry
	store.BindingJobs
}

// Options configure a Binder. Zero values take the documented defaults.
type Options struct {
	// Store keeps the registry and the jobs; required.
	Store Store
	// Sources are the centres' roster sources; required.
	Sources source.Sources
	// Key is the secret the card registry's key is derived from (the
	// portal's signing key's seed): a card is known across centres by
	// an HMAC of its UID under it. Required.
	Key []byte
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default none.
	Logger *slog.Logger
	// Changed, if set, is told the centres whose source changed (by a
	// binding, a revoke, or a push taken in): the bridge publishes them.
	Changed func(centres ...string)
	// Failpoint, if set (tests), is called at the named points of a job
	// ("planned", "written") and stops it there with its error, as a
	// crash would.
	Failpoint func(point string) error
	// Every is how often Run looks for sources pushed and jobs queued by
	// other instances; default 1 s.
	Every time.Duration
	// HoldWait bounds a wait for the sources (another instance holds
	// them, or the store does not answer); default 30 s.
	HoldWait time.Duration
}

// Binder applies binding jobs and revokes to the roster sources.
type Binder struct {
	o    Options
	log  *slog.Logger
	key  []byte        // the card registry's key
	kick chan struct{} // binding jobs were queued

	mu      sync.Mutex
	sources map[string]*source.Source // as last read or written
}

// New checks the options and reads the sources. A source refused at
// start (see Reload) fails it, naming the source: a bridge does not
// start without a centre it is meant to serve; later, a refused source
// keeps its centre's last good one.
func New(o Options) (*Binder, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("binder: no store")
	case o.Sources == nil:
		return nil, errors.New("binder: no roster sources")
	case len(o.Key) == 0:
		return nil, errors.New("binder: no key for the card registry")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Changed == nil {
		o.Changed = func(...string) {}
	}
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.HoldWait <= 0 {
		o.HoldWait = 30 * time.Second
	}
	b := &Binder{o: o, log: o.Logger, key: registryKey(o.Key), kick: make(chan struct{}, 1), sources: map[string]*source.Source{}}
	if _, err := b.Reload(); err != nil {
		return nil, err
	}
	return b, nil
}

// Source is a centre's source as last read or written, nil if it has
// none. It must not be changed.
func (b *Binder) Source(centre string) *source.Source {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sources[centre]
}

// Centres are the centres with a source, sorted.
func (b *Binder) Centres() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.sources))
}

// Kick tells the binder a binding job was queued (Run applies it at once).
func (b *Binder) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Job is a card_bound event's binding job, as the store keeps it: what
// store.Plan's Binding gives Put, to queue in the event's transaction.
func (b *Binder) Job(e *protocol.Event) json.RawMessage {
	raw, _ := json.Marshal(&bindJob{Binding: b.bindingFor(e)})
	return raw
}

// History returns a centre's audit records of binding changes, of one
// child (all children when child is empty), oldest first.
func (b *Binder) History(ctx context.Context, centre, child string) ([]api.Change, error) {
	return History(ctx, b.o.Store, centre, child)
}

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
func (b *Binder) cardID(uid string) string {
	raw, err := hex.DecodeString(uid)
	if err != nil {
		raw = []byte(strings.ToUpper(uid))
	}
	m := hmac.New(sha256.New, b.key)
	m.Write(raw)
	return hex.EncodeToString(m.Sum(nil))
}

// bindingFor makes a card_bound event's binding job (Store.Put calls it
// in the event's transaction).
func (b *Binder) bindingFor(e *protocol.Event) *binding {
	at := e.Time
	if !e.ClockSynced && !e.Corrected {
		at = b.o.Now() // the terminal's clock was not set: the binding counts as made when stored
	}
	return &binding{Centre: e.Centre, Device: e.Device, Log: e.Log, Seq: e.Seq, Child: e.Child, Card: e.Card, OldCard: e.OldCard,
		By: e.By, Flow: firmware.Flow(e.Reason), At: at.UTC(), CardID: b.cardID(e.UID)}
}

// Run applies binding jobs as they are queued and takes in sources
// pushed, until ctx ends. It looks each Every (jobs left by a crash or
// queued by another instance, sources pushed, a drain that failed) and at
// once when kicked. A job that fails (a source cannot be written) is
// tried again then; the jobs after it wait, as a log's bindings apply in
// order.
func (b *Binder) Run(ctx context.Context) {
	t := time.NewTicker(b.o.Every)
	defer t.Stop()
	for {
		changed, err := b.Reload()
		if err != nil {
			b.log.Error("binder: a roster source is refused; the last good one stays", "err", err)
		}
		b.o.Changed(changed...)
		if j, err := b.nextBindJob(ctx); j != nil || err != nil {
			if err := b.Drain(); err != nil {
				b.log.Error("binder: applying a binding; trying again", "err", err, "in", b.o.Every)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-t.C:
		}
	}
}

// Drain applies every queued binding job, in order, then tells Changed
// the centres whose source changed.
func (b *Binder) Drain() error {
	changed, err := b.locked(b.drainLocked)
	b.o.Changed(changed...)
	return err
}

// Reload takes in the sources changed since the last look (pushed, or
// written by another instance) and returns their centres. A source that
// is refused (unreadable, invalid, misnamed) is reported, and its centre
// keeps its last good source.
func (b *Binder) Reload() ([]string, error) { return b.locked(nil) }

// locked runs fn holding the sources: no other binder, of this instance
// or another, and no push changes one meanwhile. Sources changed since
// the last look are taken in first. It returns the centres whose source
// changed.
func (b *Binder) locked(fn func() ([]string, error)) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.o.HoldWait)
	release, err := b.o.Sources.Hold(ctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("holding the roster sources (%s): %w", b.o.Sources, err)
	}
	defer release()
	changed, err := b.reloadLocked()
	if err != nil {
		b.log.Error("binder: a roster source is refused; the last good one stays", "err", err)
	}
	if fn == nil {
		return changed, err
	}
	more, err := fn()
	return append(changed, more...), err
}

func (b *Binder) drainLocked() ([]string, error) {
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

// fail stops a job at a named point when the tests ask (Failpoint).
func (b *Binder) fail(point string) error {
	if b.o.Failpoint == nil {
		return nil
	}
	return b.o.Failpoint(point)
}

// runJob plans a job if it is not yet (deciding and recording in one
// transaction), writes its edits to the sources, then removes it. Killed
// at any point, it is run again from the start: planned once, the edits
// written again are harmless. It returns the centres changed.
func (b *Binder) runJob(j *bindJob) ([]string, error) {
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
	return changed, b.o.Store.DoneBinding(context.Background(), j.Q)
}

func (b *Binder) rosterOf(centre string) *firmware.Roster {
	if src := b.Source(centre); src != nil {
		return src.Roster
	}
	return nil
}

// plan decides a binding event and records, in one transaction: the
// decision's audit records, the card's registry entry, what the event
// applied to its centre, and the job's edits.
func (b *Binder) plan(j *bindJob) error {
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
		var changes []api.Change
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
		ch := api.Change{Centre: bd.Centre, Outcome: v.Outcome, Reason: v.Reason, Detail: v.Detail, Device: bd.Device, Log: bd.Log, Seq: bd.Seq,
			BindingChange: firmware.BindingChange{Child: bd.Child, NewCard: bd.Card, By: bd.By, Flow: bd.Flow, At: bd.At}}
		if v.Outcome != api.ChangeRefused {
			ch.OldCard = v.OldCard
		}
		changes = append([]api.Change{ch}, changes...)
		if l := v.Lost; l != nil {
			changes = append(changes, api.Change{Centre: l.Centre, Outcome: api.ChangeConflict, Reason: firmware.RefuseBoundElsewhere,
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
		if v.OldCard != "" && v.Outcome != api.ChangeRefused {
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
func (b *Binder) applyEdit(e edit) (bool, error) {
	src := b.Source(e.Centre)
	if src == nil {
		b.log.Warn("binder: a binding change for a centre without a source; skipped", "centre", e.Centre)
		return false, nil
	}
	if e.Applied != "" && src.Roster.Applied[e.Applied] >= e.Seq {
		return false, nil
	}
	next, err := applyOps(src.Roster, e.Ops)
	if err != nil {
		// It fitted when decided: staff changed the source since. Trying
		// again would not help.
		b.log.Error("binder: a binding change does not fit the centre's source any more; skipped", "centre", e.Centre, "err", err)
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
	return true, b.write(&source.Source{Roster: next, Guardians: src.Guardians})
}

// write writes a centre's source and keeps it as the centre's current
// source.
func (b *Binder) write(src *source.Source) error {
	if err := b.o.Sources.Write(context.Background(), src); err != nil {
		return err
	}
	b.mu.Lock()
	b.sources[src.Roster.Centre.ID] = src
	b.mu.Unlock()
	return nil
}

// reloadLocked is Reload with the sources held (locked). A source that
// changed is reconciled with what the binder recorded (terminals'
// bindings it is behind on, conflicts lost and freed) and written back if
// that changes it; a card it holds for the registry that is no longer
// active there ends its entry, and the cards that lost to it are freed.
func (b *Binder) reloadLocked() ([]string, error) {
	srcs, err := b.o.Sources.Changed(context.Background())
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var changed []string
	for _, src := range srcs {
		centre := src.Roster.Centre.ID
		src, behind, err := b.reconcile(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("the source of %s: %w", centre, err))
			continue
		}
		if behind {
			b.log.Warn("binder: a roster source was behind on what the binder applied; laid over it again", "centre", centre)
			if err := b.write(src); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		b.mu.Lock()
		b.sources[centre] = src
		b.mu.Unlock()
		changed = append(changed, centre)
		queued, err := b.releaseEnded(centre, src.Roster)
		if err != nil {
			errs = append(errs, fmt.Errorf("the source of %s: ending the bindings its cards no longer hold: %w", centre, err))
		}
		if queued {
			b.log.Info("binder: a card that won a conflict is no longer active in the source; the cards that lost it are freed", "centre", centre)
			b.Kick() // the binder writes the frees (at once, if the caller is it)
		}
	}
	return changed, errors.Join(errs...)
}

// reconcile lays over a source what the binder recorded for its centre:
// the changes of each log whose applied_bindings the source is behind on
// (a push from an older copy), terminals' bindings and the portal's own
// changes (revokes) alike; the cards freed from a conflict since (revoked,
// as the release left them); and the conflicts its cards lost. It reports
// whether that changed the source.
//
// The changes are laid over in the order the binder applied them to the
// source, not by their times. Each change's ops were decided against the
// source as it stood then: a binding made offline at 9:00 whose event
// arrived after a revoke made at 10:00 was decided on top of the revoke,
// and won. Only that order gives again what they gave: a revoke then a
// binding of the same child ends with the new card active, a binding then
// a revoke ends revoked. A copy is the source as it was at some moment,
// so what it lacks is the last of that order.
func (b *Binder) reconcile(src *source.Source) (*source.Source, bool, error) {
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
func (b *Binder) releaseEnded(centre string, r *firmware.Roster) (bool, error) {
	queued := false
	err := b.updateBindings(b.o.Now().UTC(), func(t *bindTx) error {
		held, err := t.heldAt(centre)
		if err != nil {
			return err
		}
		j := &bindJob{Planned: true}
		var changes []api.Change
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
func (b *Binder) Revoke(centre, child, by string) (api.Change, error) {
	var out api.Change
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
	b.o.Changed(changed...)
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
func (b *Binder) planRevoke(centre, child, by string) (*bindJob, api.Change, error) {
	src := b.Source(centre)
	if src == nil {
		return nil, api.Change{}, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
	}
	now := b.o.Now().UTC()
	var j *bindJob
	var out api.Change
	var ref *firmware.Refused
	err := b.updateBindings(now, func(t *bindTx) error {
		if queued, err := t.r.BindingQueued(); err != nil || queued {
			return cmp.Or(err, errQueuedMeanwhile)
		}
		_, ch, err := firmware.Unbind(src.Roster, child, by, firmware.FlowPortal, now)
		if err != nil && !errors.As(err, &ref) {
			return err
		}
		out = api.Change{Centre: centre, BindingChange: ch, Outcome: api.ChangeApplied, Detail: "card revoked from the portal", Recorded: now}
		if ref != nil {
			out.Outcome, out.Reason, out.Detail, out.OldCard = api.ChangeRefused, ref.Reason, ref.Detail, ""
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
		for _, c := range append([]api.Change{out}, changes...) {
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

// SetGuardianPhone corrects a guardian's number in a centre's source (a
// text that failed for a wrong number, FAQ Q22): the guardian of child
// whose number is old gets phone. The roster does not change, so no
// revision goes out.
func (b *Binder) SetGuardianPhone(centre, child, old, phone string) error {
	_, err := b.locked(func() ([]string, error) {
		src := b.Source(centre)
		if src == nil {
			return nil, fmt.Errorf("%w %q", api.ErrUnknownCentre, centre)
		}
		gs := slices.Clone(src.Guardians[child])
		i := slices.IndexFunc(gs, func(g source.Guardian) bool { return g.Phone == old })
		if i < 0 {
			return nil, fmt.Errorf("no guardian of %s at %s has the number %s (the source changed meanwhile?)", child, centre, old)
		}
		gs[i].Phone = phone
		guardians := maps.Clone(src.Guardians)
		guardians[child] = gs
		return nil, b.write(&source.Source{Roster: src.Roster, Guardians: guardians})
	})
	return err
}
