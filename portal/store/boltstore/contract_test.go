package boltstore

import (
	"path/filepath"
	"testing"

	"kiumtap/portal/store"
	"kiumtap/portal/store/storetest"
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
