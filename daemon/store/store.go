// Package store is the terminal's durable state: a bbolt database with the
// roster and its card index, each child's presence for the day, the event
// log that is also the outbox to the portal, and the device's metadata
// (schema version, device ID, boot counter, last sequence), fronted by a
// journal for taps.
//
// A tap is one batch — its event, its sequence and the child's presence
// change — written as one journal record with one fdatasync before the
// caller shows any feedback. A goroutine then applies the batch to bbolt in
// one transaction; reads see journaled batches at once, whether bbolt has
// them yet or not. Opening the store applies whatever the journal holds
// that bbolt does not (after a crash or a power cut), so sequences never
// repeat and presence always agrees with the events. Nothing here deletes
// an event: acknowledgement by the portal is the sync's business.
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
)

// Errors a caller can test for.
var (
	// ErrLocked: another process holds the store.
	ErrLocked = errors.New("store: held by another process")
	// ErrForeign: the file is not a kiumtap store, or is damaged.
	ErrForeign = errors.New("store: not a kiumtap store")
	// ErrDiskFull: the tap could not be written for lack of space;
	// nothing already stored was lost.
	ErrDiskFull = errors.New("store: disk full")
	// ErrNoRoster: no roster has been received yet.
	ErrNoRoster = errors.New("store: no roster yet")
)

// SchemaVersion is the layout this code writes.
const SchemaVersion = 3

var (
	bMeta     = []byte("meta")
	bRoster   = []byte("roster")
	bCards    = []byte("cards")
	bPresence = []byte("presence")
	bEvents   = []byte("events")
	bBindings = []byte("bindings") // binding changes made here, by sequence (schema 2)
	bCommands = []byte("commands") // signed commands run, by ID, until they expire (schema 3)

	kSchema   = []byte("schema")
	kDevice   = []byte("device")
	kBoots    = []byte("boots")
	kSeq      = []byte("seq")
	kLog      = []byte("log")
	kRoster   = []byte("current")
	kReceived = []byte("received")
	kApplied  = []byte("applied") // this log's highest applied_bindings seen in a roster
)

// migrations[i] brings a store from schema i+1 to i+2.
var migrations = []func(tx *bolt.Tx) error{
	// 1 → 2: binding changes made at the terminal (card enrolment).
	func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bBindings); return err },
	// 2 → 3: the signed commands run, so that none runs twice.
	func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bCommands); return err },
}

// Options configure Open.
type Options struct {
	// Path of the database file.
	Path string
	// DeviceID names this terminal; required when the store is created and
	// checked against the stored one afterwards.
	DeviceID string
	// LockTimeout is how long Open waits for another process to release the
	// file. Default 1 s.
	LockTimeout time.Duration
	// NoSync skips fsync: for benchmarks that measure without the disk.
	NoSync bool
	// JournalPath is the tap journal's file; default Path + "." + the
	// log ID + ".journal", so that a new store (a new log) never takes up
	// the journal of one moved aside.
	JournalPath string
	// ReadOnly opens an existing store for reading (kiumctl), without
	// counting a boot. It cannot be opened while kiumtapd holds the store.
	ReadOnly bool
	// Logger; default discard.
	Logger *slog.Logger
}

