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
			raw, _ := json.Marshal(&bindJob{Binding: s.b.bindingFor(e)})
			return raw
		},
	})
	if err == nil && bound {
		select { // the binder looks now, not at its next tick
		case s.b.bindKick <- struct{}{}:
		default:
		}
	}
	return err
}
