// Package protocol is the contract between terminals and the portal over
// MQTT, as docs/protocol.md writes it down: the topic tree, each message's
// JSON form, the signed envelope of what the portal sends, size limits, and
// the roster digest and delta rules. Both sides (daemon/uplink on the
// terminal, portal/ on the portal) use it; neither talks MQTT here.
//
// Every decoder takes outside input: it bounds sizes, rejects unknown
// fields and versions, and returns an error naming what is wrong, never a
// panic.
package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/strictjson"
)

// Version is the protocol version: in every topic and every payload.
const Version = 1

// Size limits of payloads, in bytes. Larger messages are rejected unread.
const (
	MaxRoster  = 1 << 20 // a snapshot (signed envelope); a delta too
	MaxEvents  = 256 << 10
	MaxMessage = 64 << 10
)

// MaxBatch is the most events one events message may carry.
const MaxBatch = 256

// Prefix is the root of the topic tree.
const Prefix = "kium/v1"

// Topics of one device.
type Topics struct{ Centre, Device string }

func (t Topics) dev(leaf string) string {
	return Prefix + "/c/" + t.Centre + "/d/" + t.Device + "/" + leaf
}

// Events: terminal → portal, QoS 1, a batch of consecutive events per
// message.
func (t Topics) Events() string { return t.dev("events") }

// Ack: portal → terminal, QoS 1.
func (t Topics) Ack() string { return t.dev("ack") }

// Status: terminal → portal, QoS 1, retained; the last will is "offline".
func (t Topics) Status() string { return t.dev("status") }

// Cmd: portal → terminal, QoS 1, signed.
func (t Topics) Cmd() string { return t.dev("cmd") }

// Reply: terminal → portal, QoS 1, answers to commands.
func (t Topics) Reply() string { return t.dev("reply") }

// Roster: portal → terminals of the centre, QoS 1, retained, signed snapshot.
func (t Topics) Roster() string { return Prefix + "/c/" + t.Centre + "/roster" }

// Delta: portal → terminals of the centre, QoS 1, signed.
func (t Topics) Delta() string { return Prefix + "/c/" + t.Centre + "/roster/delta" }

// ParseDeviceTopic splits kium/v1/c/C/d/D/leaf; ok is false for any other
// shape.
func ParseDeviceTopic(topic string) (centre, device, leaf string, ok bool) {
	p := strings.Split(topic, "/")
	if len(p) != 7 || p[0]+"/"+p[1] != Prefix || p[2] != "c" || p[4] != "d" || p[3] == "" || p[5] == "" {
		return "", "", "", false
	}
	return p[3], p[5], p[6], true
}

// ValidID reports whether s can be a centre or device ID: it is a topic
// level, so 1 to 64 of [A-Za-z0-9_.-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// decode decodes one JSON value strictly (strictjson: a size limit,
// unknown fields and trailing data refused, errors naming the key's path
// and line).
func decode(raw []byte, limit int, what string, v any) error {
	return strictjson.Decode(raw, limit, what, v)
}

func checkVersion(what string, v int) error {
	if v != Version {
		return fmt.Errorf("%s: version %d, this side speaks %d", what, v, Version)
	}
	return nil
}

// Event is a terminal's event on the wire.
type Event struct {
	V           int       `json:"v"`
	ID          string    `json:"id"` // device-seq
	Centre      string    `json:"centre"`
	Device      string    `json:"device"`
	Log         string    `json:"log"` // the store's identity: sequences restart only with a new log
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	ClockSynced bool      `json:"clock_synced"`
	Corrected   bool      `json:"clock_corrected,omitempty"`
	BootID      string    `json:"boot_id"`
	MonoNS      int64     `json:"mono_ns"`
	Card        string    `json:"card,omitempty"`
	UID         string    `json:"uid,omitempty"`
	Child       string    `json:"child,omitempty"`
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason"`
	Flags       []string  `json:"flags,omitempty"`
	RosterRev   uint64    `json:"roster_revision"`
	// Binding changes (outcome card_bound) only: the card the new one
	// replaced, and who bound it (a staff ID, or the portal user).
	OldCard string `json:"old_card,omitempty"`
	By      string `json:"by,omitempty"`
}

// OutcomeCardBound is the outcome of a binding change event: card bound
// to child, by By, through the flow named in reason.
const OutcomeCardBound = string(firmware.CardBound)

