package binder

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/store"
)

// The store's part in bindings: the job queue, the card registry, the
// audit records, and what was applied to each centre's source (so a
// source staff replace with an older copy gets it again).
// The registry's tables (store.Registry; in bbolt, buckets of these
// names), and the binding jobs' queue (the bbolt store's bucket).
const (
	tHistory  = "bindlog"  // centre \0 child \0 n → api.Change: the audit records
	tRegistry = "registry" // card ID (HMAC of the UID) → holder
	tRegIndex = "regindex" // centre \0 card key → card ID, for the holders' cards
	tLost     = "lost"     // centre \0 card key → card ID, for cards that lost a conflict
	tReleased = "released" // centre \0 card key → cardRef, for cards freed from a conflict since
	tBindOps  = "bindops"  // centre \0 n → opRecord: ops applied for a terminal's binding or a portal change
	tApplied  = "applied"  // centre \0 device/log (or portal/ID) → the last sequence taken in
	tPortal   = "portal"   // "log" → the portal log's ID; the table's sequence numbers its changes
)

// Changes made at the portal (a revoke) are a log of their own in
// applied_bindings, as a terminal's bindings are: key "portal/ID", ID made
// once per store at random, so a store rebuilt from nothing starts a new
// log rather than numbering again from 1 under a key sources have marks
// of. Terminals ignore keys not of their own log.
const portalDevice = "portal"

// bindJob is one change to apply to roster sources: a card_bound event
// (Binding), or a change made at the portal (a revoke), planned when made.
// Once planned, Edits say what to write; writing them again is harmless.
type bindJob struct {
	Q       uint64   `json:"q"`
	Binding *binding `json:"binding,omitempty"`
	Planned bool     `json:"planned"`
	Edits   []edit   `json:"edits,omitempty"`
}

// opRecord is what a terminal's binding event, or a change made at the
// portal, did to its centre's source.
type opRecord struct {
	Key string `json:"key"` // device/log, or portal/ID
	Seq uint64 `json:"seq"`
	Ops []op   `json:"ops,omitempty"`
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func key2(a, b string) []byte { return []byte(a + "\x00" + b) }

// nextBindJob is the first queued job, nil if none.
func (b *Binder) nextBindJob(ctx context.Context) (*bindJob, error) {
	bj, err := b.o.Store.NextBinding(ctx)
	if err != nil || bj == nil {
		return nil, err
	}
	j := &bindJob{}
	if err := json.Unmarshal(bj.Job, j); err != nil {
		return nil, fmt.Errorf("stored binding job %d: %w", bj.Q, err)
	}
	j.Q = bj.Q // its place is its key
	return j, nil
}

// bindTx is a write transaction over the registry.
type bindTx struct {
	r   store.RegistryTx
	now time.Time
}

func (b *Binder) updateBindings(now time.Time, fn func(t *bindTx) error) error {
	return b.o.Store.UpdateRegistry(context.Background(), func(r store.RegistryTx) error { return fn(&bindTx{r: r, now: now}) })
}

// queue queues or updates a job; a new job gets the next place.
func (t *bindTx) queue(j *bindJob) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	q, err := t.r.QueueBinding(j.Q, raw)
	if err != nil {
		return err
	}
	j.Q = q
	return nil
}

func (t *bindTx) holder(cardID string) (*holder, error) {
	v, err := t.r.Get(tRegistry, []byte(cardID))
	if v == nil || err != nil {
		return nil, err
	}
	var h holder
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("registry entry %s: %w", cardID, err)
	}
	return &h, nil
}

// deleteIf deletes key from table if it holds want.
func (t *bindTx) deleteIf(table string, key []byte, want string) error {
	v, err := t.r.Get(table, key)
	if err != nil || string(v) != want {
		return err
	}
	return t.r.Delete(table, key)
}

