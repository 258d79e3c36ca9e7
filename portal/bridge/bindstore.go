package bridge

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"kiumtap/firmware"
)

// The store's part in bindings: the job queue, the card registry, the
// audit records, and what was applied to each centre's source (so a
// source staff replace with an older copy gets it again).
var (
	bBindQ    = []byte("bindq")    // q → bindJob: to apply, in order
	bHistory  = []byte("bindlog")  // centre \0 child \0 n → Change: the audit records
	bRegistry = []byte("registry") // card ID (HMAC of the UID) → holder
	bRegIndex = []byte("regindex") // centre \0 card key → card ID, for the holders' cards
	bLost     = []byte("lost")     // centre \0 card key → card ID, for cards that lost a conflict
	bReleased = []byte("released") // centre \0 card key → cardRef, for cards freed from a conflict since
	bBindOps  = []byte("bindops")  // centre \0 n → opRecord: ops applied for a terminal's binding or a portal change
	bApplied  = []byte("applied")  // centre \0 device/log (or portal/ID) → the last sequence taken in
	bPortal   = []byte("portal")   // "log" → the portal log's ID; the bucket's sequence numbers its changes
)

var bindBuckets = [][]byte{bBindQ, bHistory, bRegistry, bRegIndex, bLost, bReleased, bBindOps, bApplied, bPortal}

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

// putBindJob queues or updates a job; a new job gets the next place.
func putBindJob(tx *bolt.Tx, j *bindJob) error {
	if j.Q == 0 {
		n, err := tx.Bucket(bBindQ).NextSequence()
		if err != nil {
			return err
		}
		j.Q = n
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return putRawBindJob(tx, j.Q, raw)
}

// putRawBindJob queues (q 0: at the next place) or replaces a job, as
// encoded.
func putRawBindJob(tx *bolt.Tx, q uint64, raw []byte) error {
	b := tx.Bucket(bBindQ)
	if q == 0 {
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		q = n
	}
	return b.Put(u64(q), raw)
}

// nextBindJob is the first queued job, nil if none.
func (s *Store) nextBindJob() (*bindJob, error) {
	var j *bindJob
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bBindQ).Cursor().First()
		if k == nil {
			return nil
		}
		j = &bindJob{}
		if err := json.Unmarshal(v, j); err != nil {
			return fmt.Errorf("stored binding job %x: %w", k, err)
		}
		j.Q = binary.BigEndian.Uint64(k) // its place is its key
		return nil
	})
	return j, err
}

// bindingsQueued reports whether any binding job waits.
func (s *Store) bindingsQueued() bool {
	j, err := s.nextBindJob()
	return j != nil || err != nil
}

func (s *Store) removeBindJob(q uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bBindQ).Delete(u64(q)) })
}

// bindTx is a write transaction over the bindings' buckets.
type bindTx struct {
	tx  *bolt.Tx
	now time.Time
}

func (s *Store) updateBindings(now time.Time, fn func(t *bindTx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&bindTx{tx: tx, now: now}) })
}

func (t *bindTx) holder(cardID string) (*holder, error) {
	v := t.tx.Bucket(bRegistry).Get([]byte(cardID))
	if v == nil {
		return nil, nil
	}
	var h holder
	if err := json.Unmarshal(v, &h); err != nil {
		return nil, fmt.Errorf("registry entry %s: %w", cardID, err)
	}
	return &h, nil
}

// setHolder records h as the card's holder, indexed by its centre and key.
func (t *bindTx) setHolder(cardID string, h *holder) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bRegistry).Put([]byte(cardID), raw); err != nil {
		return err
	}
	if err := t.tx.Bucket(bRegIndex).Put(key2(h.Centre, h.Card), []byte(cardID)); err != nil {
		return err
	}
	for _, l := range h.Losers {
		if err := t.tx.Bucket(bLost).Put(key2(l.Centre, l.Card), []byte(cardID)); err != nil {
			return err
		}
		// Lost again after a release: the conflict stands, not the release.
		if err := t.tx.Bucket(bReleased).Delete(key2(l.Centre, l.Card)); err != nil {
			return err
		}
	}
	// A card that held and now lost is a loser, not a holder.
	for _, l := range h.Losers {
		if v := t.tx.Bucket(bRegIndex).Get(key2(l.Centre, l.Card)); string(v) == cardID {
			if err := t.tx.Bucket(bRegIndex).Delete(key2(l.Centre, l.Card)); err != nil {
				return err
			}
		}
	}
	return nil
}

