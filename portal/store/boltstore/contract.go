package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Contract is this bbolt store as the portal's storage contract (package
// store) has it: what portal/store/pgstore also keeps, and what the
// conformance suite (portal/store/storetest) checks of both. The bridge
// and its jobs use the store only through it (Options.DB; a Store given
// as Options.Store is taken as its Contract).
func (s *Store) Contract() store.Store { return contract{s} }

type contract struct{ s *Store }

var _ store.Store = contract{}

func (c contract) Last(_ context.Context, device, log string) (uint64, error) {
	return c.s.Last(device, log)
}

func (c contract) Put(_ context.Context, evs []protocol.Event, plan store.Plan) (int, error) {
	return c.s.putWith(evs, plan.Texts, func(e *protocol.Event) (json.RawMessage, error) {
		if plan.Binding == nil {
			return nil, nil
		}
		return plan.Binding(e), nil
	})
}

func (c contract) Events(_ context.Context, centre string, fn func(protocol.Event) bool) error {
	return c.s.Events(centre, fn)
}

func (c contract) EventsAfter(_ context.Context, centre string, after map[store.LogID]uint64, fn func(protocol.Event) bool) error {
	return c.s.eventsAfter(centre, after, fn)
}

func (c contract) Enqueue(_ context.Context, jobs ...store.Job) (int, error) {
	n := 0
	err := c.s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		for _, j := range jobs {
			if tx.Bucket(bTextsBy).Get(textsByKey(j)) != nil {
				continue // queued already
			}
			j.State, j.Attempts, j.Q = store.JobPending, 0, 0
			if err := putJob(tx, j); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (c contract) CentreJobs(_ context.Context, centre string, since time.Time, fn func(store.Job) bool) error {
	return c.s.centreJobs(centre, since, fn)
}

func (c contract) Centres(context.Context) ([]string, error) { return c.s.eventCentres() }

func (c contract) Claim(_ context.Context, owner string, now time.Time, n int, lease time.Duration) ([]store.Job, error) {
	if lease <= 0 {
		return nil, errors.New("store: a claim needs a lease")
	}
	return c.s.claim(owner, now, n, lease)
}

func (c contract) Release(_ context.Context, owner string, jobs ...store.Job) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, j := range jobs {
		if cl, ok := c.s.claimed[j.ID]; ok && cl.owner == owner {
			delete(c.s.claimed, j.ID)
		}
	}
	return nil
}

func (c contract) Finish(_ context.Context, _ string, jobs ...store.Job) error {
	return c.s.Finish(jobs...)
}

func (c contract) Queue(context.Context) (store.Queue, error) { return c.s.Queue() }

func (c contract) Jobs(_ context.Context, done bool, fn func(store.Job) bool) error {
	return c.s.eachJob(done, fn)
}

func (c contract) Published(_ context.Context, centre string) (*store.Published, error) {
	return c.s.Published(centre)
}

func (c contract) Publish(_ context.Context, p *store.Published) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	rev := p.Snapshot.Roster.Revision
	return c.s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bRoster)
		if v := b.Get([]byte(p.Snapshot.Centre)); v != nil {
			var cur store.Published
			if err := json.Unmarshal(v, &cur); err != nil {
				return fmt.Errorf("stored roster of %s: %w", p.Snapshot.Centre, err)
			}
			if cur.Snapshot.Roster.Revision+1 != rev {
				return fmt.Errorf("revision %d of %s, the latest being %d: %w", rev, p.Snapshot.Centre, cur.Snapshot.Roster.Revision, store.ErrRevisionTaken)
			}
		}
		return b.Put([]byte(p.Snapshot.Centre), raw)
	})
}

func (c contract) RecordGap(_ context.Context, g store.Gap) error { return c.s.recordGap(&g) }

func (c contract) Gaps(_ context.Context, centre string) ([]store.Gap, error) {
	return c.s.gaps(centre)
}

func (c contract) NextBinding(context.Context) (*store.BindingJob, error) {
	var j *store.BindingJob
	err := c.s.db.View(func(tx *bolt.Tx) error {
		if k, v := tx.Bucket(bBindQ).Cursor().First(); k != nil {
			j = &store.BindingJob{Q: binary.BigEndian.Uint64(k), Job: append(json.RawMessage(nil), v...)}
		}
		return nil
	})
	return j, err
}

func (c contract) UpdateBinding(_ context.Context, j store.BindingJob) error {
	return c.s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bBindQ).Get(u64(j.Q)) == nil {
			return fmt.Errorf("store: binding job %d is not queued", j.Q)
		}
		return putRawBindJob(tx, j.Q, j.Job)
	})
}

func (c contract) DoneBinding(_ context.Context, q uint64) error {
	return c.s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bBindQ).Delete(u64(q)) })
}

func (c contract) Ping(ctx context.Context) error { return c.s.Ping(ctx) }

func (c contract) Close() error { return c.s.Close() }

func (c contract) Devices(_ context.Context, centre string) ([]string, error) {
	return c.s.Devices(centre)
}

// UpdateRegistry implements store.Registry: bbolt has one writer at a
// time, and one process holds the file.
func (c contract) UpdateRegistry(_ context.Context, fn func(store.RegistryTx) error) error {
	return c.s.db.Update(func(tx *bolt.Tx) error { return fn(boltRegistry{tx, true}) })
}

// ViewRegistry implements store.Registry.
func (c contract) ViewRegistry(_ context.Context, fn func(store.RegistryTx) error) error {
	return c.s.db.View(func(tx *bolt.Tx) error { return fn(boltRegistry{tx, false}) })
}

