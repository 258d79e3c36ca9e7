package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"kiumtap/firmware"
)

// Event is one tap (or an automatic check-out) as the terminal recorded it.
// It stays in the store until the portal acknowledges it.
type Event struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`         // wall clock at the tap
	ClockSynced bool      `json:"clock_synced"` // false: Time may be far off (a Pi booting in 1970)
	// ClockCorrected: Time was set afterwards from the portal's clock, by
	// boot ID and Mono (see Store.CorrectClock).
	ClockCorrected bool             `json:"clock_corrected,omitempty"`
	BootID         [16]byte         `json:"-"`    // which boot of the device...
	Mono           time.Duration    `json:"mono"` // ...and how long after it: lets the portal correct Time
	CardKey        string           `json:"card,omitempty"`
	UID            []byte           `json:"uid,omitempty"` // only when configured
	ChildID        string           `json:"child,omitempty"`
	Outcome        firmware.Outcome `json:"outcome"`
	Reason         firmware.Reason  `json:"reason"`
	Flags          []firmware.Flag  `json:"flags,omitempty"`
	RosterRev      uint64           `json:"roster_revision"`
	// Binding changes (Outcome firmware.CardBound) only: the card the new
	// one (CardKey) replaced, and the staff ID or portal user who bound it.
	// Reason is then the flow.
	OldCard string `json:"old_card,omitempty"`
	By      string `json:"by,omitempty"`
}

// ID is the event's identity across the system: device ID and sequence.
func (e *Event) ID(device string) string { return fmt.Sprintf("%s-%d", device, e.Seq) }

// BootIDString is the boot ID in hex.
func (e *Event) BootIDString() string { return hex.EncodeToString(e.BootID[:]) }

// eventVersion is the first byte of a stored event; eventVersionBinding
// marks one with the binding fields (OldCard, By) after the rest.
const (
	eventVersion        = 1
	eventVersionBinding = 2
)

// maxField bounds every variable-length field, so a damaged record cannot
// make the decoder allocate without end.
const maxField = 256

// marshal encodes an event compactly: the outbox may hold millions.
func (e Event) marshal() ([]byte, error) {
	if y := e.Time.Year(); y < 1678 || y > 2261 {
		return nil, fmt.Errorf("store: event time %v out of range", e.Time)
	}
	b := make([]byte, 0, 128)
	binding := e.OldCard != "" || e.By != ""
	if binding {
		b = append(b, eventVersionBinding)
	} else {
		b = append(b, eventVersion)
	}
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendVarint(b, e.Time.UnixNano())
	var bits byte
	if e.ClockSynced {
		bits |= 1
	}
	if e.ClockCorrected {
		bits |= 2
	}
	b = append(b, bits)
	b = append(b, e.BootID[:]...)
	b = binary.AppendVarint(b, int64(e.Mono))
	var card []byte
	if e.CardKey != "" {
		var err error
		if card, err = hex.DecodeString(e.CardKey); err != nil {
			return nil, fmt.Errorf("store: event card key %q: %w", e.CardKey, err)
		}
	}
	for _, f := range [][]byte{card, e.UID, []byte(e.ChildID), []byte(e.Outcome), []byte(e.Reason)} {
		if len(f) > maxField {
			return nil, fmt.Errorf("store: event field of %d bytes (at most %d)", len(f), maxField)
		}
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Flags)))
	for _, f := range e.Flags {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, e.RosterRev)
	if binding {
		var old []byte
		if e.OldCard != "" {
			var err error
			if old, err = hex.DecodeString(e.OldCard); err != nil {
				return nil, fmt.Errorf("store: event old card key %q: %w", e.OldCard, err)
			}
		}
		for _, f := range [][]byte{old, []byte(e.By)} {
			if len(f) > maxField {
				return nil, fmt.Errorf("store: event field of %d bytes (at most %d)", len(f), maxField)
			}
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
	}
	return b, nil
}

var errShort = errors.New("truncated")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > maxField || uint64(len(r.b)) < n {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) field() []byte { return r.bytes(r.uvarint()) }

// unmarshalEvent decodes a stored event; a damaged record is an error,
// never a panic.
func unmarshalEvent(b []byte) (Event, error) {
	var e Event
	if len(b) == 0 || (b[0] != eventVersion && b[0] != eventVersionBinding) {
		return e, fmt.Errorf("store: event record of unknown version (first byte % X)", b[:min(len(b), 1)])
	}
	r := &reader{b: b[1:]}
	e.Seq = r.uvarint()
	e.Time = time.Unix(0, r.varint())
	bits := r.bytes(1)
	if len(bits) == 1 {
		e.ClockSynced = bits[0]&1 != 0
		e.ClockCorrected = bits[0]&2 != 0
	}
	copy(e.BootID[:], r.bytes(16))
	e.Mono = time.Duration(r.varint())
	if card := r.field(); len(card) > 0 {
		e.CardKey = hex.EncodeToString(card)
	}
	if uid := r.field(); len(uid) > 0 {
		e.UID = append([]byte(nil), uid...)
	}
	e.ChildID = string(r.field())
	e.Outcome = firmware.Outcome(r.field())
	e.Reason = firmware.Reason(r.field())
	n := r.uvarint()
	if n > 16 {
		r.err = errShort
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e.Flags = append(e.Flags, firmware.Flag(r.field()))
	}
	e.RosterRev = r.uvarint()
	if b[0] == eventVersionBinding {
		if old := r.field(); len(old) > 0 {
			e.OldCard = hex.EncodeToString(old)
		}
		e.By = string(r.field())
	}
	if r.err != nil {
		return Event{}, fmt.Errorf("store: damaged event record: %w", r.err)
	}
	if len(r.b) != 0 {
		return Event{}, fmt.Errorf("store: damaged event record: %d bytes after the end", len(r.b))
	}
	return e, nil
}
