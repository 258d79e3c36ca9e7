package bridge

import (
	"context"
	"encoding/json"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// ingestStore is the store as ingest has it: events stored with the
// texts and the binding job each calls for, in one transaction.
type ingestStore struct{ b *Bridge }

func (s ingestStore) Last(device, log string) (uint64, error) {
	return s.b.db.Last(context.Background(), device, log)
}

func (s ingestStore) Put(evs []protocol.Event) error {
	bound := false
	_, err := s.b.db.Put(context.Background(), evs, store.Plan{
		Texts: s.b.jobsFor,
		Binding: func(e *protocol.Event) json.RawMessage {
			bound = true
			return s.b.bind.Job(e)
		},
	})
	if err == nil && bound {
		s.b.bind.Kick() // the binder looks now, not at its next tick
	}
	return err
}

// ingester stores what the subscribers took, many messages to a
// transaction (group commit), and acknowledges it. When intake ends it
// stores what is left and sends the last acks, waiting for the broker to
// take them (until hard ends), and returns.
func (b *Bridge) ingester(intake, hard context.Context) {
	t := time.NewTicker(b.o.AckEvery)
	defer t.Stop()
	for {
		ack := false
		select {
		case <-intake.Done():
			b.flush()
			b.sendAcks(hard, true)
			return
		case <-b.taken:
			// Let messages gather: one commit (and fsync) stores them all.
			select {
			case <-intake.Done():
			case <-time.After(ingestLinger):
			}
		case <-t.C:
			ack = true
		}
		b.flush()
		if ack { // acks go every AckEvery: one per terminal, naming all it stored
			b.sendAcks(hard, false)
		}
	}
}

// flush stores what was taken and wakes the texter (ingestStore wakes
// the binder).
func (b *Bridge) flush() {
	before := b.in.Stats().Stored
	if err := b.in.Flush(b.o.Now()); err != nil {
		b.log.Error("bridge: storing events; they stay unacknowledged and come again", "err", err)
	}
	if n := b.in.Stats().Stored - before; n > 0 {
		// Committed: the texts and binding jobs of these events are
		// visible now.
		b.tx.Kick()
		if b.o.Stored != nil {
			b.o.Stored()
		}
		if n >= burstEvents {
			b.burstAt.Store(time.Now().UnixNano())
		}
	}
}

// sendAcks publishes the acks due; wait: until the broker has each (a
// stopping bridge), bounded by ctx.
func (b *Bridge) sendAcks(ctx context.Context, wait bool) {
	// Acks go on every broker: the terminal is on one of them (which,
	// the bridge does not track: it may have failed over meanwhile).
	var cs []mqtt.Client
	for _, c := range b.perBroker() {
		if c != nil {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return // acks come again: cumulative, and repeated for duplicates
	}
	for _, a := range b.in.Acks(b.o.Now()) {
		for _, c := range cs {
			t := c.Publish(a.Topic, 1, false, a.Payload)
			if wait {
				if err := waitToken(ctx, t, 2*time.Second); err != nil {
					b.log.Warn("bridge: a last ack not confirmed by the broker; the terminal's resend gets it again", "topic", a.Topic, "err", err)
				}
			}
		}
	}
}

// ingestLinger is how long the ingester lets messages gather before a
// commit.
const ingestLinger = 3 * time.Millisecond

// A commit of at least burstEvents events marks a burst: the texter then
// stands back a moment (texter.Options.Burst).
const burstEvents = 16
