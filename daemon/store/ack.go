package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ack deletes the events with sequences up to through: the portal has
// stored them (it stores in order, so what it holds is a prefix of the
// log). Only ever a prefix of the outbox leaves it, so it never has a
// hole. Acknowledging again, or below the first event, deletes nothing.
// It returns how many events it deleted.
func (s *Store) Ack(through uint64) (int, error) {
	// An event still pending would come back once applied: let bbolt have
	// everything first. On failure (a full disk) the pending events are
	// simply acknowledged again when re-sent.
	s.Sync()
	n := 0
	err := s.write(func(tx *bolt.Tx) error {
		n = 0
		had := outboxCount(tx)
		c := tx.Bucket(bEvents).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return putOutboxCount(tx, had-n)
	})
	if err != nil {
		return 0, fmt.Errorf("store: deleting acknowledged events: %w", err)
	}
	return n, nil
}

// CorrectClock sets the times of stored events recorded while the clock
// was not set, during boot, from base: the wall time at that boot's
// monotonic zero, as learnt from the portal. Each gets Time = base + Mono
// and ClockCorrected. It returns how many events it corrected.
func (s *Store) CorrectClock(boot [16]byte, base time.Time) (int, error) {
	s.Sync()
	n := 0
	err := s.write(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bEvents)
		type kv struct{ k, v []byte }
		var changed []kv
		err := b.ForEach(func(k, v []byte) error {
			ev, err := unmarshalEvent(v)
			if err != nil {
				return fmt.Errorf("event %X: %w", k, err)
			}
			if ev.ClockSynced || ev.ClockCorrected || ev.BootID != boot {
				return nil
			}
			ev.Time, ev.ClockCorrected = base.Add(ev.Mono), true
			raw, err := ev.marshal()
			if err != nil {
				return err
			}
			changed = append(changed, kv{append([]byte(nil), k...), raw})
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range changed {
			if err := b.Put(c.k, c.v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: correcting event times: %w", err)
	}
	return n, nil
}

// Waiting returns the sequence of the first event waiting for the portal
// (0 when none waits) and the last sequence given out. It is cheap, unlike
// Outbox, which counts.
func (s *Store) Waiting() (first, last uint64, err error) {
	pend := s.snapshot()
	err = s.db.View(func(tx *bolt.Tx) error {
		last, _ = getU64(tx.Bucket(bMeta), kSeq)
		if k, _ := tx.Bucket(bEvents).Cursor().First(); k != nil {
			first = binary.BigEndian.Uint64(k)
		}
		for _, b := range pend {
			if b.last() > last {
				if first == 0 {
					first = max(b.first(), last+1)
				}
				last = b.last()
			}
		}
		return nil
	})
	return first, last, err
}

// CommandOnce records a signed command's ID until it expires, durably, and
// reports whether this is its first time: a command delivered again, or
// published again after the terminal restarted, runs once. IDs whose
// command has expired are forgotten as new ones come (an expired command
// is refused anyway).
func (s *Store) CommandOnce(id string, expires, now time.Time) (first bool, err error) {
	err = s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCommands)
		if b.Get([]byte(id)) != nil {
			first = false
			return nil
		}
		first = true
		var old [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(now) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(expires.UnixNano())))
	})
	if err != nil {
		return false, fmt.Errorf("store: recording command %s: %w", id, err)
	}
	return first, nil
}
