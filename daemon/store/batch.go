package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A batch is what one tap (or one closing of the day) writes: its events,
// with consecutive sequences, and the presence records they leave behind.
// It is one journal record and is applied to bbolt in one transaction.
type batch struct {
	events   []Event
	raw      [][]byte        // events[i] encoded
	presence []childPresence // later entries for a child win
	bindings []localBinding  // binding changes made here (Store.Bind)
	queued   time.Time       // when it was journaled (by the host's clock), for JournalLag
}

// localBinding is a binding change made at this terminal, by the event
// with sequence seq.
type localBinding struct {
	seq uint64
	raw []byte // JSON of firmware.BindingChange
}

type childPresence struct {
	child string
	raw   []byte // JSON of firmware.Presence
}

func (b *batch) first() uint64 { return b.events[0].Seq }
func (b *batch) last() uint64  { return b.events[len(b.events)-1].Seq }

// batchVersion is the first byte of an encoded batch; batchVersionBinding
// marks one with binding changes after the presence records.
const (
	batchVersion        = 1
	batchVersionBinding = 2
)

// maxBatchEvents bounds a batch: a closing of the day writes one event per
// child inside.
const maxBatchEvents = 1 << 14

// encode is the batch's journal payload:
//
//	version  byte (1)
//	n        uvarint, number of events, at least 1
//	n times  uvarint length, stored event (see Event.marshal)
//	m        uvarint, number of presence records
//	m times  uvarint length, child ID, uvarint length, presence JSON
//	version 2 only:
//	k        uvarint, number of binding changes
//	k times  uvarint sequence, uvarint length, firmware.BindingChange JSON
func (b *batch) encode() []byte {
	out := []byte{batchVersion}
	if len(b.bindings) > 0 {
		out[0] = batchVersionBinding
	}
	out = binary.AppendUvarint(out, uint64(len(b.raw)))
	for _, r := range b.raw {
		out = binary.AppendUvarint(out, uint64(len(r)))
		out = append(out, r...)
	}
	out = binary.AppendUvarint(out, uint64(len(b.presence)))
	for _, p := range b.presence {
		out = binary.AppendUvarint(out, uint64(len(p.child)))
		out = append(out, p.child...)
		out = binary.AppendUvarint(out, uint64(len(p.raw)))
		out = append(out, p.raw...)
	}
	if len(b.bindings) > 0 {
		out = binary.AppendUvarint(out, uint64(len(b.bindings)))
		for _, l := range b.bindings {
			out = binary.AppendUvarint(out, l.seq)
			out = binary.AppendUvarint(out, uint64(len(l.raw)))
			out = append(out, l.raw...)
		}
	}
	return out
}

// decodeBatch decodes a journal payload; damage is an error, never a panic.
func decodeBatch(p []byte) (*batch, error) {
	if len(p) == 0 || (p[0] != batchVersion && p[0] != batchVersionBinding) {
		return nil, fmt.Errorf("store: journal record of unknown version (first byte % X)", p[:min(len(p), 1)])
	}
	r := &reader{b: p[1:]}
	n := r.uvarint()
	if n == 0 || n > maxBatchEvents {
		return nil, fmt.Errorf("store: journal record with %d events", n)
	}
	b := &batch{}
	for i := uint64(0); i < n && r.err == nil; i++ {
		raw := r.blob()
		if r.err != nil {
			break
		}
		ev, err := unmarshalEvent(raw)
		if err != nil {
			return nil, err
		}
		if i > 0 && ev.Seq != b.events[i-1].Seq+1 {
			return nil, fmt.Errorf("store: journal record with sequence %d after %d", ev.Seq, b.events[i-1].Seq)
		}
		b.events = append(b.events, ev)
		b.raw = append(b.raw, append([]byte(nil), raw...))
	}
	m := r.uvarint()
	if m > maxBatchEvents {
		r.err = errShort
	}
	for i := uint64(0); i < m && r.err == nil; i++ {
		child := string(r.field())
		raw := r.blob()
		if r.err == nil {
			if _, err := decodePresence(raw); err != nil {
				return nil, err
			}
			b.presence = append(b.presence, childPresence{child, append([]byte(nil), raw...)})
		}
	}
	if p[0] == batchVersionBinding {
		k := r.uvarint()
		if k == 0 || k > n {
			r.err = errShort
		}
		for i := uint64(0); i < k && r.err == nil; i++ {
			seq := r.uvarint()
			raw := r.blob()
			if r.err != nil {
				break
			}
			if seq < b.first() || seq > b.last() {
				return nil, fmt.Errorf("store: journal record with a binding change of sequence %d outside its events", seq)
			}
			if _, err := decodeBinding(raw); err != nil {
				return nil, err
			}
			b.bindings = append(b.bindings, localBinding{seq, append([]byte(nil), raw...)})
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("store: damaged journal record: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("store: damaged journal record: %d bytes after the end", len(r.b))
	}
	return b, nil
}

// blob is a length-prefixed field of up to maxRecord bytes.
func (r *reader) blob() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > maxRecord || uint64(len(r.b)) < n {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// apply writes the batch into bbolt. Applying a batch twice writes the same
// keys with the same values: replaying the journal is idempotent.
func (b *batch) apply(tx *bolt.Tx) error {
	events := tx.Bucket(bEvents)
	events.FillPercent = 1 // appends only: pack pages full
	n, added := outboxCount(tx), 0
	for i, ev := range b.events {
		k := seqKey(ev.Seq)
		if events.Get(k) == nil {
			added++
		}
		if err := events.Put(k, b.raw[i]); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	if cur, _ := getU64(meta, kSeq); cur < b.last() {
		if err := putU64(meta, kSeq, b.last()); err != nil {
			return err
		}
	}
	if err := putOutboxCount(tx, n+added); err != nil {
		return err
	}
	pb := tx.Bucket(bPresence)
	for _, p := range b.presence {
		if p.child == "" {
			return errors.New("store: a presence record without a child")
		}
		if err := pb.Put([]byte(p.child), p.raw); err != nil {
			return err
		}
	}
	bb := tx.Bucket(bBindings)
	for _, l := range b.bindings {
		if err := bb.Put(seqKey(l.seq), l.raw); err != nil {
			return err
		}
	}
	return nil
}