// Store is an open store.
type Store struct {
	db     *bolt.DB
	opts   Options
	log    *slog.Logger
	device string
	logID  string
	boots  uint64

	// mu guards the rosters: the portal's (base) and the one decisions
	// use (roster): base with this terminal's binding changes the portal
	// has not taken in yet (changes) laid on top.
	mu       sync.RWMutex
	base     *firmware.Roster
	roster   *firmware.Roster
	changes  []change
	received time.Time
	// applied is the highest sequence of this log any roster from the
	// portal has said it took in: a later roster that lacks it (a portal
	// store rebuilt) does not bring old changes back on top.
	appliedSeq uint64

	// Writers of batches (Tap, CloseDay) hold tapMu: it orders sequences
	// and journal records.
	tapMu sync.Mutex
	seq   uint64 // the last sequence given out
	jr    *journal
	// closedBefore: every day before it is closed (no child left inside
	// on it); a tap on a later day first closes what is open.
	closedBefore firmware.Date

	// pmu guards pending: batches journaled and not yet committed to
	// bbolt, in order. The applier removes them only after bbolt's commit.
	pmu      sync.Mutex
	applied  *sync.Cond // broadcast on every apply attempt
	pending  []*batch
	applyErr error     // of the last apply attempt
	started  uint64    // apply attempts started...
	done     uint64    // ...and finished
	writing  time.Time // when the attempt writing to bbolt now began; zero: none
	closed   bool      // the applier has stopped
	kick     chan struct{}
	stop     chan struct{}
	stopped  chan struct{}

	replayed int // batches applied from the journal by Open

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store, runs migrations and counts a boot.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("store: no path given")
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadOnly {
		if _, err := os.Stat(opts.Path); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout, NoSync: opts.NoSync, ReadOnly: opts.ReadOnly,
		// A tap commits a few pages: leave the freelist out of each commit
		// (bbolt rebuilds it on open) and keep it as a map.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is locked after %v: is kiumtapd (or another kiumtap program) running? kiumctl asks a running kiumtapd through its socket", ErrLocked, opts.Path, opts.LockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, fmt.Errorf("%w: %s: %v; move it and its .journal file aside to start a new store (events in them are not lost if the files are kept)", ErrForeign, opts.Path, err)
	case err != nil:
		return nil, fmt.Errorf("store: opening %s: %w", opts.Path, err)
	}
	s := &Store{db: db, opts: opts, log: opts.Logger}
	initFn := db.Update
	if opts.ReadOnly {
		initFn = db.View
	}
	if err := initFn(s.init); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadRoster(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.openJournal(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadBindings(); err != nil {
		s.Close()
		return nil, err
	}
	s.releaseOpenPages()
	return s, nil
}

// releaseOpenPages gives back the pages of the database file that opening
// it touched: rebuilding the freelist (NoFreelistSync) reads every page,
// and 100,000 events are some 16 MiB that would stay resident in
// kiumtapd for nothing, on a Pi Zero with 512 MiB. The mapping is
// read-only and shared (bbolt writes with pwrite), so MADV_DONTNEED only
// unmaps them from this process; they stay in the page cache, and a later
// read maps what it needs again.
func (s *Store) releaseOpenPages() {
	fi, err := os.Stat(s.opts.Path)
	if err != nil || fi.Size() == 0 {
		return
	}
	info := s.db.Info()
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, info.Data, uintptr(fi.Size()), unix.MADV_DONTNEED); errno != 0 {
		s.log.Debug("store: releasing the pages opening touched", "err", errno)
	}
}

// openJournal brings bbolt up to date with the journal and starts the
// applier. A read-only store keeps what bbolt lacks as pending instead.
func (s *Store) openJournal() error {
	path := s.opts.JournalPath
	if path == "" {
		path = s.opts.Path + "." + s.logID + ".journal"
	}
	jr, recs, err := openJournal(path, s.opts.NoSync, s.opts.ReadOnly)
	if err != nil {
		return err
	}
	s.applied = sync.NewCond(&s.pmu)
	var inDB uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		inDB, _ = getU64(tx.Bucket(bMeta), kSeq)
		return nil
	}); err != nil {
		jr.close()
		return err
	}
	s.seq = inDB
	for _, b := range recs {
		if b.last() > inDB {
			s.pending = append(s.pending, b)
			s.seq = b.last()
		}
	}
	if len(s.pending) > 0 && s.pending[0].first() > inDB+1 {
		// Not this database's journal: its taps do not follow the stored
		// ones. Keep both; apply nothing.
		jr.close()
		return fmt.Errorf("store: the journal %s holds taps %d..%d, but %s ends at %d: they do not belong together; move the journal aside (it keeps those taps) and start again", path, s.pending[0].first(), s.seq, s.opts.Path, inDB)
	}
	if s.opts.ReadOnly {
		jr.close()
		return nil
	}
	if len(s.pending) > 0 {
		s.log.Info("store: applying taps from the journal", "batches", len(s.pending), "from", s.pending[0].first(), "to", s.seq)
		err := s.write(func(tx *bolt.Tx) error {
			for _, b := range s.pending {
				if err := b.apply(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			jr.close()
			return fmt.Errorf("store: applying the journal %s to %s: %w; both files keep every tap", path, s.opts.Path, err)
		}
		s.replayed = len(s.pending)
		s.pending = nil
	}
	jr.restart()
	if err := jr.shrink(); err != nil {
		s.log.Warn("store: the journal stays large", "err", err)
	}
	s.jr = jr
	s.kick = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.applier()
	return nil
}

// applier commits journaled batches to bbolt, all that are pending in one
// transaction, retrying with backoff while bbolt cannot take them (a full
// disk): the journal keeps them meanwhile.
func (s *Store) applier() {
	defer close(s.stopped)
	const minWait, maxWait = 50 * time.Millisecond, 5 * time.Second
	wait := minWait
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		stopping := false
		select {
		case <-s.kick:
		case <-retry.C:
		case <-s.stop:
			stopping = true
		}
		s.pmu.Lock()
		todo := slices.Clone(s.pending)
		s.started++
		if len(todo) > 0 {
			s.writing = time.Now()
		}
		s.pmu.Unlock()
		var err error
		if len(todo) > 0 {
			err = s.write(func(tx *bolt.Tx) error {
				for _, b := range todo {
					if err := b.apply(tx); err != nil {
						return err
					}
				}
				return nil
			})
		}
		s.pmu.Lock()
		s.applyErr = err
		s.writing = time.Time{}
		s.done++
		if err == nil {
			s.pending = slices.Clone(s.pending[len(todo):])
		}
		s.applied.Broadcast()
		s.pmu.Unlock()
		if stopping {
			s.pmu.Lock()
			s.closed = true
			s.applied.Broadcast()
			s.pmu.Unlock()
			if err != nil {
				s.log.Error("store: closing with taps only in the journal; they are applied when the store is next opened", "err", err)
			}
			return
		}
		if err != nil {
			s.log.Error("store: applying taps to the database; the journal keeps them, retrying", "err", err, "in", wait)
			retry.Reset(wait)
			wait = min(2*wait, maxWait)
		} else {
			wait = minWait
		}
	}
}

// StuckAfter is how long one write of journaled taps to bbolt may last
// before Ping calls the store hung: a disk that does not answer.
const StuckAfter = 20 * time.Second

// Ping returns nil when the store responds: no write to the database has
// hung for StuckAfter, and a read transaction completes before ctx ends.
// It is the watchdog's question; a full disk is not a hang (the applier
// retries and the journal keeps the taps).
func (s *Store) Ping(ctx context.Context) error {
	s.pmu.Lock()
	writing := s.writing
	s.pmu.Unlock()
	if !writing.IsZero() && time.Since(writing) > StuckAfter {
		return fmt.Errorf("store: a write to %s has not returned for %v: the disk does not answer", s.opts.Path, time.Since(writing).Round(time.Second))
	}
	done := make(chan error, 1)
	go func() {
		done <- s.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bMeta) == nil {
				return errors.New("store: no meta bucket")
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store: a read of %s has not returned: %w", s.opts.Path, ctx.Err())
	}
}

// JournalLag is how many batches of taps the journal holds that the
// database does not have yet, and when the oldest of them was journaled
// (zero when none).
func (s *Store) JournalLag() (int, time.Time) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) == 0 {
		return 0, time.Time{}
	}
	return len(s.pending), s.pending[0].queued
}