// Batch is an events message: 1 to MaxBatch consecutive events of one
// device's log, in sequence order.
type Batch struct {
	V      int     `json:"v"`
	Events []Event `json:"events"`
}

// DecodeBatch decodes and checks an events message.
func DecodeBatch(raw []byte) ([]Event, error) {
	var b Batch
	if err := decode(raw, MaxEvents, "events", &b); err != nil {
		return nil, err
	}
	if err := checkVersion("events", b.V); err != nil {
		return nil, err
	}
	if len(b.Events) == 0 || len(b.Events) > MaxBatch {
		return nil, fmt.Errorf("events: %d in one message (1 to %d)", len(b.Events), MaxBatch)
	}
	for i := range b.Events {
		e := &b.Events[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		if i > 0 {
			p := &b.Events[i-1]
			if e.Seq != p.Seq+1 || e.Log != p.Log || e.Device != p.Device || e.Centre != p.Centre {
				return nil, fmt.Errorf("events[%d]: not the event after %s", i, p.ID)
			}
		}
	}
	return b.Events, nil
}

func (e *Event) check() error {
	if err := checkVersion("event", e.V); err != nil {
		return err
	}
	switch {
	case !ValidID(e.Centre) || !ValidID(e.Device):
		return errors.New("bad centre or device ID")
	case e.Seq == 0:
		return errors.New("sequence 0")
	case e.ID != fmt.Sprintf("%s-%d", e.Device, e.Seq):
		return fmt.Errorf("ID %q is not device-seq", e.ID)
	case e.Log == "" || len(e.Log) > 64:
		return errors.New("bad log")
	case e.Outcome == "":
		return errors.New("no outcome")
	case e.Outcome == OutcomeCardBound && (e.Child == "" || len(e.Card) != 32 || len(e.UID) < 8 || e.By == ""):
		return errors.New("a card_bound event needs child, card, uid and by")
	}
	return nil
}

// Range is an inclusive range of sequences.
type Range [2]uint64

// Ack tells a terminal which events the portal has stored.
//
// The portal stores a log's events strictly in sequence, so what it has
// stored is always a prefix: it acknowledges cumulatively, as the one
// range [1, N] (stored through N), and repeats it for duplicates. A
// terminal deletes only a prefix of its outbox (Through), so its outbox
// never has a hole, whatever ranges an ack names.
type Ack struct {
	V      int     `json:"v"`
	Device string  `json:"device"`
	Log    string  `json:"log"`
	Ranges []Range `json:"ranges"`
	// Next, when set, says the portal dropped events beyond a gap and
	// expects this sequence next: the terminal goes back to it at once
	// instead of waiting for acks to stop.
	Next uint64 `json:"next,omitempty"`
	// Refused, when set, says the portal refused an events message of
	// this device whole: nothing in it was stored. It comes in an ack of
	// its own (ranges empty), so that terminals older than it, which
	// refuse unknown fields, still read the plain acks.
	Refused *Refusal `json:"refused,omitempty"`
	// Time is the portal's clock when it sent the ack: a terminal whose
	// clock is not set corrects its events with it.
	Time time.Time `json:"time"`
}

// Refusal is an events message the portal refused, and why.
type Refusal struct {
	// Seq is the first sequence of the message refused, 0 when the
	// portal could not read it.
	Seq    uint64 `json:"seq,omitempty"`
	Reason string `json:"reason"`
	// Since and Count, in a terminal's status only: when the refusals of
	// its current first unacknowledged event began, and how many.
	Since time.Time `json:"since,omitzero"`
	Count int       `json:"count,omitempty"`
}

// MaxReason bounds a refusal's reason, in bytes.
const MaxReason = 1024

// Cumulative is the ack of every event of a log through seq.
func Cumulative(device, log string, through uint64, now time.Time) Ack {
	return Ack{V: Version, Device: device, Log: log, Ranges: []Range{{1, through}}, Time: now.UTC()}
}

// Through is how far the ack lets a terminal delete its outbox when its
// first unacknowledged event is first: the highest sequence it names. The
// portal stores a log strictly in sequence, so any event it names stored
// means every event before it is stored too, and the terminal deletes the
// prefix of its outbox up to there; a range as an older bridge sent it
// for a run of duplicates ([28,31] while 27 waits) deletes 27 as well,
// rather than leaving a hole. 0: nothing to delete.
func (a *Ack) Through(first uint64) uint64 {
	var through uint64
	for _, r := range a.Ranges {
		through = max(through, r[1])
	}
	if first == 0 || through < first {
		return 0
	}
	return through
}

// MaxRanges bounds an ack.
const MaxRanges = 256

// DecodeAck decodes and checks an ack.
func DecodeAck(raw []byte) (*Ack, error) {
	var a Ack
	if err := decode(raw, MaxMessage, "ack", &a); err != nil {
		return nil, err
	}
	if err := checkVersion("ack", a.V); err != nil {
		return nil, err
	}
	if (len(a.Ranges) == 0 && a.Next == 0 && a.Refused == nil) || len(a.Ranges) > MaxRanges {
		return nil, fmt.Errorf("ack: %d ranges (1 to %d, or 0 with next or refused)", len(a.Ranges), MaxRanges)
	}
	for _, r := range a.Ranges {
		if r[0] == 0 || r[1] < r[0] {
			return nil, fmt.Errorf("ack: bad range %v", r)
		}
	}
	if r := a.Refused; r != nil && (r.Reason == "" || len(r.Reason) > MaxReason || !r.Since.IsZero() || r.Count != 0) {
		return nil, fmt.Errorf("ack: a refusal needs a reason of 1 to %d bytes, and no since or count", MaxReason)
	}
	return &a, nil
}

// Status is a terminal's retained status.
type Status struct {
	V     int    `json:"v"`
	State string `json:"state"` // "online" or "offline"
	// Instance is random for each start of the terminal's software: two
	// terminals with one device ID (a cloned SD card) show as two
	// instances taking the ID from each other.
	Instance      string     `json:"instance,omitempty"`
	Time          time.Time  `json:"time"`
	Version       string     `json:"version,omitempty"`
	OutboxDepth   int        `json:"outbox_depth"`
	OldestAgeS    float64    `json:"oldest_unacked_age_s"`
	RosterRev     uint64     `json:"roster_revision"`
	RosterAgeS    float64    `json:"roster_age_s"`
	ClockSynced   bool       `json:"clock_synced"`
	ReaderHealthy bool       `json:"reader_healthy"`
	ReaderResets  int        `json:"reader_recoveries"`
	Rejected      *Rejection `json:"last_rejection,omitempty"`
	// Refused, while the portal refuses this terminal's events: the
	// portal's last reason, the first event refused, since when and how
	// many times. Gone once the portal stores the events again.
	Refused *Refusal `json:"events_refused,omitempty"`
}

// DecodeStatus decodes a terminal's status message (retained on its
// status topic, and its last will, {"v":1,"state":"offline","time":…}:
// with several brokers the newest time wins).
func DecodeStatus(raw []byte) (*Status, error) {
	var st Status
	if err := decode(raw, MaxMessage, "status", &st); err != nil {
		return nil, err
	}
	if err := checkVersion("status", st.V); err != nil {
		return nil, err
	}
	if st.State != "online" && st.State != "offline" {
		return nil, fmt.Errorf("status: state %q is not online or offline", st.State)
	}
	return &st, nil
}

// PortalStatusFilter matches every bridge instance's presence topic.
const PortalStatusFilter = Prefix + "/portal/+/status"

// PortalStatusTopic is a bridge instance's presence: retained, QoS 1,
// "online" once it has subscribed to the terminals' events, its last will
// "offline". instance must be a valid ID (ValidID).
func PortalStatusTopic(instance string) string { return Prefix + "/portal/" + instance + "/status" }

// PortalStatus is a bridge instance's presence. A terminal that hears an
// instance come online (not a retained copy, which it gets on subscribing)
// sends again from its first unacknowledged event at once: what it sent
// while no bridge listened was dropped by the broker.
type PortalStatus struct {
	V     int       `json:"v"`
	State string    `json:"state"` // "online" or "offline"
	Time  time.Time `json:"time,omitzero"`
}

// DecodePortalStatus decodes a bridge instance's presence.
func DecodePortalStatus(raw []byte) (*PortalStatus, error) {
	var st PortalStatus
	if err := decode(raw, MaxMessage, "portal status", &st); err != nil {
		return nil, err
	}
	if err := checkVersion("portal status", st.V); err != nil {
		return nil, err
	}
	if st.State != "online" && st.State != "offline" {
		return nil, fmt.Errorf("portal status: state %q is not online or offline", st.State)
	}
	return &st, nil
}

// Rejection reports a message from the portal that the terminal refused.
type Rejection struct {
	Topic  string    `json:"topic"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Signed is the envelope of everything the portal sends that changes a
// terminal: Payload is the message's JSON, Sig its Ed25519 signature.
type Signed struct {
	V       int    `json:"v"`
	Payload []byte `json:"payload"` // base64 in JSON
	Sig     []byte `json:"sig"`     // base64 in JSON
}

// Sign wraps payload in a signed envelope.
func Sign(key ed25519.PrivateKey, payload []byte) []byte {
	out, _ := json.Marshal(Signed{V: Version, Payload: payload, Sig: ed25519.Sign(key, payload)})
	return out
}

// ErrSignature: the envelope's signature does not verify.
var ErrSignature = errors.New("bad signature")

// Open checks a signed envelope of at most limit bytes and returns its
// payload.
func Open(pub ed25519.PublicKey, raw []byte, limit int) ([]byte, error) {
	var s Signed
	if err := decode(raw, limit, "signed message", &s); err != nil {
		return nil, err
	}
	if err := checkVersion("signed message", s.V); err != nil {
		return nil, err
	}
	if len(s.Sig) == 0 {
		return nil, fmt.Errorf("signed message: unsigned: %w", ErrSignature)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, s.Payload, s.Sig) {
		return nil, fmt.Errorf("signed message: %w", ErrSignature)
	}
	return s.Payload, nil
}

// ParsePublicKey reads an Ed25519 public key in base64 or hex.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, hex.DecodeString} {
		if b, err := dec(strings.TrimSpace(s)); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("not an Ed25519 public key (32 bytes, base64 or hex)")
}

// Snapshot is a whole roster; its Digest covers the roster.
type Snapshot struct {
	V      int              `json:"v"`
	Kind   string           `json:"kind"` // "snapshot"
	Centre string           `json:"centre"`
	Digest string           `json:"digest"`
	Roster *firmware.Roster `json:"roster"`
}

// Delta changes roster Base into roster Roster.Revision = Revision.
type Delta struct {
	V        int                       `json:"v"`
	Kind     string                    `json:"kind"` // "delta"
	Centre   string                    `json:"centre"`
	Base     uint64                    `json:"base"`
	Revision uint64                    `json:"revision"`
	Issued   time.Time                 `json:"issued"`
	Digest   string                    `json:"digest"`             // of the roster after the delta
	Calendar *firmware.Centre          `json:"calendar,omitempty"` // replaces the centre and its calendar
	Children Changes[firmware.Child]   `json:"children"`
	Cards    Changes[firmware.Card]    `json:"cards"`
	Bookings Changes[firmware.Booking] `json:"bookings"`
	Staff    Changes[firmware.Staff]   `json:"staff"`
	// Applied, when present, replaces the roster's applied_bindings.
	Applied map[string]uint64 `json:"applied_bindings,omitempty"`
}

// Changes to one list of the roster: records upserted by their ID, IDs
// removed.
type Changes[T any] struct {
	Upsert []T      `json:"upsert,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// DecodeSnapshot decodes a snapshot's payload (already out of its
// envelope), validates the roster and checks its digest and centre.
func DecodeSnapshot(payload []byte, centre string) (*firmware.Roster, error) {
	var s Snapshot
	if err := decode(payload, MaxRoster, "roster snapshot", &s); err != nil {
		return nil, err
	}
	if err := checkVersion("roster snapshot", s.V); err != nil {
		return nil, err
	}
	if s.Kind != "snapshot" || s.Roster == nil {
		return nil, errors.New("roster snapshot: not a snapshot")
	}
	if s.Centre != centre || s.Roster.Centre.ID != centre {
		return nil, fmt.Errorf("roster snapshot: for centre %q, this terminal is in %q", s.Centre, centre)
	}
	if err := s.Roster.Validate(); err != nil {
		return nil, fmt.Errorf("roster snapshot: %w", err)
	}
	if d := Digest(s.Roster); d != s.Digest {
		return nil, fmt.Errorf("roster snapshot: digest %s, the roster's is %s", s.Digest, d)
	}
	return s.Roster, nil
}

// ErrGap: a delta does not apply to the roster at hand; ask for a snapshot.
var ErrGap = errors.New("delta does not follow the current revision")

// DecodeDelta decodes a delta's payload (already out of its envelope).
func DecodeDelta(payload []byte, centre string) (*Delta, error) {
	var d Delta
	if err := decode(payload, MaxRoster, "roster delta", &d); err != nil {
		return nil, err
	}
	if err := checkVersion("roster delta", d.V); err != nil {
		return nil, err
	}
	if d.Kind != "delta" {
		return nil, errors.New("roster delta: not a delta")
	}
	if d.Centre != centre {
		return nil, fmt.Errorf("roster delta: for centre %q, this terminal is in %q", d.Centre, centre)
	}
	if d.Revision <= d.Base {
		return nil, fmt.Errorf("roster delta: revision %d does not follow base %d", d.Revision, d.Base)
	}
	return &d, nil
}

// Apply makes the roster that d turns cur into, validated and with its
// digest checked. cur is not changed. A delta whose base is not cur's
// revision gives ErrGap.
func (d *Delta) Apply(cur *firmware.Roster) (*firmware.Roster, error) {
	if cur == nil || cur.Revision != d.Base {
		have := uint64(0)
		if cur != nil {
			have = cur.Revision
		}
		return nil, fmt.Errorf("roster delta %d→%d on revision %d: %w", d.Base, d.Revision, have, ErrGap)
	}
	next := &firmware.Roster{Revision: d.Revision, Issued: d.Issued, Centre: cur.Centre}
	if d.Calendar != nil {
		next.Centre = *d.Calendar
	}
	next.Children = applyChanges(cur.Children, d.Children, func(c firmware.Child) string { return c.ID })
	next.Cards = applyChanges(cur.Cards, d.Cards, func(c firmware.Card) string { return c.Key })
	next.Bookings = applyChanges(cur.Bookings, d.Bookings, func(b firmware.Booking) string { return b.ID })
	next.Staff = applyChanges(cur.Staff, d.Staff, func(s firmware.Staff) string { return s.ID })
	next.Applied = cur.Applied
	if d.Applied != nil {
		next.Applied = d.Applied
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("roster delta %d→%d: %w", d.Base, d.Revision, err)
	}
	if got := Digest(next); got != d.Digest {
		return nil, fmt.Errorf("roster delta %d→%d: digest %s, the result's is %s", d.Base, d.Revision, d.Digest, got)
	}
	return next, nil
}

// Diff is the delta that turns prev into next: Apply of it on prev gives
// next (the portal makes it, a terminal applies it).
func Diff(prev, next *firmware.Roster) *Delta {
	d := &Delta{V: Version, Kind: "delta", Centre: next.Centre.ID, Base: prev.Revision, Revision: next.Revision,
		Issued: next.Issued, Digest: Digest(next)}
	pc, _ := json.Marshal(prev.Centre)
	nc, _ := json.Marshal(next.Centre)
	if string(pc) != string(nc) {
		c := next.Centre
		d.Calendar = &c
	}
	d.Children = changes(prev.Children, next.Children, func(c firmware.Child) string { return c.ID })
	d.Cards = changes(prev.Cards, next.Cards, func(c firmware.Card) string { return c.Key })
	d.Bookings = changes(prev.Bookings, next.Bookings, func(c firmware.Booking) string { return c.ID })
	d.Staff = changes(prev.Staff, next.Staff, func(s firmware.Staff) string { return s.ID })
	if !maps.Equal(prev.Applied, next.Applied) {
		d.Applied = maps.Clone(next.Applied) // only ever grows
	}
	return d
}

func changes[T any](prev, next []T, id func(T) string) Changes[T] {
	var ch Changes[T]
	old := map[string]string{}
	for _, p := range prev {
		raw, _ := json.Marshal(p)
		old[id(p)] = string(raw)
	}
	seen := map[string]bool{}
	for _, n := range next {
		seen[id(n)] = true
		raw, _ := json.Marshal(n)
		if old[id(n)] != string(raw) {
			ch.Upsert = append(ch.Upsert, n)
		}
	}
	for _, p := range prev {
		if !seen[id(p)] {
			ch.Remove = append(ch.Remove, id(p))
		}
	}
	return ch
}

func applyChanges[T any](cur []T, ch Changes[T], id func(T) string) []T {
	drop := map[string]bool{}
	for _, r := range ch.Remove {
		drop[r] = true
	}
	for _, u := range ch.Upsert {
		drop[id(u)] = true
	}
	out := make([]T, 0, len(cur)+len(ch.Upsert))
	for _, c := range cur {
		if !drop[id(c)] {
			out = append(out, c)
		}
	}
	return append(out, ch.Upsert...)
}

// Digest is the roster's SHA-256 in hex over its canonical form: the JSON
// of firmware.Roster with children, cards, bookings and staff sorted by ID
// (cards by key), applied_bindings with its keys sorted, empty lists as [], no HTML escaping and no whitespace. Both sides compute it the
// same way; docs/protocol.md spells the form out.
func Digest(r *firmware.Roster) string {
	c := *r
	// Clones, never nil: an empty list is [] in the canonical form.
	c.Children = append([]firmware.Child{}, r.Children...)
	c.Cards = append([]firmware.Card{}, r.Cards...)
	c.Bookings = append([]firmware.Booking{}, r.Bookings...)
	if len(r.Staff) > 0 { // staff is omitted when empty
		c.Staff = slices.Clone(r.Staff)
		slices.SortFunc(c.Staff, func(a, b firmware.Staff) int { return strings.Compare(a.ID, b.ID) })
	}
	if len(r.Applied) == 0 {
		c.Applied = nil
	}
	slices.SortFunc(c.Children, func(a, b firmware.Child) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Cards, func(a, b firmware.Card) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(c.Bookings, func(a, b firmware.Booking) int { return strings.Compare(a.ID, b.ID) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return "unencodable: " + err.Error()
	}
	sum := sha256.Sum256(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:])
}

// Command is a signed instruction to one terminal.
type Command struct {
	V       int             `json:"v"`
	ID      string          `json:"id"`
	Centre  string          `json:"centre"`
	Device  string          `json:"device"`
	Name    string          `json:"name"` // "ping", "resync", "enrol"
	Expires time.Time       `json:"expires"`
	Args    json.RawMessage `json:"args,omitempty"`
}

// Commands a terminal knows.
const (
	CmdPing   = "ping"
	CmdResync = "resync"
	CmdEnrol  = "enrol"
)

// EnrolArgs are the arguments of an enrol command: the next card presented
// is bound to Child, by By (the portal user, for the audit).
type EnrolArgs struct {
	Child string `json:"child"`
	By    string `json:"by"`
}

// DecodeEnrolArgs decodes and checks an enrol command's arguments.
func DecodeEnrolArgs(raw json.RawMessage) (EnrolArgs, error) {
	var a EnrolArgs
	if err := decode(raw, MaxMessage, "enrol arguments", &a); err != nil {
		return a, err
	}
	if a.Child == "" || len(a.Child) > 64 || a.By == "" || len(a.By) > 64 {
		return a, errors.New("enrol arguments: child and by are required, 1 to 64 bytes each")
	}
	return a, nil
}

// DecodeCommand decodes a command's payload (already out of its envelope)
// and checks it is for this device and not expired at now.
func DecodeCommand(payload []byte, centre, device string, now time.Time) (*Command, error) {
	var c Command
	if err := decode(payload, MaxMessage, "command", &c); err != nil {
		return nil, err
	}
	if err := checkVersion("command", c.V); err != nil {
		return nil, err
	}
	switch {
	case c.ID == "" || len(c.ID) > 128:
		return &c, errors.New("command: bad ID")
	case c.Centre != centre || c.Device != device:
		return &c, fmt.Errorf("command: for %s/%s, this terminal is %s/%s", c.Centre, c.Device, centre, device)
	case c.Expires.IsZero() || now.After(c.Expires):
		return &c, fmt.Errorf("command: expired at %v", c.Expires)
	}
	return &c, nil
}

// Reply answers a command.
type Reply struct {
	V      int             `json:"v"`
	ID     string          `json:"id"`
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// DecodeReply decodes and checks a terminal's reply to a command.
func DecodeReply(raw []byte) (*Reply, error) {
	var r Reply
	if err := decode(raw, MaxMessage, "reply", &r); err != nil {
		return nil, err
	}
	if err := checkVersion("reply", r.V); err != nil {
		return nil, err
	}
	if r.ID == "" || len(r.ID) > 128 {
		return nil, errors.New("reply: bad command ID")
	}
	return &r, nil
}
