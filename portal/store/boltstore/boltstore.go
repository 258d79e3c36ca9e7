// Package boltstore is the portal's embedded store: the storage contract
// (package store) kept in one bbolt file, for kiumbridge on one host (the
// default, and make run's). Events and the texts or binding jobs they call
// for are written in one transaction, so a crash leaves both or neither.
// portal/store/pgstore keeps the same contract on PostgreSQL for several
// hosts; portal/store/storetest checks both alike.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Store is the bridge's bbolt database: every stored event, the last
// sequence of each terminal log, the text queue, the rosters published,
// the gaps recorded, the binding jobs' queue and the registry's tables
// (the card registry, its audit records; package binder keeps them).
//
// bbolt is one process's: bridge instances that share it run in one
// process (see README, "Several bridges"). Several hosts need the same
// Store on a shared database.
type Store struct {
	db *bolt.DB
	// claimed are the jobs texters of this process are sending, by ID:
	// bridges sharing the store never send one twice. A claim lapses at
	// its until (zero: never; the bridge's own texters release theirs).
	mu      sync.Mutex
	claimed map[string]claim
	// locks are the named locks (store.Locks), by name.
	locks map[string]chan struct{}
	// JobsFor says which texts an event calls for, for Put (tools and
	// tests that fill a store; a bridge stores through the contract).
	JobsFor func(e *protocol.Event) []Job
	// pinging: a Ping's read has not returned yet.
	pinging atomic.Bool
}

var (
	bEvents = []byte("events")
	bLast   = []byte("last")
	bJobs   = []byte("jobs")  // done: sent, failed, held
	bQueue  = []byte("queue") // to do: pending, sending
	bRoster = []byte("rosters")
	// bGaps keeps the gaps recorded: device, log and first missing
	// sequence → Gap.
	bGaps = []byte("gaps")
	// bBindQ is the binding jobs' queue: q → job, to apply in order.
	bBindQ = []byte("bindq")
	// bTextsBy finds a centre's texts by their tap's time: centre, 0,
	// At (Unix nanoseconds, big-endian), ID → where the job is (jobAt).
	bTextsBy = []byte("textsby")
)

// Open opens or creates the bridge's store.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bridge store %s is held by another process: one kiumbridge per store (instances sharing it run in one process: the config's \"instances\")", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bridge store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bEvents, bLast, bJobs, bQueue, bRoster, bGaps, bBindQ} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bTextsBy) == nil {
			return indexTexts(tx) // a store of before the index
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: %w", path, err)
	}
	return &Store{db: db, claimed: map[string]claim{}}, nil
}

// claim is a texter's hold on a job.
type claim struct {
	owner string
	until time.Time // zero: until released
}

// held reports whether the claim holds at now.
func (c claim) held(now time.Time) bool { return c.until.IsZero() || now.Before(c.until) }

// OpenReadOnly opens an existing store for reading (kiumbridge texts
// and export). A running bridge holds the store: it cannot be opened then.
func OpenReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("bridge store: %w (check the config's store)", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bridge store %s is held by the running kiumbridge: stop it, or read a copy of the store (kiumbridge status works while it runs)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bridge store %s: %w", path, err)
	}
	return &Store{db: db, claimed: map[string]claim{}}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func lastKey(device, log string) []byte { return []byte(device + "\x00" + log) }

func eventKey(e *protocol.Event) []byte {
	k := []byte(e.Centre + "\x00" + e.Device + "\x00" + e.Log + "\x00")
	return binary.BigEndian.AppendUint64(k, e.Seq)
}

// Last implements ingest.Store.
func (s *Store) Last(device, log string) (uint64, error) {
	var last uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bLast).Get(lastKey(device, log)); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return last, err
}

// Put stores the events, their log's last sequence and the texts JobsFor
// says they call for, in one transaction (ingest.Store, for tools and
// tests: a bridge stores through the contract, with binding jobs).
// Events stored already are skipped; a gap is an error.
func (s *Store) Put(evs []protocol.Event) error {
	_, err := s.putWith(evs, s.JobsFor, func(*protocol.Event) (json.RawMessage, error) { return nil, nil })
	return err
}