// Replayed is how many taps (batches) Open found in the journal only and
// applied to bbolt: taps of a crash or power cut.
func (s *Store) Replayed() int { return s.replayed }

// Sync waits until bbolt holds every tap journaled so far, or the attempt
// to apply them fails.
func (s *Store) Sync() error {
	if s.jr == nil {
		return nil
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for len(s.pending) > 0 {
		want := s.started + 1 // an attempt that starts after now
		select {
		case s.kick <- struct{}{}:
		default:
		}
		for s.done < want && !s.closed {
			s.applied.Wait()
		}
		if s.closed {
			return errors.New("store: closed")
		}
		if len(s.pending) > 0 && s.applyErr != nil {
			return s.applyErr
		}
	}
	return nil
}

// snapshot returns the pending batches; reads merge those that bbolt does
// not have yet. Take it before opening the read transaction: a batch gone
// from pending is already committed, so that transaction sees it.
func (s *Store) snapshot() []*batch {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return slices.Clone(s.pending)
}

func (s *Store) init(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	if meta == nil && !tx.Writable() {
		return fmt.Errorf("%w: %s has no kiumtap metadata", ErrForeign, s.opts.Path)
	}
	if meta == nil {
		empty := true
		tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return fmt.Errorf("%w: %s is a bbolt file of some other program", ErrForeign, s.opts.Path)
		}
		if s.opts.DeviceID == "" {
			return errors.New("store: a new store needs a device ID")
		}
		for _, b := range [][]byte{bMeta, bRoster, bCards, bPresence, bEvents, bBindings, bCommands} {
			if _, err := tx.CreateBucket(b); err != nil {
				return fmt.Errorf("store: creating bucket %s: %w", b, err)
			}
		}
		meta = tx.Bucket(bMeta)
		if err := putU64(meta, kSchema, SchemaVersion); err != nil {
			return err
		}
		if err := meta.Put(kDevice, []byte(s.opts.DeviceID)); err != nil {
			return err
		}
	}
	v, ok := getU64(meta, kSchema)
	switch {
	case !ok:
		return fmt.Errorf("%w: %s has no schema version", ErrForeign, s.opts.Path)
	case v > SchemaVersion:
		return fmt.Errorf("store: %s has schema %d, written by a newer kiumtap; this one knows up to %d", s.opts.Path, v, SchemaVersion)
	}
	if v < SchemaVersion && !tx.Writable() {
		return fmt.Errorf("store: %s has schema %d; open it with kiumtapd once to migrate it to %d", s.opts.Path, v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		if err := migrations[v-1](tx); err != nil {
			return fmt.Errorf("store: migrating schema %d to %d: %w", v, v+1, err)
		}
		if err := putU64(meta, kSchema, v+1); err != nil {
			return err
		}
	}
	for _, b := range [][]byte{bRoster, bCards, bPresence, bEvents, bBindings, bCommands} {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("%w: %s lacks bucket %s", ErrForeign, s.opts.Path, b)
		}
	}
	s.device = string(meta.Get(kDevice))
	if s.opts.DeviceID != "" && s.opts.DeviceID != s.device {
		return fmt.Errorf("store: %s belongs to device %q, not %q: a store moves with its terminal", s.opts.Path, s.device, s.opts.DeviceID)
	}
	s.logID = string(meta.Get(kLog))
	boots, _ := getU64(meta, kBoots)
	if !tx.Writable() {
		s.boots = boots
		return nil
	}
	if s.logID == "" {
		// The log's identity: sequences restart at 1 only in a new store,
		// and the portal tells the two apart by it.
		var id [8]byte
		if _, err := rand.Read(id[:]); err != nil {
			return err
		}
		s.logID = hex.EncodeToString(id[:])
		if err := meta.Put(kLog, []byte(s.logID)); err != nil {
			return err
		}
	}
	s.boots = boots + 1
	return putU64(meta, kBoots, s.boots)
}

