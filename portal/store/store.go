// Package store is the portal's storage contract: what each of the
// bridge's jobs needs of the database, as one small interface per job,
// the records they exchange, and the errors they agree on. It holds no
// storage itself. Two implementations keep it:
//
//   - portal/store/boltstore: bbolt, the embedded default, for
//     make run and a single host; its instances share one process;
//   - portal/store/pgstore: PostgreSQL, for any number of kiumbridge
//     processes on several hosts.
//
// portal/store/storetest is the conformance suite both must pass. It
// holds every invariant that matters where the database can hold it, not
// in one process's memory: one event per device, log and sequence, each
// log in order without a hole; one text per event and guardian, created
// with its event or not at all; one claim per text at a time, a claim
// that outlives its owner given back; one roster per revision number.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"kiumtap/protocol"
)

// Errors the implementations agree on.
var (
	// ErrNotNext: an event does not follow its log's last stored one
	// (a hole). Nothing of the call is stored.
	ErrNotNext = errors.New("store: the event does not follow its log's last one")
	// ErrLogMoved: a gap could not be recorded because the log's last
	// sequence is no longer the one before the gap.
	ErrLogMoved = errors.New("store: the log moved on meanwhile: look at kiumctl gaps again")
	// ErrRevisionTaken: another instance published the centre's revision
	// first; read it and build on it.
	ErrRevisionTaken = errors.New("store: the revision was published by another instance")
)

// Plan says what storing an event brings with it, in the same
// transaction: the texts it calls for, and, for a terminal's binding
// change, the binding job the binder takes (opaque to the store). A nil
// func brings nothing.
type Plan struct {
	Texts   func(e *protocol.Event) []Job
	Binding func(e *protocol.Event) json.RawMessage
}

// Events keeps the terminals' events: ingest's part.
type Events interface {
	// Last is the highest sequence stored for a device's log, 0 if none.
	Last(ctx context.Context, device, log string) (uint64, error)
	// Put stores events in one transaction with what plan says each
	// brings. Within a log they must be consecutive; an event already
	// stored (by another instance, or again after a crash) is skipped
	// with what it brings, and one that does not follow its log's last is
	// ErrNotNext, storing nothing. A card_bound event is stored without
	// its raw UID. It returns how many events it stored.
	Put(ctx context.Context, evs []protocol.Event, plan Plan) (int, error)
	// Events calls fn for each stored event of a centre (every centre's
	// when centre is ""), in the order of centre, device, log and
	// sequence, until fn returns false.
	Events(ctx context.Context, centre string, fn func(protocol.Event) bool) error
	// EventsAfter calls fn for each stored event of a centre that comes
	// after after[its log] (every event of a log not in after), in the
	// order of Events, until fn returns false. Its cost is the centre's
	// logs and the events it returns, not the centre's history: a reader
	// that keeps each log's last sequence reads only what is new (the
	// staff page's live board).
	EventsAfter(ctx context.Context, centre string, after map[LogID]uint64, fn func(protocol.Event) bool) error
	// Centres lists the centres that have stored events.
	Centres(ctx context.Context) ([]string, error)
	// Devices lists the terminals of a centre that have stored events,
	// sorted.
	Devices(ctx context.Context, centre string) ([]string, error)
}

// LogID names a terminal's event log.
type LogID struct{ Device, Log string }

// Text job states.
const (
	JobPending = "pending" // to send, at NextAt
	JobSending = "sending" // claimed: being handed to the provider
	JobSent    = "sent"
	JobFailed  = "failed" // the provider refused for good: Reason says why
	JobHeld    = "held"   // not to be sent (automatic check-outs, per configuration)
)

// JobStates are the states, in the order staff read them.
var JobStates = []string{JobPending, JobSending, JobSent, JobFailed, JobHeld}