// setHolder records h as the card's holder, indexed by its centre and key.
func (t *bindTx) setHolder(cardID string, h *holder) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := t.r.Put(tRegistry, []byte(cardID), raw); err != nil {
		return err
	}
	if err := t.r.Put(tRegIndex, key2(h.Centre, h.Card), []byte(cardID)); err != nil {
		return err
	}
	for _, l := range h.Losers {
		if err := t.r.Put(tLost, key2(l.Centre, l.Card), []byte(cardID)); err != nil {
			return err
		}
		// Lost again after a release: the conflict stands, not the release.
		if err := t.r.Delete(tReleased, key2(l.Centre, l.Card)); err != nil {
			return err
		}
	}
	// A card that held and now lost is a loser, not a holder.
	for _, l := range h.Losers {
		if err := t.deleteIf(tRegIndex, key2(l.Centre, l.Card), cardID); err != nil {
			return err
		}
	}
	return nil
}

// release ends the registry entry of the card key at centre, if it holds
// a card: the bindings that lost to it are freed (their cards go from
// conflict to revoked, so staff can bind them again). It returns the
// edits that frees them, and their audit records.
func (t *bindTx) release(centre, card, why string) ([]edit, []api.Change, error) {
	ik := key2(centre, card)
	id, err := t.r.Get(tRegIndex, ik)
	if id == nil || err != nil {
		return nil, nil, err
	}
	cardID := string(id)
	if err := t.r.Delete(tRegIndex, ik); err != nil {
		return nil, nil, err
	}
	h, err := t.holder(cardID)
	if err != nil || h == nil || h.Centre != centre || h.Card != card {
		return nil, nil, err
	}
	return t.drop(cardID, h, why)
}

// drop deletes a holder's registry entry and frees its losers. A loser
// freed is recorded as released at its centre, so a source pushed there
// from a copy that still has the card in conflict gets it freed again.
func (t *bindTx) drop(cardID string, h *holder, why string) ([]edit, []api.Change, error) {
	if err := t.r.Delete(tRegistry, []byte(cardID)); err != nil {
		return nil, nil, err
	}
	if err := t.deleteIf(tRegIndex, key2(h.Centre, h.Card), cardID); err != nil {
		return nil, nil, err
	}
	var edits []edit
	var changes []api.Change
	for _, l := range h.Losers {
		if err := t.r.Delete(tLost, key2(l.Centre, l.Card)); err != nil {
			return nil, nil, err
		}
		raw, err := json.Marshal(cardRef{Centre: l.Centre, Child: l.Child, Card: l.Card, At: t.now})
		if err != nil {
			return nil, nil, err
		}
		if err := t.r.Put(tReleased, key2(l.Centre, l.Card), raw); err != nil {
			return nil, nil, err
		}
		edits = append(edits, edit{Centre: l.Centre, Ops: []op{{Do: opState, Child: l.Child, Card: l.Card, State: firmware.CardRevoked, From: firmware.CardConflict, At: t.now}}})
		c := api.Change{Centre: l.Centre, Outcome: api.ChangeReleased, Detail: fmt.Sprintf("the binding at %s that won this card ended (%s): the card is revoked here and may be bound again", h.Centre, why)}
		c.Child, c.OldCard, c.By, c.Flow, c.At = l.Child, l.Card, "portal", firmware.FlowPortal, t.now
		changes = append(changes, c)
	}
	return edits, changes, nil
}

// record appends an audit record.
func (t *bindTx) record(c api.Change) error {
	c.Recorded = t.now
	n, err := t.r.NextSequence(tHistory)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return t.r.Put(tHistory, append([]byte(c.Centre+"\x00"+c.Child+"\x00"), u64(n)...), raw)
}

// applied records that a terminal's binding event, or a portal change,
// was taken into its centre's source, with the ops it applied there.
func (t *bindTx) applied(centre, key string, seq uint64, ops []op) error {
	n, err := t.r.NextSequence(tBindOps)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(opRecord{Key: key, Seq: seq, Ops: ops})
	if err != nil {
		return err
	}
	if err := t.r.Put(tBindOps, append([]byte(centre+"\x00"), u64(n)...), raw); err != nil {
		return err
	}
	return t.r.Put(tApplied, key2(centre, key), u64(seq))
}

