package publish_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"kiumtap/firmware"
	"kiumtap/portal/publish"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

var key = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func revisions(t *testing.T) store.Store {
	st, err := boltstore.Open(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.Contract()
}

func roster(t *testing.T, rev uint64, children ...string) *firmware.Roster {
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	r := &firmware.Roster{Revision: rev, Centre: firmware.Centre{ID: "m1", Name: "망원1동", Terms: []firmware.Term{{Name: "t", From: mk("2026-01-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 600, End: 1100}}}}}
	for _, c := range children {
		r.Children = append(r.Children, firmware.Child{ID: c, Name: "아이 " + c})
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

type sent struct {
	topic    string
	retained bool
	payload  []byte
}

type wire struct {
	mu   sync.Mutex
	up   bool
	msgs []sent
}

func (w *wire) send(topic string, retained bool, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, sent{topic, retained, payload})
	return nil
}

func (w *wire) connected() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.up }

func latest(t *testing.T, s store.Revisions) *store.Published {
	p, err := s.Published(context.Background(), "m1")
	if err != nil || p == nil {
		t.Fatalf("published: %+v, %v", p, err)
	}
	return p
}

// A roster change is recorded as the next revision before it goes out,
// once: trying again while offline does not make another revision, and a
// real change later does, with the delta from the one before; both go
// out signed, the snapshot retained.
func TestRecordedFirst(t *testing.T) {
	s := revisions(t)
	w := &wire{}
	p, err := publish.New(publish.Options{Revisions: s, Key: key, Send: w.send, Connected: w.connected})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if err := p.Publish(ctx, roster(t, 7, "c1")); err != publish.ErrNotConnected {
			t.Fatalf("offline publish: %v", err)
		}
		if r := latest(t, s).Snapshot.Roster.Revision; r != 7 {
			t.Fatalf("revision %d, want 7 (the source's, the first time)", r)
		}
	}
	w.up = true
	if err := p.Publish(ctx, roster(t, 7, "c1", "c2")); err != nil {
		t.Fatal(err)
	}
	got := latest(t, s)
	if got.Snapshot.Roster.Revision != 8 || got.Delta == nil || got.Delta.Base != 7 || len(got.Delta.Children.Upsert) != 1 {
		t.Fatalf("after a change: %+v", got)
	}
	if len(w.msgs) != 2 || !w.msgs[0].retained || w.msgs[1].retained ||
		w.msgs[0].topic != (protocol.Topics{Centre: "m1"}).Roster() || w.msgs[1].topic != (protocol.Topics{Centre: "m1"}).Delta() {
		t.Fatalf("sent %+v", w.msgs)
	}
	raw, err := protocol.Open(key.Public().(ed25519.PublicKey), w.msgs[0].payload, protocol.MaxMessage)
	if err != nil {
		t.Fatalf("the snapshot's signature: %v", err)
	}
	var snap protocol.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil || snap.Roster.Revision != 8 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	// Unchanged: sent again, no new revision.
	if err := p.Publish(ctx, roster(t, 7, "c1", "c2")); err != nil {
		t.Fatal(err)
	}
	if r := latest(t, s).Snapshot.Roster.Revision; r != 8 || p.Published() != 1 {
		t.Fatalf("revision %d after an unchanged publish, %d made", r, p.Published())
	}
}

// Publishers of several instances on one store, publishing at once, give
// each revision number to one roster: the one that loses the number
// builds on the winner's.
func TestOneRosterPerRevision(t *testing.T) {
	s := revisions(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			p, _ := publish.New(publish.Options{Revisions: s, Key: key, Send: (&wire{}).send})
			errs <- p.Publish(ctx, roster(t, 1, "c1", fmt.Sprintf("k%d", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := latest(t, s).Snapshot.Roster.Revision; r != 8 {
		t.Fatalf("8 different rosters published as revisions up to %d, want 8", r)
	}
}
