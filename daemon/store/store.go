// Package store is the terminal's bbolt database: the roster and its card
// index, each child's presence for the day, the event log that is also the
// outbox to the portal, and the device's metadata (schema version, device
// ID, boot counter, last sequence).
//
// One tap is one read-write transaction that records the decision, the
// event and the presence change together, committed with fsync before the
// caller shows any feedback. Sequences come from the same transaction, so
// they never repeat across restarts or crashes. Nothing here deletes an
// event: acknowledgement by the portal is the sync's business.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"kiumtap/firmware"
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
const SchemaVersion = 1

var (
	bMeta     = []byte("meta")
	bRoster   = []byte("roster")
	bCards    = []byte("cards")
	bPresence = []byte("presence")
	bEvents   = []byte("events")

	kSchema   = []byte("schema")
	kDevice   = []byte("device")
	kBoots    = []byte("boots")
	kSeq      = []byte("seq")
	kRoster   = []byte("current")
	kReceived = []byte("received")
)

// migrations[i] brings a store from schema i+1 to i+2.
var migrations []func(tx *bolt.Tx) error

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
	boots  uint64

	mu       sync.RWMutex
	roster   *firmware.Roster
	received time.Time
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
		return nil, fmt.Errorf("%w: %s: %v; move it aside to start a new store (events in it are not lost if the file is kept)", ErrForeign, opts.Path, err)
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
	return s, nil
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
		for _, b := range [][]byte{bMeta, bRoster, bCards, bPresence, bEvents} {
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
	for _, b := range [][]byte{bRoster, bCards, bPresence, bEvents} {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("%w: %s lacks bucket %s", ErrForeign, s.opts.Path, b)
		}
	}
	s.device = string(meta.Get(kDevice))
	if s.opts.DeviceID != "" && s.opts.DeviceID != s.device {
		return fmt.Errorf("store: %s belongs to device %q, not %q: a store moves with its terminal", s.opts.Path, s.device, s.opts.DeviceID)
	}
	boots, _ := getU64(meta, kBoots)
	if !tx.Writable() {
		s.boots = boots
		return nil
	}
	s.boots = boots + 1
	return putU64(meta, kBoots, s.boots)
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// DeviceID is the device the store belongs to.
func (s *Store) DeviceID() string { return s.device }

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
	err = s.write(func(tx *bolt.Tx) error {
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
	s.roster, s.received = r, received
	s.mu.Unlock()
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
		s.roster, s.received = r, received
		return nil
	})
}

// DecodeRoster decodes and validates a roster from JSON; unknown fields
// are errors, so a typo is not silently ignored.
func DecodeRoster(raw []byte) (*firmware.Roster, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r firmware.Roster
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if dec.More() {
		return nil, errors.New("roster: more than one JSON value")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Roster returns the current roster and when it was received.
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
// child's presence change commit together, with fsync, before it returns.
// An error means nothing was recorded and no feedback but an error signal
// may be given.
func (s *Store) Tap(req TapRequest) (Event, firmware.Decision, error) {
	r, received, err := s.Roster()
	if err != nil {
		return Event{}, firmware.Decision{}, err
	}
	var ev Event
	var dec firmware.Decision
	err = s.write(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bPresence)
		dec = firmware.Decide(firmware.Input{
			Tap:       firmware.Tap{CardKey: req.CardKey, At: req.At.Time},
			Roster:    r,
			RosterAge: req.At.Time.Sub(received),
			Presence:  func(id string) firmware.Presence { return getPresence(pb, id) },
			Settings:  req.Settings,
		})
		var err error
		ev, err = s.record(tx, req.At, req.CardKey, req.UID, r.Revision, dec)
		return err
	})
	if err != nil {
		return Event{}, firmware.Decision{}, fmt.Errorf("store: recording a tap: %w", err)
	}
	return ev, dec, nil
}

// CloseDay records the auto_check_out events due at the stamp's time.
func (s *Store) CloseDay(at Stamp, settings firmware.Settings) ([]Event, error) {
	r, _, err := s.Roster()
	if err != nil {
		return nil, err
	}
	var evs []Event
	err = s.write(func(tx *bolt.Tx) error {
		evs = evs[:0]
		pb := tx.Bucket(bPresence)
		all := map[string]firmware.Presence{}
		if err := pb.ForEach(func(k, v []byte) error {
			p, err := decodePresence(v)
			if err != nil {
				return fmt.Errorf("presence of %q: %w", k, err)
			}
			all[string(k)] = p
			return nil
		}); err != nil {
			return err
		}
		for _, dec := range firmware.CloseDay(r, all, at.Time, settings) {
			ev, err := s.record(tx, at, "", nil, r.Revision, dec)
			if err != nil {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: closing the day: %w", err)
	}
	return evs, nil
}

// record appends the event of a decision and applies its presence change.
func (s *Store) record(tx *bolt.Tx, at Stamp, cardKey string, uid []byte, rev uint64, dec firmware.Decision) (Event, error) {
	meta := tx.Bucket(bMeta)
	seq, _ := getU64(meta, kSeq)
	seq++
	ev := Event{
		Seq: seq, Time: at.Time, ClockSynced: at.Synced, BootID: at.BootID, Mono: at.Mono,
		CardKey: cardKey, UID: uid, ChildID: dec.ChildID,
		Outcome: dec.Outcome, Reason: dec.Reason, Flags: dec.Flags, RosterRev: rev,
	}
	raw, err := ev.marshal()
	if err != nil {
		return Event{}, err
	}
	events := tx.Bucket(bEvents)
	events.FillPercent = 1 // appends only: pack pages full
	if err := events.Put(seqKey(seq), raw); err != nil {
		return Event{}, err
	}
	if err := putU64(meta, kSeq, seq); err != nil {
		return Event{}, err
	}
	if dec.ChildID != "" && dec.Outcome != firmware.UnknownCard {
		pb := tx.Bucket(bPresence)
		raw, err := json.Marshal(getPresence(pb, dec.ChildID).After(dec, at.Time))
		if err != nil {
			return Event{}, err
		}
		if err := pb.Put([]byte(dec.ChildID), raw); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
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
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bPresence).ForEach(func(k, v []byte) error {
			p, err := decodePresence(v)
			if err != nil {
				return fmt.Errorf("store: presence of %q: %w", k, err)
			}
			out[string(k)] = p
			return nil
		})
	})
	return out, err
}

// Events calls fn for each stored event with a sequence of at least from,
// in order, until fn returns false.
func (s *Store) Events(from uint64, fn func(Event) bool) error {
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
		return nil
	})
}

// Outbox describes the events waiting for the portal.
type Outbox struct {
	Depth   int
	Oldest  time.Time // of the first waiting event
	LastSeq uint64
}

// Outbox returns the outbox's depth and age.
func (s *Store) Outbox() (Outbox, error) {
	var o Outbox
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvents)
		o.Depth = b.Stats().KeyN
		o.LastSeq, _ = getU64(tx.Bucket(bMeta), kSeq)
		if k, v := b.Cursor().First(); k != nil {
			ev, err := unmarshalEvent(v)
			if err != nil {
				return err
			}
			o.Oldest = ev.Time
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

// Check runs bbolt's consistency check.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