// putWith stores evs with the texts jobsFor says each calls for (nil:
// none) and the binding job bindJobFor makes of a card_bound event (nil:
// none), in one transaction. It returns how many events it stored.
func (s *Store) putWith(evs []protocol.Event, jobsFor func(*protocol.Event) []Job, bindJobFor func(*protocol.Event) (json.RawMessage, error)) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		eb, lb := tx.Bucket(bEvents), tx.Bucket(bLast)
		for i := range evs {
			e := &evs[i]
			lk := lastKey(e.Device, e.Log)
			var last uint64
			if v := lb.Get(lk); len(v) == 8 {
				last = binary.BigEndian.Uint64(v)
			}
			if e.Seq <= last {
				continue // stored by another instance sharing the store
			}
			if e.Seq != last+1 {
				return fmt.Errorf("event %s does not follow %d: %w", e.ID, last, store.ErrNotNext)
			}
			if e.Outcome == protocol.OutcomeCardBound {
				raw, err := bindJobFor(e)
				if err != nil {
					return err
				}
				if raw != nil {
					if err := putRawBindJob(tx, 0, raw); err != nil {
						return err
					}
				}
				c := *e
				c.UID = "" // raw UIDs are not kept: the registry knows the card by its HMAC
				e = &c
			}
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := eb.Put(eventKey(e), raw); err != nil {
				return err
			}
			if err := lb.Put(lk, binary.BigEndian.AppendUint64(nil, e.Seq)); err != nil {
				return err
			}
			n++
			if jobsFor == nil {
				continue
			}
			for _, j := range jobsFor(e) {
				if err := putJob(tx, j); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Events calls fn for each stored event of a centre (all when centre is
// empty), until fn returns false.
func (s *Store) Events(centre string, fn func(protocol.Event) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		prefix := []byte(centre)
		if centre != "" {
			prefix = append(prefix, 0)
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e protocol.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("stored event %q: %w", k, err)
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// Job states: the contract's (package store).
const (
	JobPending = store.JobPending
	JobSending = store.JobSending
	JobSent    = store.JobSent
	JobFailed  = store.JobFailed
	JobHeld    = store.JobHeld
)

// Job is one text to one guardian (store.Job).
type Job = store.Job

// putJob files a job by its state: pending and sending ones in the
// queue, the others with the done. Both buckets are keyed by sequence,
// so writes append (IDs would land all over the tree).
func putJob(tx *bolt.Tx, j Job) error {
	q, done := tx.Bucket(bQueue), tx.Bucket(bJobs)
	if j.Q == 0 {
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		j.Q = seq
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	qk := binary.BigEndian.AppendUint64(nil, j.Q)
	if j.State == JobPending || j.State == JobSending {
		q.FillPercent = 0.9
		if err := q.Put(qk, raw); err != nil {
			return err
		}
		return tx.Bucket(bTextsBy).Put(textsByKey(j), append([]byte{inQueue}, qk...))
	}
	if err := q.Delete(qk); err != nil {
		return err
	}
	seq, err := done.NextSequence()
	if err != nil {
		return err
	}
	done.FillPercent = 1
	dk := binary.BigEndian.AppendUint64(nil, seq)
	if err := done.Put(dk, raw); err != nil {
		return err
	}
	return tx.Bucket(bTextsBy).Put(textsByKey(j), append([]byte{inDone}, dk...))
}

// Where a job is, in bTextsBy's values: its bucket, then its key there.
const (
	inQueue = 'q'
	inDone  = 'd'
)

func textsByKey(j Job) []byte {
	k := append([]byte(j.Centre), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(j.At.UnixNano()))
	return append(k, j.ID...)
}

// indexTexts makes bTextsBy of the jobs stored.
func indexTexts(tx *bolt.Tx) error {
	by, err := tx.CreateBucket(bTextsBy)
	if err != nil {
		return err
	}
	for _, b := range []struct {
		name  []byte
		where byte
	}{{bQueue, inQueue}, {bJobs, inDone}} {
		err := tx.Bucket(b.name).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("stored job %x: %w", k, err)
			}
			return by.Put(textsByKey(j), append([]byte{b.where}, k...))
		})
		if err != nil {
			return fmt.Errorf("indexing the texts by centre: %w", err)
		}
	}
	return nil
}

// centreJobs calls fn for a centre's jobs tapped at or after since, in
// the order of their tap.
func (s *Store) centreJobs(centre string, since time.Time, fn func(Job) bool) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		by := tx.Bucket(bTextsBy)
		if by == nil { // opened read-only, before the index
			return s.walkCentre(tx, centre, since, fn)
		}
		prefix := append([]byte(centre), 0)
		c := by.Cursor()
		q, done := tx.Bucket(bQueue), tx.Bucket(bJobs)
		for k, v := c.Seek(binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(since.UnixNano()))); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 9 {
				return fmt.Errorf("stored text index %q: bad value", k)
			}
			b := q
			if v[0] == inDone {
				b = done
			}
			raw := b.Get(v[1:])
			if raw == nil {
				return fmt.Errorf("stored text index %q: no job there", k)
			}
			var j Job
			if err := json.Unmarshal(raw, &j); err != nil {
				return fmt.Errorf("stored job %x: %w", v[1:], err)
			}
			if !fn(j) {
				return errStop
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// walkCentre is centreJobs without the index: every job read.
func (s *Store) walkCentre(tx *bolt.Tx, centre string, since time.Time, fn func(Job) bool) error {
	var js []Job
	for _, b := range [][]byte{bQueue, bJobs} {
		err := tx.Bucket(b).ForEach(func(k, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("stored job %q: %w", k, err)
			}
			if j.Centre == centre && !j.At.Before(since) {
				js = append(js, j)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortStableFunc(js, func(a, b Job) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, j := range js {
		if !fn(j) {
			return errStop
		}
	}
	return nil
}

// eventsAfter: the centre's events past after's sequences, each log's
// old events skipped by a seek.
func (s *Store) eventsAfter(centre string, after map[store.LogID]uint64, fn func(protocol.Event) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		prefix := append([]byte(centre), 0)
		k, v := c.Seek(prefix)
		for k != nil && bytes.HasPrefix(k, prefix) && len(k) >= len(prefix)+8 {
			lp := k[:len(k)-8] // centre, 0, device, 0, log, 0
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			device, log, _ := strings.Cut(string(lp[len(prefix):len(lp)-1]), "\x00")
			if from := after[store.LogID{Device: device, Log: log}]; seq <= from {
				k, v = c.Seek(binary.BigEndian.AppendUint64(bytes.Clone(lp), from+1))
				continue
			}
			var e protocol.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("stored event %q: %w", k, err)
			}
			if !fn(e) {
				return nil
			}
			k, v = c.Next()
		}
		return nil
	})
}

// Jobs calls fn for every job, to do first, until fn returns false.
func (s *Store) Jobs(fn func(Job) bool) error { return s.walk([][]byte{bQueue, bJobs}, fn) }

// walk calls fn for the jobs of buckets, in their order, until fn
// returns false.
func (s *Store) walk(buckets [][]byte, fn func(Job) bool) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			err := tx.Bucket(b).ForEach(func(k, v []byte) error {
				var j Job
				if err := json.Unmarshal(v, &j); err != nil {
					return fmt.Errorf("stored job %q: %w", k, err)
				}
				if !fn(j) {
					return errStop
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

var errStop = errors.New("stop")

// eachJob calls fn for the jobs to do (the queue) and, with done, those
// done too, until fn returns false. A job a texter of this process is
// handing to its provider now is JobSending (on disk it is pending until
// its outcome is recorded).
func (s *Store) eachJob(done bool, fn func(Job) bool) error {
	s.mu.Lock()
	sending := maps.Clone(s.claimed)
	s.mu.Unlock()
	buckets := [][]byte{bQueue}
	if done {
		buckets = append(buckets, bJobs)
	}
	return s.walk(buckets, func(j Job) bool {
		if _, ok := sending[j.ID]; ok && j.State == JobPending {
			j.State = JobSending
		}
		return fn(j)
	})
}

// Queue is the text queue's part still to do (store.Queue).
type Queue = store.Queue

// Queue reads the texts still to send. It reads the queue alone, never
// the texts done: its cost is the backlog's, however many texts were
// sent before.
func (s *Store) Queue() (Queue, error) {
	var q Queue
	err := s.eachJob(false, func(j Job) bool {
		if j.State == JobSending {
			q.Sending++
		} else {
			q.Pending++
		}
		if q.Oldest.IsZero() || j.Created.Before(q.Oldest) {
			q.Oldest = j.Created
		}
		return true
	})
	if err != nil {
		return Queue{}, fmt.Errorf("reading the text queue: %w", err)
	}
	return q, nil
}

// Ping returns once the store answers a read: the watchdog's check of
// the store (a hung disk or a stuck remap holds it); it returns ctx's
// error if the read does not come back.
func (s *Store) Ping(ctx context.Context) error {
	if !s.pinging.CompareAndSwap(false, true) {
		return errors.New("the store does not answer: the last read is still waiting")
	}
	done := make(chan error, 1)
	go func() {
		defer s.pinging.Store(false)
		done <- s.db.View(func(tx *bolt.Tx) error {
			tx.Bucket(bQueue).Cursor().First()
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("reading the store: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the store does not answer a read: %w", ctx.Err())
	}
}

// Claim returns up to n jobs due at now that no texter of this process is
// sending, and marks them so. It writes nothing to disk: a job stays
// pending there until Finish records its outcome, so a crash leaves it to
// be sent again, with the same idempotency key.
func (s *Store) Claim(now time.Time, n int) ([]Job, error) {
	return s.claim("", now, n, 0)
}

// claim is Claim for owner, each claim lapsing after lease (0: never).
func (s *Store) claim(owner string, now time.Time, n int, lease time.Duration) ([]Job, error) {
	var out []Job
	s.mu.Lock()
	defer s.mu.Unlock()
	claimed := s.claimed
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bQueue).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("stored job %x: %w", k, err)
			}
			if cl, ok := claimed[j.ID]; ok && cl.held(now) {
				continue
			}
			if j.NextAt.After(now) {
				continue
			}
			j.State, j.ClaimedAt = JobSending, now
			j.Attempts++
			out = append(out, j)
		}
		return nil
	})
	var until time.Time
	if lease > 0 {
		until = now.Add(lease)
	}
	for _, j := range out {
		claimed[j.ID] = claim{owner: owner, until: until}
	}
	return out, err
}

// Release gives back claims of jobs not sent after all (a stop came
// first): they stay pending, for this process or the next.
func (s *Store) Release(jobs ...Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		delete(s.claimed, j.ID)
	}
}

// Finish records jobs' outcomes, in one transaction, and releases their
// claims.
func (s *Store) Finish(jobs ...Job) error {
	defer func() {
		s.mu.Lock()
		for _, j := range jobs {
			delete(s.claimed, j.ID)
		}
		s.mu.Unlock()
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, j := range jobs {
			if err := putJob(tx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// Published is a centre's latest roster revision (store.Published).
type Published = store.Published

// Published returns a centre's latest roster revision, nil if none.
func (s *Store) Published(centre string) (*Published, error) {
	var p *Published
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bRoster).Get([]byte(centre))
		if v == nil {
			return nil
		}
		p = &Published{}
		return json.Unmarshal(v, p)
	})
	return p, err
}

// SetPublished records a centre's latest roster revision, before it goes
// out: a revision number is never given to two different rosters.
func (s *Store) SetPublished(p *Published) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bRoster).Put([]byte(p.Snapshot.Centre), raw) })
}
