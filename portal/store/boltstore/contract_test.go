package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"kiumtap/portal/store"
	"kiumtap/portal/store/storetest"
	"kiumtap/protocol"
)

// The bbolt store keeps the portal's storage contract. Its instances share
// one process, so the suite's second instance is the same store.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "bridge.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s.Contract()
	}, storetest.Options{})
}

// A store made before the index of texts by centre gets it when opened.
func TestOpenIndexesTexts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	s.JobsFor = func(e *protocol.Event) []store.Job {
		return []store.Job{{ID: e.ID + "/0", EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: "arrival", At: e.Time, To: "01012345678", State: store.JobPending, NextAt: e.Time}}
	}
	if err := s.Put([]protocol.Event{{V: 1, ID: "door-1", Centre: "mangwon1", Device: "door", Log: "L", Seq: 1, Time: at, Child: "c1", Outcome: "check_in"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bTextsBy) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	err = s.Contract().CentreJobs(context.Background(), "mangwon1", at, func(j store.Job) bool { got = append(got, j.ID); return true })
	if err != nil || len(got) != 1 || got[0] != "door-1/0" {
		t.Fatalf("the texts of a store of before the index: %v %v", got, err)
	}
}
