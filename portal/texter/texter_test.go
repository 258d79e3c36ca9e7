package texter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiumtap/internal/wait"
	"kiumtap/portal/sms"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/texter"
)

// queue is a text queue of the embedded store, with jobs due at now.
func queue(t *testing.T, now time.Time, to ...string) store.Store {
	t.Helper()
	st, err := boltstore.Open(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i, n := range to {
		if err := st.Finish(store.Job{ID: fmt.Sprintf("d-%d/0", i), EventID: fmt.Sprintf("d-%d", i), Centre: "m1", Child: "c1", Kind: "arrival",
			To: n, State: store.JobPending, NextAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	return st.Contract()
}

func states(t *testing.T, q store.TextQueue) map[string]store.Job {
	out := map[string]store.Job{}
	if err := q.Jobs(context.Background(), true, func(j store.Job) bool { out[j.ID] = j; return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

type flaky struct{ calls int }

func (*flaky) Name() string { return "flaky" }

func (f *flaky) Send(ctx context.Context, m sms.Message) (sms.Receipt, error) {
	f.calls++
	switch f.calls {
	case 1:
		return sms.Receipt{}, &sms.Error{Provider: "flaky", Status: 200, Reason: "answered <html>garbage</html>"}
	case 2:
		return sms.Receipt{}, &sms.Error{Provider: "flaky", Reason: "no answer in 10 s", Err: context.DeadlineExceeded}
	case 3:
		return sms.Receipt{}, &sms.Error{Provider: "flaky", Status: 400, Reason: "invalid recipient", Permanent: true}
	}
	return sms.Receipt{ID: "ok"}, nil
}

// A provider answering garbage or hanging is retried with backoff and
// counted; one refusing a number fails the text for good, with the reason.
func TestRetries(t *testing.T) {
	now := time.Now()
	q := queue(t, now, "01012345678")
	tx, err := texter.New(texter.Options{Queue: q, Owner: "test", Provider: &flaky{}, Now: func() time.Time { return now },
		RetryMin: time.Second, RetryMax: time.Minute, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{store.JobPending, store.JobPending, store.JobFailed} {
		jobs, err := q.Claim(context.Background(), "test", now, 10, texter.Lease)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("round %d: %d jobs due, %v", i, len(jobs), err)
		}
		tx.SendClaimed(context.Background(), context.Background(), jobs)
		got := states(t, q)["d-0/0"]
		if got.State != want {
			t.Fatalf("round %d: %s (%s), want %s", i, got.State, got.Reason, want)
		}
		if want == store.JobPending && !got.NextAt.After(now) {
			t.Fatalf("round %d: retried without backoff", i)
		}
		now = got.NextAt
	}
	if s, f := tx.Stats(), tx.Failed(); s.Retries != 2 || s.Failed != 1 || len(f) != 1 || !strings.Contains(f[0].Reason, "invalid recipient") {
		t.Fatalf("stats %+v, failed %+v", s, f)
	}
}

// slowFor is a provider that holds the texts to one number until the test
// lets them go, and sends the others at once.
type slowFor struct {
	to      string
	release chan struct{}
	started atomic.Bool // a text to the number reached it
}

func (*slowFor) Name() string { return "slow" }

func (p *slowFor) Send(ctx context.Context, m sms.Message) (sms.Receipt, error) {
	if m.To == p.to {
		p.started.Store(true)
		select {
		case <-p.release:
		case <-ctx.Done():
			return sms.Receipt{}, ctx.Err()
		}
	}
	return sms.Receipt{ID: m.Key}, nil
}

func sentCount(t *testing.T, q store.TextQueue) int {
	n := 0
	for _, j := range states(t, q) {
		if j.State == store.JobSent {
			n++
		}
	}
	return n
}

// Each text's outcome is recorded as soon as its provider answers, not
// when the whole claimed batch is done: a crash then sends again at most
// the texts in flight (one per worker), not the batch.
func TestRecordedAsTheyFinish(t *testing.T) {
	now := time.Now()
	p := &slowFor{to: "01000000000", release: make(chan struct{})}
	q := queue(t, now, p.to, "01012345678", "01012345678", "01012345678", "01012345678", "01012345678")
	tx, err := texter.New(texter.Options{Queue: q, Owner: "test", Provider: p, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := q.Claim(context.Background(), "test", now, 10, texter.Lease)
	done := make(chan struct{})
	go func() { defer close(done); tx.SendClaimed(context.Background(), context.Background(), jobs) }()
	wait.For(t, 10*time.Second, "the five quick texts recorded while the slow one is in flight", func() bool { return sentCount(t, q) == 5 })
	close(p.release)
	<-done
	if n := sentCount(t, q); n != 6 {
		t.Fatalf("%d recorded sent, want 6", n)
	}
}

// A texter starts a claimed text only in the first half of its claim's
// lease: a batch that outlasts it gives the rest back to the queue, for
// any texter, rather than send them when another may have taken them.
func TestOldClaimsGivenBack(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := &slowFor{to: "01000000000", release: make(chan struct{})}
	q := queue(t, now, p.to, "01012345678", "01012345678", "01012345678")
	tx, err := texter.New(texter.Options{Queue: q, Owner: "test", Provider: p, Now: clock, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := q.Claim(context.Background(), "test", now, 10, texter.Lease)
	if err != nil || len(jobs) != 4 {
		t.Fatalf("claimed %d, %v", len(jobs), err)
	}
	done := make(chan struct{})
	go func() { defer close(done); tx.SendClaimed(context.Background(), context.Background(), jobs) }()
	wait.For(t, 10*time.Second, "the slow text at the provider", func() bool { return p.started.Load() })
	mu.Lock()
	now = now.Add(texter.Lease/2 + time.Second) // the slow one took more than half the lease
	mu.Unlock()
	close(p.release)
	<-done
	st := states(t, q)
	if st["d-0/0"].State != store.JobSent {
		t.Errorf("the slow text: %s, want sent", st["d-0/0"].State)
	}
	for _, id := range []string{"d-1/0", "d-2/0", "d-3/0"} {
		if st[id].State != store.JobPending {
			t.Errorf("%s: %s, want pending (given back)", id, st[id].State)
		}
	}
	again, err := q.Claim(context.Background(), "another", clock(), 10, texter.Lease)
	if err != nil || len(again) != 3 {
		t.Fatalf("another texter claims %d, %v; want the 3 given back", len(again), err)
	}
}

// Run sends what is due, names from Names, and stops when told; a Kick
// wakes it at once.
func TestRun(t *testing.T) {
	now := time.Now()
	q := queue(t, now, "01012345678")
	var mu sync.Mutex
	var texts []sms.Text
	tx, err := texter.New(texter.Options{Queue: q, Owner: "test", Provider: sms.NewConsole(nil),
		Names: func(centre, child string) (string, string) { return "망원1동", "김민준" },
		Sent:  func(_ store.Job, text sms.Text) { mu.Lock(); texts = append(texts, text); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tx.Run(ctx, context.Background()) }()
	tx.Kick()
	wait.For(t, 10*time.Second, "the text sent", func() bool { mu.Lock(); defer mu.Unlock(); return len(texts) == 1 })
	cancel()
	<-done
	if s := fmt.Sprint(texts[0]); !strings.Contains(s, "김민준") || !strings.Contains(s, "망원1동") {
		t.Fatalf("text %q lacks the names", s)
	}
	if _, err := texter.New(texter.Options{Queue: q, Provider: &flaky{}}); err == nil {
		t.Fatal("a texter without an owner")
	}
}
