package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"kiumtap/firmware"
)

// change is a binding change made at this terminal, with the sequence of
// its event.
type change struct {
	seq uint64
	ch  firmware.BindingChange
}

func decodeBinding(raw []byte) (firmware.BindingChange, error) {
	var ch firmware.BindingChange
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil {
		return ch, fmt.Errorf("store: damaged binding change: %w", err)
	}
	if ch.Child == "" || (ch.NewCard == "" && ch.OldCard == "") {
		return ch, errors.New("store: damaged binding change: no child or card")
	}
	return ch, nil
}

// BindRequest binds a card to a child at this terminal.
type BindRequest struct {
	At      Stamp
	Child   string
	CardKey string
	UID     []byte // always kept on a binding event: the portal finds the card at other centres by it
	By      string // staff ID, or the portal user
	Flow    firmware.Flow
}

// Bind binds a card to a child by the enrolment rules (firmware.Bind)
// against the roster decisions use. The binding event, its sequence and
// the change itself are journaled together with one fdatasync, as a tap
// is: after a crash the store has either the old binding or the new one.
// The change takes effect at once and stays on top of every roster from
// the portal until one takes it in (Roster.Applied). A rule's refusal is a
// *firmware.Refused and records nothing.
func (s *Store) Bind(req BindRequest) (Event, firmware.BindingChange, error) {
	if s.jr == nil {
		return Event{}, firmware.BindingChange{}, errors.New("store: opened read-only")
	}
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	r, _, err := s.Roster()
	if err != nil {
		return Event{}, firmware.BindingChange{}, err
	}
	// Bind's roster is not kept: a roster from the portal may arrive
	// between the commit and taking mu, so the one decisions use is laid
	// over again from the portal's (overlay), the single way it is made.
	_, ch, err := firmware.Bind(r, req.Child, req.CardKey, req.By, req.Flow, req.At.Time)
	if err != nil {
		return Event{}, ch, err
	}
	raw, err := json.Marshal(ch)
	if err != nil {
		return Event{}, ch, err
	}
	seq := s.seq + 1
	ev := Event{
		Seq: seq, Time: req.At.Time, ClockSynced: req.At.Synced, BootID: req.At.BootID, Mono: req.At.Mono,
		CardKey: req.CardKey, UID: req.UID, ChildID: req.Child,
		Outcome: firmware.CardBound, Reason: firmware.Reason(req.Flow), RosterRev: r.Revision,
		OldCard: ch.OldCard, By: req.By,
	}
	evRaw, err := ev.marshal()
	if err != nil {
		return Event{}, ch, err
	}
	b := &batch{events: []Event{ev}, raw: [][]byte{evRaw}, bindings: []localBinding{{seq, raw}}}
	if err := s.commit(b); err != nil {
		return Event{}, ch, fmt.Errorf("store: recording a binding: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, change{seq, ch})
	if err := s.overlay(); err != nil {
		// Recorded, and sent to the portal; only the local view failed.
		s.log.Error("store: a binding change does not lay over the roster", "err", err)
	}
	return ev, ch, nil
}

// Bindings returns the binding changes made at this terminal that are
// still stored, oldest first, with their sequences.
func (s *Store) Bindings() ([]uint64, []firmware.BindingChange) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seqs := make([]uint64, len(s.changes))
	chs := make([]firmware.BindingChange, len(s.changes))
	for i, c := range s.changes {
		seqs[i], chs[i] = c.seq, c.ch
	}
	return seqs, chs
}

// loadBindings reads the binding changes from bbolt and from the batches
// it does not have yet (a read-only store), and lays them on the roster.
func (s *Store) loadBindings() error {
	var chs []change
	pend := s.snapshot()
	err := s.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bBindings)
		if bb == nil { // schema 1, read-only
			return nil
		}
		return bb.ForEach(func(k, v []byte) error {
			ch, err := decodeBinding(v)
			if err != nil {
				return err
			}
			chs = append(chs, change{binary.BigEndian.Uint64(k), ch})
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, b := range pend {
		for _, l := range b.bindings {
			if len(chs) > 0 && l.seq <= chs[len(chs)-1].seq {
				continue
			}
			ch, err := decodeBinding(l.raw)
			if err != nil {
				return err
			}
			chs = append(chs, change{l.seq, ch})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = chs
	return s.overlay()
}

// overlay makes the roster decisions use: the portal's, with the changes
// it has not taken in on top. The caller holds mu.
func (s *Store) overlay() error {
	if s.base == nil {
		return nil
	}
	done := max(s.appliedSeq, s.base.Applied[firmware.AppliedKey(s.device, s.logID)])
	var todo []firmware.BindingChange
	for _, c := range s.changes {
		if c.seq > done {
			todo = append(todo, c.ch)
		}
	}
	r, err := firmware.Replay(s.base, todo)
	if err != nil {
		s.roster = s.base
		return err
	}
	s.roster = r
	return nil
}