// Close applies what is pending to bbolt and closes the store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.jr != nil {
			close(s.stop)
			<-s.stopped
		}
		s.closeErr = errors.Join(s.jr.close(), s.db.Close())
	})
	return s.closeErr
}

// DeviceID is the device the store belongs to.
func (s *Store) DeviceID() string { return s.device }

// LogID identifies this store's event log: sequences are unique within it.
func (s *Store) LogID() string { return s.logID }

// Boots is how many times the store has been opened, this time included.
func (s *Store) Boots() uint64 { return s.boots }

// Received is when the current roster arrived (zero without one).
func (s *Store) Received() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.received
}

// Path is the database file.
func (s *Store) Path() string { return s.opts.Path }

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}

func getU64(b *bolt.Bucket, k []byte) (uint64, bool) {
	v := b.Get(k)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// write runs a read-write transaction and turns a full disk into ErrDiskFull.
func (s *Store) write(fn func(tx *bolt.Tx) error) error {
	err := s.db.Update(fn)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	return err
}

// ApplyRoster validates r and makes it the current roster, with its card
// index, in one transaction.
func (s *Store) ApplyRoster(r *firmware.Roster, received time.Time) error {
	if err := r.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encoding roster: %w", err)
	}
	s.mu.RLock()
	applied := max(s.appliedSeq, r.Applied[firmware.AppliedKey(s.device, s.logID)])
	s.mu.RUnlock()
	err = s.write(func(tx *bolt.Tx) error {
		if err := putU64(tx.Bucket(bMeta), kApplied, applied); err != nil {
			return err
		}
		rb := tx.Bucket(bRoster)
		if err := rb.Put(kRoster, raw); err != nil {
			return err
		}
		if err := rb.Put(kReceived, []byte(received.UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bCards); err != nil {
			return err
		}
		cards, err := tx.CreateBucket(bCards)
		if err != nil {
			return err
		}
		for _, c := range r.Cards {
			if err := cards.Put([]byte(c.Key), []byte(c.ChildID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: applying roster revision %d: %w", r.Revision, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.received, s.appliedSeq = r, received, max(s.appliedSeq, applied)
	if err := s.overlay(); err != nil {
		// Applied; this terminal's later bindings are not on top of it
		// until the portal takes them in. Their events are kept and sent.
		s.log.Error("store: this terminal's binding changes do not lay over the new roster", "revision", r.Revision, "err", err)
	}
	return nil
}

func (s *Store) loadRoster() error {
	return s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bRoster)
		raw := rb.Get(kRoster)
		if raw == nil {
			return nil
		}
		r, err := DecodeRoster(raw)
		if err != nil {
			return fmt.Errorf("store: the stored roster: %w", err)
		}
		received, err := time.Parse(time.RFC3339Nano, string(rb.Get(kReceived)))
		if err != nil {
			return fmt.Errorf("store: the stored roster's reception time: %w", err)
		}
		s.base, s.roster, s.received = r, r, received
		s.appliedSeq, _ = getU64(tx.Bucket(bMeta), kApplied)
		return nil
	})
}

// DecodeRoster decodes and validates a roster from JSON; unknown fields
// are errors, so a typo is not silently ignored.
func DecodeRoster(raw []byte) (*firmware.Roster, error) {
	var r firmware.Roster
	if err := strictjson.Decode(raw, 0, "roster", &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// PortalRoster returns the roster as the portal last sent it, without this
// terminal's binding changes on top: the base of the next delta.
func (s *Store) PortalRoster() (*firmware.Roster, time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.base == nil {
		return nil, time.Time{}, ErrNoRoster
	}
	return s.base, s.received, nil
}

// Roster returns the roster decisions use, and when the portal's was
// received: the portal's with this terminal's binding changes that it has
// not taken in yet on top.
func (s *Store) Roster() (*firmware.Roster, time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.roster == nil {
		return nil, time.Time{}, ErrNoRoster
	}
	return s.roster, s.received, nil
}

// Stamp is what the clock says about a moment.
type Stamp struct {
	Time   time.Time
	Synced bool
	BootID [16]byte
	Mono   time.Duration
}

// TapRequest is a card presented to the terminal.
type TapRequest struct {
	At       Stamp
	CardKey  string
	UID      []byte // stored only when not nil
	Settings firmware.Settings
}

// Tap decides a tap and records it: the event, its sequence and the
// child's presence change are journaled together, with fdatasync, before it
// returns. An error means nothing was recorded and no feedback but an error
// signal may be given.
//
// The midnight rule: the first tap of a new day closes every earlier day
// left open first, in the same record (an auto_check_out, reason
// day_rolled_over, for each child still inside on it; firmware.RollOver),
// and is decided on what that leaves. No day is ever left open, and a tap
// just after midnight never overwrites yesterday's session.
func (s *Store) Tap(req TapRequest) (Event, firmware.Decision, error) {
	if s.jr == nil {
		return Event{}, firmware.Decision{}, errors.New("store: opened read-only")
	}
	r, received, err := s.Roster()
	if err != nil {
		return Event{}, firmware.Decision{}, err
	}
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	closing, err := s.rollOver(req.At.Time)
	if err != nil {
		return Event{}, firmware.Decision{}, fmt.Errorf("store: recording a tap: %w", err)
	}
	var b *batch
	var dec firmware.Decision
	err = s.withPresence(func(presence func(string) firmware.Presence) error {
		closed := afterClosing(presence, closing, req.At.Time)
		dec = firmware.Decide(firmware.Input{
			Tap:       firmware.Tap{CardKey: req.CardKey, At: req.At.Time},
			Roster:    r,
			RosterAge: req.At.Time.Sub(received),
			Presence:  closed,
			Settings:  req.Settings,
		})
		var err error
		b, err = s.newBatch(req.At, r.Revision, closing, &tapped{dec, req.CardKey, req.UID}, presence)
		return err
	})
	if err == nil {
		err = s.commit(b)
	}
	if err != nil {
		return Event{}, firmware.Decision{}, fmt.Errorf("store: recording a tap: %w", err)
	}
	s.markClosed(req.At.Time)
	return b.events[len(b.events)-1], dec, nil
}

// rollOver returns the automatic check-outs that close the days before
// now's still open: none when every earlier day is known to be closed.
// The caller holds tapMu.
func (s *Store) rollOver(now time.Time) ([]firmware.Decision, error) {
	if !s.closedBefore.Before(firmware.DateOf(now)) {
		return nil, nil
	}
	all, err := s.Presence()
	if err != nil {
		return nil, err
	}
	return firmware.RollOver(all, now), nil
}

// markClosed notes that every day before now's is closed. The caller
// holds tapMu.
func (s *Store) markClosed(now time.Time) {
	if d := firmware.DateOf(now); s.closedBefore.Before(d) {
		s.closedBefore = d
	}
}

// afterClosing is the presence lookup as it stands once the automatic
// check-outs in closing are applied.
func afterClosing(presence func(string) firmware.Presence, closing []firmware.Decision, at time.Time) func(string) firmware.Presence {
	if len(closing) == 0 {
		return presence
	}
	return func(id string) firmware.Presence {
		p := presence(id)
		for _, d := range closing {
			if d.ChildID == id {
				p = p.After(d, at)
			}
		}
		return p
	}
}

// CloseDay records the auto_check_out events due at the stamp's time.
func (s *Store) CloseDay(at Stamp, settings firmware.Settings) ([]Event, error) {
	if s.jr == nil {
		return nil, errors.New("store: opened read-only")
	}
	r, _, err := s.Roster()
	if err != nil {
		return nil, err
	}
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	all, err := s.Presence()
	if err != nil {
		return nil, fmt.Errorf("store: closing the day: %w", err)
	}
	decs := firmware.CloseDay(r, all, at.Time, settings)
	if len(decs) == 0 {
		s.markClosed(at.Time)
		return nil, nil
	}
	b, err := s.newBatch(at, r.Revision, decs, nil, func(id string) firmware.Presence { return all[id] })
	if err == nil {
		err = s.commit(b)
	}
	if err != nil {
		return nil, fmt.Errorf("store: closing the day: %w", err)
	}
	s.markClosed(at.Time)
	return b.events, nil
}

// withPresence calls fn with a lookup of each child's presence: the latest
// pending batch's if any, else bbolt's.
func (s *Store) withPresence(fn func(func(string) firmware.Presence) error) error {
	pend := s.snapshot()
	return s.db.View(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bPresence)
		return fn(func(id string) firmware.Presence {
			for i := len(pend) - 1; i >= 0; i-- {
				for k := len(pend[i].presence) - 1; k >= 0; k-- {
					if p := pend[i].presence[k]; p.child == id {
						v, _ := decodePresence(p.raw)
						return v
					}
				}
			}
			return getPresence(pb, id)
		})
	})
}

// tapped is a tap's decision and its card.
type tapped struct {
	dec     firmware.Decision
	cardKey string
	uid     []byte // stored only when not nil
}

// newBatch makes the events, with the sequences that follow s.seq, and the
// presence they leave: first the automatic check-outs in closing (they
// name no card), then the tap's, if any. The caller holds tapMu.
func (s *Store) newBatch(at Stamp, rev uint64, closing []firmware.Decision, tap *tapped, presence func(string) firmware.Presence) (*batch, error) {
	b := &batch{}
	seq := s.seq
	after := map[string]firmware.Presence{}
	items := make([]tapped, 0, len(closing)+1)
	for _, d := range closing {
		items = append(items, tapped{dec: d})
	}
	if tap != nil {
		items = append(items, *tap)
	}
	for _, it := range items {
		dec := it.dec
		seq++
		ev := Event{
			Seq: seq, Time: at.Time, ClockSynced: at.Synced, BootID: at.BootID, Mono: at.Mono,
			CardKey: it.cardKey, UID: it.uid, ChildID: dec.ChildID,
			Outcome: dec.Outcome, Reason: dec.Reason, Flags: dec.Flags, RosterRev: rev,
		}
		raw, err := ev.marshal()
		if err != nil {
			return nil, err
		}
		b.events, b.raw = append(b.events, ev), append(b.raw, raw)
		if dec.ChildID == "" || dec.Outcome == firmware.UnknownCard {
			continue
		}
		p, ok := after[dec.ChildID]
		if !ok {
			p = presence(dec.ChildID)
		}
		p = p.After(dec, at.Time)
		after[dec.ChildID] = p
		pj, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		b.presence = append(b.presence, childPresence{dec.ChildID, pj})
	}
	return b, nil
}

// commit journals a batch durably and hands it to the applier. The caller
// holds tapMu.
func (s *Store) commit(b *batch) error {
	s.pmu.Lock()
	if len(s.pending) == 0 {
		// bbolt has every record the journal holds: start it again.
		s.jr.restart()
	}
	s.pmu.Unlock()
	if err := s.jr.append(b.encode()); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
		return err
	}
	s.seq = b.last()
	b.queued = time.Now()
	s.pmu.Lock()
	s.pending = append(s.pending, b)
	s.pmu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func getPresence(pb *bolt.Bucket, child string) firmware.Presence {
	p, _ := decodePresence(pb.Get([]byte(child)))
	return p
}

func decodePresence(raw []byte) (firmware.Presence, error) {
	var p firmware.Presence
	if raw == nil {
		return p, nil
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return firmware.Presence{}, fmt.Errorf("damaged presence record: %w", err)
	}
	return p, nil
}

// Presence returns every child's stored presence.
func (s *Store) Presence() (map[string]firmware.Presence, error) {
	out := map[string]firmware.Presence{}
	pend := s.snapshot()
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bPresence).ForEach(func(k, v []byte) error {
			p, err := decodePresence(v)
			if err != nil {
				return fmt.Errorf("store: presence of %q: %w", k, err)
			}
			out[string(k)] = p
			return nil
		}); err != nil {
			return err
		}
		inDB, _ := getU64(tx.Bucket(bMeta), kSeq)
		for _, b := range pend {
			if b.last() <= inDB {
				continue
			}
			for _, p := range b.presence {
				out[p.child], _ = decodePresence(p.raw)
			}
		}
		return nil
	})
	return out, err
}