// release ends the registry entry of the card key at centre, if it holds
// a card: the bindings that lost to it are freed (their cards go from
// conflict to revoked, so staff can bind them again). It returns the
// edits that frees them, and their audit records.
func (t *bindTx) release(centre, card, why string) ([]edit, []Change, error) {
	ik := key2(centre, card)
	id := t.tx.Bucket(bRegIndex).Get(ik)
	if id == nil {
		return nil, nil, nil
	}
	cardID := string(id)
	if err := t.tx.Bucket(bRegIndex).Delete(ik); err != nil {
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
func (t *bindTx) drop(cardID string, h *holder, why string) ([]edit, []Change, error) {
	if err := t.tx.Bucket(bRegistry).Delete([]byte(cardID)); err != nil {
		return nil, nil, err
	}
	if v := t.tx.Bucket(bRegIndex).Get(key2(h.Centre, h.Card)); string(v) == cardID {
		if err := t.tx.Bucket(bRegIndex).Delete(key2(h.Centre, h.Card)); err != nil {
			return nil, nil, err
		}
	}
	var edits []edit
	var changes []Change
	for _, l := range h.Losers {
		if err := t.tx.Bucket(bLost).Delete(key2(l.Centre, l.Card)); err != nil {
			return nil, nil, err
		}
		raw, err := json.Marshal(cardRef{Centre: l.Centre, Child: l.Child, Card: l.Card, At: t.now})
		if err != nil {
			return nil, nil, err
		}
		if err := t.tx.Bucket(bReleased).Put(key2(l.Centre, l.Card), raw); err != nil {
			return nil, nil, err
		}
		edits = append(edits, edit{Centre: l.Centre, Ops: []op{{Do: opState, Child: l.Child, Card: l.Card, State: firmware.CardRevoked, From: firmware.CardConflict, At: t.now}}})
		c := Change{Centre: l.Centre, Outcome: ChangeReleased, Detail: fmt.Sprintf("the binding at %s that won this card ended (%s): the card is revoked here and may be bound again", h.Centre, why)}
		c.Child, c.OldCard, c.By, c.Flow, c.At = l.Child, l.Card, "portal", firmware.FlowPortal, t.now
		changes = append(changes, c)
	}
	return edits, changes, nil
}

// record appends an audit record.
func (t *bindTx) record(c Change) error {
	c.Recorded = t.now
	b := t.tx.Bucket(bHistory)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return b.Put(append([]byte(c.Centre+"\x00"+c.Child+"\x00"), u64(n)...), raw)
}

// applied records that a terminal's binding event, or a portal change,
// was taken into its centre's source, with the ops it applied there.
func (t *bindTx) applied(centre, key string, seq uint64, ops []op) error {
	b := t.tx.Bucket(bBindOps)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(opRecord{Key: key, Seq: seq, Ops: ops})
	if err != nil {
		return err
	}
	if err := b.Put(append([]byte(centre+"\x00"), u64(n)...), raw); err != nil {
		return err
	}
	return t.tx.Bucket(bApplied).Put(key2(centre, key), u64(seq))
}

// portalChange numbers a change made at the portal to a centre's source:
// it returns the portal log's key, made the first time, and the change's
// sequence. have is the source's applied_bindings: the sequence is above
// its mark of the portal log even if the store was restored from an older
// backup, so the change is never taken for one the source has already.
func (t *bindTx) portalChange(have map[string]uint64) (string, uint64, error) {
	b := t.tx.Bucket(bPortal)
	id := string(b.Get([]byte("log")))
	if id == "" {
		id = rand.Text()
		if err := b.Put([]byte("log"), []byte(id)); err != nil {
			return "", 0, err
		}
	}
	key := firmware.AppliedKey(portalDevice, id)
	seq := max(b.Sequence(), have[key]) + 1
	return key, seq, b.SetSequence(seq)
}

// History returns a centre's audit records of binding changes, of one
// child (all children when child is empty), oldest first.
func (s *Store) History(centre, child string) ([]Change, error) {
	var out []Change
	prefix := []byte(centre + "\x00")
	if child != "" {
		prefix = append(prefix, child+"\x00"...)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bHistory)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ch Change
			if err := json.Unmarshal(v, &ch); err != nil {
				return fmt.Errorf("stored binding record %q: %w", k, err)
			}
			out = append(out, ch)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Change) int { return a.Recorded.Compare(b.Recorded) })
	return out, err
}

// recorded is what the bridge applied to a centre's source: the last
// sequence of each terminal log taken in, the ops in the order applied,
// the cards that lost a conflict and those freed from one since, by key.
type recorded struct {
	applied  map[string]uint64
	ops      []opRecord
	lost     map[string]cardRef
	released map[string]cardRef // At: when freed
}

func (s *Store) recorded(centre string) (recorded, error) {
	r := recorded{applied: map[string]uint64{}, lost: map[string]cardRef{}, released: map[string]cardRef{}}
	prefix := []byte(centre + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bApplied).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) == 8 {
				r.applied[string(k[len(prefix):])] = binary.BigEndian.Uint64(v)
			}
		}
		c = tx.Bucket(bBindOps).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var o opRecord
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("stored binding ops %q: %w", k, err)
			}
			r.ops = append(r.ops, o)
		}
		c = tx.Bucket(bLost).Cursor()
		reg := tx.Bucket(bRegistry)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			card := string(k[len(prefix):])
			var h holder
			if raw := reg.Get(v); raw == nil || json.Unmarshal(raw, &h) != nil {
				continue
			}
			for _, l := range h.Losers {
				if l.Centre == centre && l.Card == card {
					r.lost[card] = l
				}
			}
		}
		c = tx.Bucket(bReleased).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var l cardRef
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("stored released card %q: %w", k, err)
			}
			r.released[l.Card] = l
		}
		return nil
	})
	return r, err
}

// heldAt returns the registry entries of the cards held at a centre, by
// card ID.
func (t *bindTx) heldAt(centre string) (map[string]*holder, error) {
	out := map[string]*holder{}
	prefix := []byte(centre + "\x00")
	c := t.tx.Bucket(bRegIndex).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		h, err := t.holder(string(v))
		if err != nil {
			return nil, err
		}
		if h != nil && h.Centre == centre && h.Card == string(k[len(prefix):]) {
			out[string(v)] = h
		}
	}
	return out, nil
}

// Devices returns the terminals of a centre the bridge has events from,
// sorted.
func (s *Store) Devices(centre string) ([]string, error) {
	var out []string
	prefix := []byte(centre + "\x00")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, 0)
			if i <= 0 {
				k, _ = c.Next()
				continue
			}
			dev := string(rest[:i])
			out = append(out, dev)
			// Skip the device's other events: device IDs never hold \x00
			// or \x01.
			k, _ = c.Seek(append(append(slices.Clone(prefix), dev...), 1))
		}
		return nil
	})
	return out, err
}
