package bridge

import (
	"context"
	"encoding/json"

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