// boltRegistry keeps each registry table in a bucket of its name.
type boltRegistry struct {
	tx       *bolt.Tx
	writable bool
}

func (r boltRegistry) bucket(table string) (*bolt.Bucket, error) {
	if b := r.tx.Bucket([]byte(table)); b != nil || !r.writable {
		return b, nil
	}
	return r.tx.CreateBucketIfNotExists([]byte(table))
}

func (r boltRegistry) Get(table string, key []byte) ([]byte, error) {
	b, err := r.bucket(table)
	if b == nil || err != nil {
		return nil, err
	}
	if v := b.Get(key); v != nil {
		return bytes.Clone(v), nil
	}
	return nil, nil
}

func (r boltRegistry) Put(table string, key, value []byte) error {
	b, err := r.bucket(table)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (r boltRegistry) Delete(table string, key []byte) error {
	b, err := r.bucket(table)
	if b == nil || err != nil {
		return err
	}
	return b.Delete(key)
}

func (r boltRegistry) Scan(table string, prefix []byte, fn func(k, v []byte) error) error {
	b, err := r.bucket(table)
	if b == nil || err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(bytes.Clone(k), bytes.Clone(v)); err != nil {
			if errors.Is(err, store.ErrStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (r boltRegistry) Sequence(table string) (uint64, error) {
	b, err := r.bucket(table)
	if b == nil || err != nil {
		return 0, err
	}
	return b.Sequence(), nil
}

func (r boltRegistry) NextSequence(table string) (uint64, error) {
	b, err := r.bucket(table)
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}

func (r boltRegistry) SetSequence(table string, n uint64) error {
	b, err := r.bucket(table)
	if err != nil {
		return err
	}
	return b.SetSequence(n)
}

func (r boltRegistry) QueueBinding(q uint64, job json.RawMessage) (uint64, error) {
	b := r.tx.Bucket(bBindQ)
	if q == 0 {
		n, err := b.NextSequence()
		if err != nil {
			return 0, err
		}
		q = n
	}
	return q, b.Put(u64(q), job)
}

func (r boltRegistry) BindingQueued() (bool, error) {
	k, _ := r.tx.Bucket(bBindQ).Cursor().First()
	return k != nil, nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// putRawBindJob queues (q 0: at the next place) or replaces a job, as
// encoded, in a bbolt transaction.
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

// gaps lists a centre's recorded gaps.
func (s *Store) gaps(centre string) ([]store.Gap, error) {
	var out []store.Gap
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bGaps).ForEach(func(_, raw []byte) error {
			var g store.Gap
			if err := json.Unmarshal(raw, &g); err != nil {
				return err
			}
			if g.Centre == centre {
				out = append(out, g)
			}
			return nil
		})
	})
	return out, err
}

// recordGap moves a log's last sequence past a gap and keeps the record,
// in one transaction; it refuses if the log moved meanwhile.
func (s *Store) recordGap(g *store.Gap) error {
	raw, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bLast)
		lk := lastKey(g.Device, g.Log)
		var last uint64
		if v := lb.Get(lk); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		if last+1 != g.From {
			return store.ErrLogMoved
		}
		if err := lb.Put(lk, binary.BigEndian.AppendUint64(nil, g.To)); err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64([]byte(g.Device+"\x00"+g.Log+"\x00"), g.From)
		return tx.Bucket(bGaps).Put(k, raw)
	})
}

// eventCentres are the centres of the events stored, sorted.
func (s *Store) eventCentres() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("stored event key %q has no centre", k)
			}
			out = append(out, string(k[:i]))
			// The next centre's keys begin after every "centre\x00…".
			k, _ = c.Seek(append(bytes.Clone(k[:i]), 1))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the centres of the events stored: %w", err)
	}
	return out, nil
}

// Devices returns the terminals of a centre the store has events from,
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

// Lock implements store.Locks. One process holds a bbolt file, so the
// locks are this process's: a channel of one per name.
func (c contract) Lock(ctx context.Context, name string) (func(), error) {
	c.s.mu.Lock()
	if c.s.locks == nil {
		c.s.locks = map[string]chan struct{}{}
	}
	l := c.s.locks[name]
	if l == nil {
		l = make(chan struct{}, 1)
		c.s.locks[name] = l
	}
	c.s.mu.Unlock()
	select {
	case l <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-l }) }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store: waiting for the lock %q: %w", name, ctx.Err())
	}
}

// Retry implements store.TextQueue: the text leaves the done for the
// queue, at its old place.
func (c contract) Retry(_ context.Context, id, to string, now time.Time) error {
	return c.s.db.Update(func(tx *bolt.Tx) error {
		done := tx.Bucket(bJobs)
		cur := done.Cursor()
		for k, v := cur.Last(); k != nil; k, v = cur.Prev() {
			var j store.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("stored job %x: %w", k, err)
			}
			if j.ID != id {
				continue
			}
			if j.State != store.JobFailed && j.State != store.JobHeld {
				return fmt.Errorf("%w: %s is %s", store.ErrNotRetriable, id, j.State)
			}
			if err := done.Delete(k); err != nil {
				return err
			}
			j.State, j.To, j.NextAt, j.Attempts, j.Reason, j.Receipt, j.SentAt, j.ClaimedAt = store.JobPending, to, now, 0, "", "", time.Time{}, time.Time{}
			return putJob(tx, j)
		}
		return fmt.Errorf("%w: no failed or held text %s", store.ErrNotRetriable, id)
	})
}
