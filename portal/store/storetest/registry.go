package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"kiumtap/portal/store"
	"kiumtap/protocol"
)

func devices(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, d := range []string{"hall", "door"} {
		if _, err := s.Put(ctx, []protocol.Event{ev("mangwon1", d, "L1", 1, "check_in")}, store.Plan{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, []protocol.Event{ev("hapjeong", "gate", "L1", 1, "check_in")}, store.Plan{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Devices(ctx, "mangwon1")
	if err != nil || !slices.Equal(got, []string{"door", "hall"}) {
		t.Fatalf("Devices(mangwon1) = %v, %v; want [door hall]", got, err)
	}
	if got, err := s.Devices(ctx, "nowhere"); err != nil || len(got) != 0 {
		t.Fatalf("Devices(nowhere) = %v, %v; want none", got, err)
	}
}

type kv struct{ k, v string }

func scan(t *testing.T, s store.Store, table, prefix string) []kv {
	t.Helper()
	var out []kv
	err := s.ViewRegistry(context.Background(), func(tx store.RegistryTx) error {
		return tx.Scan(table, []byte(prefix), func(k, v []byte) error {
			out = append(out, kv{string(k), string(v)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func registryTables(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Nothing written: reads find nothing, without an error.
	err := s.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		v, err := tx.Get("registry", []byte("x"))
		if err != nil || v != nil {
			t.Errorf("Get on an empty table = %q, %v; want nil, nil", v, err)
		}
		n, err := tx.Sequence("bindlog")
		if err != nil || n != 0 {
			t.Errorf("Sequence of a new table = %d, %v; want 0", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys with NUL and high bytes, in byte order; a prefix keeps to its
	// own; the tables are apart.
	keys := []string{"m1\x00c2\x00\x01", "m1\x00c1\x00\xff", "m1\x00c1\x00\x01", "m10\x00c1", "m1\xff", "m2\x00c1"}
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		for i, k := range keys {
			if err := tx.Put("bindlog", []byte(k), []byte{byte('a' + i)}); err != nil {
				return err
			}
		}
		if err := tx.Put("other", []byte("m1\x00c1\x00\x01"), []byte("other")); err != nil {
			return err
		}
		// A value read back in the transaction that wrote it.
		if v, err := tx.Get("bindlog", []byte(keys[0])); err != nil || string(v) != "a" {
			t.Errorf("Get in the writing transaction = %q, %v", v, err)
		}
		for want := uint64(1); want <= 3; want++ {
			if n, err := tx.NextSequence("bindlog"); err != nil || n != want {
				t.Errorf("NextSequence = %d, %v; want %d", n, err, want)
			}
		}
		if err := tx.SetSequence("portal", 41); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := scan(t, s, "bindlog", "m1\x00")
	want := []kv{{"m1\x00c1\x00\x01", "c"}, {"m1\x00c1\x00\xff", "b"}, {"m1\x00c2\x00\x01", "a"}}
	if !slices.Equal(got, want) {
		t.Errorf("Scan(m1\\x00) = %q; want %q", got, want)
	}
	if got := scan(t, s, "bindlog", "m1\xff"); !slices.Equal(got, []kv{{"m1\xff", "e"}}) {
		t.Errorf("Scan(m1\\xff) = %q", got)
	}
	if got := scan(t, s, "bindlog", ""); len(got) != len(keys) || !slices.IsSortedFunc(got, func(a, b kv) int { return bytes.Compare([]byte(a.k), []byte(b.k)) }) {
		t.Errorf("Scan of the whole table = %q; want all %d keys in byte order", got, len(keys))
	}
	// A scan stopped early; a delete.
	var first []string
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		if err := tx.Scan("bindlog", nil, func(k, _ []byte) error {
			first = append(first, string(k))
			return store.ErrStopScan
		}); err != nil {
			return err
		}
		return tx.Delete("bindlog", []byte("m2\x00c1"))
	})
	if err != nil || len(first) != 1 {
		t.Fatalf("a stopped scan: %q, %v", first, err)
	}
	err = s.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		if v, _ := tx.Get("bindlog", []byte("m2\x00c1")); v != nil {
			t.Error("a deleted key is still there")
		}
		if n, _ := tx.Sequence("bindlog"); n != 3 {
			t.Errorf("Sequence(bindlog) = %d after three NextSequence; want 3", n)
		}
		if n, _ := tx.Sequence("portal"); n != 41 {
			t.Errorf("Sequence(portal) = %d after SetSequence(41)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func registryRollsBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		if err := tx.Put("registry", []byte("card"), []byte("holder")); err != nil {
			return err
		}
		if _, err := tx.NextSequence("bindlog"); err != nil {
			return err
		}
		if _, err := tx.QueueBinding(0, json.RawMessage(`{"planned":true}`)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateRegistry = %v; want fn's error", err)
	}
	err = s.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		if v, _ := tx.Get("registry", []byte("card")); v != nil {
			t.Error("a write of a failed transaction stayed")
		}
		if n, _ := tx.Sequence("bindlog"); n != 0 {
			t.Errorf("a counter of a failed transaction stayed: %d", n)
		}
		if q, _ := tx.BindingQueued(); q {
			t.Error("a binding job queued in a failed transaction stayed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Queued in a transaction that commits: next, in order, replaceable.
	var q1, q2 uint64
	err = s.UpdateRegistry(ctx, func(tx store.RegistryTx) (err error) {
		if q1, err = tx.QueueBinding(0, json.RawMessage(`{"n":1}`)); err != nil {
			return err
		}
		q2, err = tx.QueueBinding(0, json.RawMessage(`{"n":2}`))
		return err
	})
	if err != nil || q2 <= q1 {
		t.Fatalf("queued %d then %d, %v: want increasing places", q1, q2, err)
	}
	if err := s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		_, err := tx.QueueBinding(q1, json.RawMessage(`{"n":1,"planned":true}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	j, err := s.NextBinding(ctx)
	if err != nil || j == nil || j.Q != q1 || !bytes.Contains(j.Job, []byte("planned")) {
		t.Fatalf("NextBinding = %+v, %v; want job %d replaced", j, err, q1)
	}
}

// registryOneAtATime: read-modify-write transactions of two instances on
// one counter kept in a value: none is lost, because writes run one at a
// time (an implementation that only relies on row locks taken at the
// write, or none, loses some).
func registryOneAtATime(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for _, s := range []store.Store{a, b} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each / 2 {
					errs <- s.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
						v, err := tx.Get("registry", []byte("n"))
						if err != nil {
							return err
						}
						var n uint64
						if len(v) == 8 {
							n = binary.BigEndian.Uint64(v)
						}
						time.Sleep(time.Millisecond) // widen the window a lost update needs
						return tx.Put("registry", []byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
					})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n uint64
	if err := a.ViewRegistry(ctx, func(tx store.RegistryTx) error {
		v, err := tx.Get("registry", []byte("n"))
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2*each {
		t.Fatalf("counter = %d after %d increments: registry writes overlapped", n, 2*each)
	}
}

// registryHoldsTheQueue: once a registry transaction saw no binding job,
// an event's binding job from another instance waits for its commit.
func registryHoldsTheQueue(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	bound := ev("mangwon1", "door", "L1", 1, protocol.OutcomeCardBound)
	plan := store.Plan{Binding: func(*protocol.Event) json.RawMessage { return json.RawMessage(`{"binding":1}`) }}
	looked, stored := make(chan struct{}), make(chan error, 1)
	var sawStored bool
	err := a.UpdateRegistry(ctx, func(tx store.RegistryTx) error {
		queued, err := tx.BindingQueued()
		if err != nil || queued {
			t.Errorf("BindingQueued = %v, %v on an empty queue", queued, err)
		}
		select {
		case <-looked:
		default:
			close(looked)
			go func() { _, err := b.Put(ctx, []protocol.Event{bound}, plan); stored <- err }()
		}
		select {
		case err := <-stored:
			sawStored = true
			stored <- err
		case <-time.After(300 * time.Millisecond):
		}
		_, err = tx.QueueBinding(0, json.RawMessage(`{"revoke":1}`))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-stored; err != nil {
		t.Fatal(err)
	}
	if sawStored && a != b {
		t.Fatal("an event's binding job was queued while a registry transaction held the queue")
	}
	// The revoke queued first, the event's binding after it.
	j, err := a.NextBinding(ctx)
	if err != nil || j == nil || !bytes.Contains(j.Job, []byte("revoke")) {
		t.Fatalf("first job = %+v, %v; want the revoke's", j, err)
	}
}

// Locks: a named lock held by one instance keeps the other waiting (until
// its ctx ends) and lets other names be; released, it is the other's.
func locks(t *testing.T, a, b store.Store) {
	release, err := a.Lock(ctx, "sources")
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if r, err := b.Lock(wait, "sources"); err == nil {
		r()
		t.Fatal("a held lock was taken by the other instance")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a held lock: %v, want the context's deadline", err)
	}
	other, err := b.Lock(ctx, "another")
	if err != nil {
		t.Fatalf("a lock of another name: %v", err)
	}
	other()
	got := make(chan func(), 1)
	go func() {
		r, err := b.Lock(ctx, "sources")
		if err != nil {
			t.Error(err)
			r = func() {}
		}
		got <- r
	}()
	release()
	release() // twice: harmless
	select {
	case r := <-got:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("the lock released was not taken by the instance waiting for it")
	}
}