// Events calls fn for each stored event with a sequence of at least from,
// in order, until fn returns false.
func (s *Store) Events(from uint64, fn func(Event) bool) error {
	pend := s.snapshot()
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil; k, v = c.Next() {
			ev, err := unmarshalEvent(v)
			if err != nil {
				return fmt.Errorf("store: event %X: %w", k, err)
			}
			if !fn(ev) {
				return nil
			}
		}
		inDB, _ := getU64(tx.Bucket(bMeta), kSeq)
		for _, b := range pend {
			for _, ev := range b.events {
				if ev.Seq > inDB && ev.Seq >= from && !fn(ev) {
					return nil
				}
			}
		}
		return nil
	})
}

// Outbox describes the events waiting for the portal.
type Outbox struct {
	Depth   int
	Oldest  time.Time // of the first waiting event
	First   uint64    // its sequence; 0 when none waits
	LastSeq uint64
}

// Outbox returns the outbox's depth and age.
func (s *Store) Outbox() (Outbox, error) {
	var o Outbox
	pend := s.snapshot()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvents)
		o.Depth = outboxCount(tx)
		o.LastSeq, _ = getU64(tx.Bucket(bMeta), kSeq)
		if k, v := b.Cursor().First(); k != nil {
			ev, err := unmarshalEvent(v)
			if err != nil {
				return err
			}
			o.Oldest, o.First = ev.Time, ev.Seq
		}
		inDB := o.LastSeq
		for _, b := range pend {
			for _, ev := range b.events {
				if ev.Seq <= inDB {
					continue
				}
				if o.Depth == 0 {
					o.Oldest, o.First = ev.Time, ev.Seq
				}
				o.Depth++
				o.LastSeq = ev.Seq
			}
		}
		return nil
	})
	return o, err
}

// Size returns the database file's size in bytes.
func (s *Store) Size() (int64, error) {
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Check runs bbolt's consistency check, with the database to itself: in a
// read transaction it would race the applier's commits.
func (s *Store) Check() error {
	check := s.db.Update
	if s.opts.ReadOnly {
		check = s.db.View
	}
	return check(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
