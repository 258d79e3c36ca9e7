// Package publish owns the roster revisions: it turns a centre's roster,
// as its source has it now, into the centre's next revision when it
// differs from the latest (recorded first, through store.Revisions, so a
// revision number is given to one roster only, whichever instance
// publishes), and sends the latest out: its snapshot, signed and
// retained, and the delta that led to it (protocol.Diff). Publishing an
// unchanged revision again is harmless (terminals ignore a revision they
// hold) and puts the retained snapshot back on a broker that lost it.
package publish

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Options configure a Publisher.
type Options struct {
	// Revisions keeps the revisions published. Required.
	Revisions store.Revisions
	// Key signs the snapshots and deltas. Required to send.
	Key ed25519.PrivateKey
	// Send sends a message, on every broker (retained: the snapshot).
	// Required.
	Send func(topic string, retained bool, payload []byte) error
	// Connected reports whether Send can send now; nil: always. A
	// revision is recorded while not connected, and sent later.
	Connected func() bool
	// Now is the clock (a revision's Issued); default time.Now.
	Now func() time.Time
	// Logger; default none.
	Logger *slog.Logger
}

// Publisher publishes rosters; see the package comment.
type Publisher struct {
	o         Options
	published atomic.Int64
}

// ErrNotConnected: the revision is recorded, not sent.
var ErrNotConnected = errors.New("not connected")

// New checks the options and sets their defaults.
func New(o Options) (*Publisher, error) {
	if o.Revisions == nil || o.Send == nil {
		return nil, errors.New("publish: Revisions and Send are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{o: o}, nil
}

// Published counts the revisions this publisher made and sent at once.
func (p *Publisher) Published() int { return int(p.published.Load()) }

// Publish publishes roster r, a centre's source now: as its next
// revision if it differs from the latest published (the first revision
// takes the source's number), then the latest goes out.
func (p *Publisher) Publish(ctx context.Context, r *firmware.Roster) error {
	centre := r.Centre.ID
	for {
		latest, err := p.o.Revisions.Published(ctx, centre)
		if err != nil {
			return err
		}
		next := *r
		changed := true
		if latest != nil {
			prev := latest.Snapshot.Roster
			next.Revision, next.Issued = prev.Revision, prev.Issued
			changed = protocol.Digest(&next) != latest.Snapshot.Digest
			next.Revision = prev.Revision + 1
		} else {
			next.Revision = max(next.Revision, 1)
		}
		if changed {
			next.Issued = p.o.Now().UTC()
			if err := next.Validate(); err != nil {
				return err
			}
			rev := &store.Published{Snapshot: &protocol.Snapshot{V: protocol.Version, Kind: "snapshot", Centre: centre, Digest: protocol.Digest(&next), Roster: &next}}
			if latest != nil {
				rev.Delta = protocol.Diff(latest.Snapshot.Roster, &next)
			}
			// One revision number, one roster, whichever instance
			// publishes: another that took this number first is built on.
			if err := p.o.Revisions.Publish(ctx, rev); errors.Is(err, store.ErrRevisionTaken) {
				continue
			} else if err != nil {
				return err
			}
			latest = rev
		}
		if err := p.send(latest); err != nil {
			return err
		}
		if changed {
			p.published.Add(1)
			p.o.Logger.Info("bridge: roster published", "centre", centre, "revision", latest.Snapshot.Roster.Revision, "children", len(latest.Snapshot.Roster.Children))
		}
		return nil
	}
}

// send sends a revision: its snapshot, retained, then its delta.
func (p *Publisher) send(latest *store.Published) error {
	if p.o.Connected != nil && !p.o.Connected() {
		return ErrNotConnected
	}
	snap := latest.Snapshot
	raw, _ := json.Marshal(snap)
	topics := protocol.Topics{Centre: snap.Centre}
	if err := p.o.Send(topics.Roster(), true, protocol.Sign(p.o.Key, raw)); err != nil {
		return fmt.Errorf("publishing roster %d of %s: %w", snap.Roster.Revision, snap.Centre, err)
	}
	if latest.Delta != nil {
		raw, _ := json.Marshal(latest.Delta)
		if err := p.o.Send(topics.Delta(), false, protocol.Sign(p.o.Key, raw)); err != nil {
			return fmt.Errorf("publishing the delta to roster %d of %s: %w", snap.Roster.Revision, snap.Centre, err)
		}
	}
	return nil
}