// Job is one text to one guardian.
type Job struct {
	ID       string    `json:"id"` // event ID + "/" + guardian index: the provider's idempotency key
	EventID  string    `json:"event"`
	Centre   string    `json:"centre"`
	Child    string    `json:"child"`
	Kind     string    `json:"kind"` // arrival, departure, auto_check_out
	At       time.Time `json:"at"`   // the tap
	To       string    `json:"to"`
	Created  time.Time `json:"created"`
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	NextAt   time.Time `json:"next_at"`
	Receipt  string    `json:"receipt,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	SentAt   time.Time `json:"sent_at,omitzero"`
	// Channel is how it went: sms, lms, or alimtalk; Fallback why an
	// AlimTalk fell back to SMS/LMS. Reporting: the provider took it by
	// AlimTalk and the texter asks how it went (pending until then,
	// never sent again).
	Channel   string `json:"channel,omitempty"`
	Fallback  string `json:"fallback,omitempty"`
	Reporting bool   `json:"reporting,omitempty"`
	// ClaimedAt is when a texter took the job.
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
	// Q is the job's place in the queue: the order it was queued in.
	Q uint64 `json:"q"`
}

// Queue is the text queue's part still to do.
type Queue struct {
	Pending int // waiting for their time (NextAt): new, or retried after a failure
	Sending int // claimed, being handed to a provider (as Jobs shows them)
	// Oldest is when the oldest text still to send was queued; zero when
	// none is.
	Oldest time.Time
}

// TextQueue is the texts to send and sent: the texter's part.
type TextQueue interface {
	// Claim takes up to n texts due at now (pending, NextAt not after
	// now) that no texter holds, for owner, until now+lease: while the
	// claim holds, no other texter (of this process or another) gets
	// them. A claim its owner neither finishes nor releases (the process
	// died) lapses at its end, and the text is claimed again, with the
	// same ID as idempotency key. Each claimed Job comes with Attempts
	// counted and State JobSending.
	Claim(ctx context.Context, owner string, now time.Time, n int, lease time.Duration) ([]Job, error)
	// Release gives texts back unsent (a stop came first): claimable at
	// once, their attempt not counted.
	Release(ctx context.Context, owner string, jobs ...Job) error
	// Finish records texts' outcomes (State sent, failed or held; or
	// pending with a later NextAt, to try again) and ends their claims,
	// in one transaction.
	Finish(ctx context.Context, owner string, jobs ...Job) error
	// Queue counts the texts still to do; its cost is the backlog's, not
	// the history's.
	Queue(ctx context.Context) (Queue, error)
	// Jobs calls fn for the texts still to do, in queue order, then, with
	// done, for those done, until fn returns false. A claimed text is
	// JobSending until its outcome is recorded or it is released (a
	// lapsed claim too, until another texter takes it over).
	Jobs(ctx context.Context, done bool, fn func(Job) bool) error
	// Enqueue queues texts that no event brings (a not-arrived alert to
	// guardians), pending, each once: one whose ID is queued already (by
	// another instance, or again after a crash) is skipped. A text's ID
	// is unique together with its centre and tap time (At). It returns how
	// many it queued.
	Enqueue(ctx context.Context, jobs ...Job) (int, error)
	// CentreJobs calls fn for the texts of a centre whose tap (At) is at
	// or after since, in the order of At, until fn returns false. Its cost
	// is those texts', not the history's (the staff page's 오늘 and 문자).
	CentreJobs(ctx context.Context, centre string, since time.Time, fn func(Job) bool) error
	// Retry queues a failed or held text again, to the number to (its
	// guardian's, corrected: FAQ Q22), due at now, its attempts counted
	// afresh, its reason cleared; it keeps its ID, so it is still one text
	// per event and guardian. ErrNotRetriable if the text is not failed
	// or held (sent, or still to do), or not stored.
	Retry(ctx context.Context, id, to string, now time.Time) error
}

// ErrNotRetriable: Retry's text is not failed or held.
var ErrNotRetriable = errors.New("store: the text is not failed or held")

// Published is a centre's latest roster revision: the snapshot and the
// delta that led to it (nil for the first revision).
type Published struct {
	Snapshot *protocol.Snapshot `json:"snapshot"`
	Delta    *protocol.Delta    `json:"delta,omitempty"`
}

// Revisions keeps the rosters published: the publisher's part.
type Revisions interface {
	// Published returns a centre's latest revision, nil if none.
	Published(ctx context.Context, centre string) (*Published, error)
	// Publish records p (revision p.Snapshot.Roster.Revision of centre
	// p.Snapshot.Centre) as its centre's latest, before it goes out, if
	// the latest is still the revision before it, or there is none yet
	// (a first revision takes its source's number); else ErrRevisionTaken: a revision number is never given to two
	// rosters, whichever instance publishes.
	Publish(ctx context.Context, p *Published) error
}

// Gap is a run of a terminal's events recorded as lost at the portal.
type Gap struct {
	Centre   string    `json:"centre"`
	Device   string    `json:"device"`
	Log      string    `json:"log"`
	From     uint64    `json:"from"` // the first missing sequence
	To       uint64    `json:"to"`   // the last
	By       string    `json:"by"`
	Recorded time.Time `json:"recorded"`
}

// Gaps keeps the gaps operators accepted.
type Gaps interface {
	// RecordGap moves the log's last sequence to g.To and keeps g, in one
	// transaction, if the last is still g.From-1; else ErrLogMoved.
	RecordGap(ctx context.Context, g Gap) error
	// Gaps lists a centre's recorded gaps.
	Gaps(ctx context.Context, centre string) ([]Gap, error)
}

// BindingJob is a binding change waiting for the binder: what Plan.Binding
// made of a card_bound event, or a change made at the portal, in the order
// queued.
type BindingJob struct {
	Q   uint64
	Job json.RawMessage
}

// BindingJobs is the binder's queue.
type BindingJobs interface {
	// NextBinding is the first job queued, nil if none.
	NextBinding(ctx context.Context) (*BindingJob, error)
	// UpdateBinding replaces a queued job's content (planned, with the
	// edits to make), keeping its place.
	UpdateBinding(ctx context.Context, j BindingJob) error
	// DoneBinding removes a job once applied.
	DoneBinding(ctx context.Context, q uint64) error
}

// Registry is the card registry, the binding changes' audit records and
// what was applied to each centre's source: the binder's part. Its
// records are the binder's own encoding, opaque to the store, kept as
// values under byte-string keys in named tables; what the store holds is
// the transaction around them.
type Registry interface {
	// UpdateRegistry runs fn in one write transaction, committed if fn
	// returns nil and rolled back otherwise. Write transactions run one at
	// a time across every instance sharing the store: a card's holder is
	// decided once, on what the one before decided.
	UpdateRegistry(ctx context.Context, fn func(RegistryTx) error) error
	// ViewRegistry runs fn in a read transaction (fn must not write).
	ViewRegistry(ctx context.Context, fn func(RegistryTx) error) error
}

// RegistryTx is a registry transaction. Tables are made on first use.
type RegistryTx interface {
	// Get returns the value under key, nil if none.
	Get(table string, key []byte) ([]byte, error)
	Put(table string, key, value []byte) error
	Delete(table string, key []byte) error
	// Scan calls fn for each key starting with prefix, in byte order of
	// the keys, until fn returns an error (returned, except ErrStopScan).
	Scan(table string, prefix []byte, fn func(key, value []byte) error) error
	// Sequence is the table's counter (0 at first); NextSequence raises it
	// by one and returns it; SetSequence sets it.
	Sequence(table string) (uint64, error)
	NextSequence(table string) (uint64, error)
	SetSequence(table string, n uint64) error
	// QueueBinding queues a binding job in this transaction: at the next
	// place when q is 0 (returning it), else replacing job q.
	QueueBinding(q uint64, job json.RawMessage) (uint64, error)
	// BindingQueued reports whether a binding job waits. From then until
	// the transaction ends no other instance queues one: what is decided
	// on "none waits" stays true until the commit.
	BindingQueued() (bool, error)
}

// ErrStopScan ends a Scan early without an error.
var ErrStopScan = errors.New("store: stop the scan")

// Locks are named locks held across every instance sharing the store:
// the binder holds "sources" while it reads, changes and writes roster
// sources kept in the store, so two instances never decide one binding
// twice.
type Locks interface {
	// Lock waits for the named lock, or for ctx's end (its error), and
	// holds it until release is called. An instance that dies, or loses
	// its connection, lets its locks go: a holder must not take a lock for
	// proof that nobody else writes (the sources' versions check that).
	Lock(ctx context.Context, name string) (release func(), err error)
}

// Store is every part together, as an implementation provides it.
type Store interface {
	Events
	TextQueue
	Revisions
	Gaps
	BindingJobs
	Registry
	Locks
	// Ping returns once the store answers a read, or ctx's error.
	Ping(ctx context.Context) error
	Close() error
}