// portalChange numbers a change made at the portal to a centre's source:
// it returns the portal log's key, made the first time, and the change's
// sequence. have is the source's applied_bindings: the sequence is above
// its mark of the portal log even if the store was restored from an older
// backup, so the change is never taken for one the source has already.
func (t *bindTx) portalChange(have map[string]uint64) (string, uint64, error) {
	v, err := t.r.Get(tPortal, []byte("log"))
	if err != nil {
		return "", 0, err
	}
	id := string(v)
	if id == "" {
		id = rand.Text()
		if err := t.r.Put(tPortal, []byte("log"), []byte(id)); err != nil {
			return "", 0, err
		}
	}
	key := firmware.AppliedKey(portalDevice, id)
	n, err := t.r.Sequence(tPortal)
	if err != nil {
		return "", 0, err
	}
	seq := max(n, have[key]) + 1
	return key, seq, t.r.SetSequence(tPortal, seq)
}

// History returns the audit records of binding changes a store holds for
// a centre, of one child (all children when child is empty), oldest
// first: what kiumctl history shows, from any instance (or the store
// alone).
func History(ctx context.Context, reg store.Registry, centre, child string) ([]api.Change, error) {
	var out []api.Change
	prefix := []byte(centre + "\x00")
	if child != "" {
		prefix = append(prefix, child+"\x00"...)
	}
	err := reg.ViewRegistry(ctx, func(r store.RegistryTx) error {
		out = out[:0]
		return r.Scan(tHistory, prefix, func(k, v []byte) error {
			var ch api.Change
			if err := json.Unmarshal(v, &ch); err != nil {
				return fmt.Errorf("stored binding record %q: %w", k, err)
			}
			out = append(out, ch)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b api.Change) int { return a.Recorded.Compare(b.Recorded) })
	return out, err
}

// recorded is what the binder applied to a centre's source: the last
// sequence of each terminal log taken in, the ops in the order applied,
// the cards that lost a conflict and those freed from one since, by key.
type recorded struct {
	applied  map[string]uint64
	ops      []opRecord
	lost     map[string]cardRef
	released map[string]cardRef // At: when freed
}

func (b *Binder) recorded(centre string) (recorded, error) {
	var r recorded
	prefix := []byte(centre + "\x00")
	err := b.o.Store.ViewRegistry(context.Background(), func(tx store.RegistryTx) error {
		r = recorded{applied: map[string]uint64{}, lost: map[string]cardRef{}, released: map[string]cardRef{}}
		err := tx.Scan(tApplied, prefix, func(k, v []byte) error {
			if len(v) == 8 {
				r.applied[string(k[len(prefix):])] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Scan(tBindOps, prefix, func(k, v []byte) error {
			var o opRecord
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("stored binding ops %q: %w", k, err)
			}
			r.ops = append(r.ops, o)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Scan(tLost, prefix, func(k, v []byte) error {
			card := string(k[len(prefix):])
			var h holder
			if raw, err := tx.Get(tRegistry, v); err != nil || raw == nil || json.Unmarshal(raw, &h) != nil {
				return err
			}
			for _, l := range h.Losers {
				if l.Centre == centre && l.Card == card {
					r.lost[card] = l
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(tReleased, prefix, func(k, v []byte) error {
			var l cardRef
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("stored released card %q: %w", k, err)
			}
			r.released[l.Card] = l
			return nil
		})
	})
	return r, err
}

// heldAt returns the registry entries of the cards held at a centre, by
// card ID.
func (t *bindTx) heldAt(centre string) (map[string]*holder, error) {
	out := map[string]*holder{}
	prefix := []byte(centre + "\x00")
	err := t.r.Scan(tRegIndex, prefix, func(k, v []byte) error {
		h, err := t.holder(string(v))
		if err != nil {
			return err
		}
		if h != nil && h.Centre == centre && h.Card == string(k[len(prefix):]) {
			out[string(v)] = h
		}
		return nil
	})
	return out, err
}
