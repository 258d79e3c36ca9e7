package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiumtap/internal/wait"
	"kiumtap/portal/ingest"
	"kiumtap/portal/sms"

	"kiumtap/firmware"
	"kiumtap/portal/source"
	"kiumtap/protocol"
)

// Texts go to guardians who want them, for arrivals, departures and
// automatic check-outs (held when so configured); refused taps text no one.
func TestJobsFor(t *testing.T) {
	src := &source.Source{Roster: &firmware.Roster{Centre: firmware.Centre{ID: "m1", Name: "망원1동"}},
		Guardians: map[string][]source.Guardian{"c1": {{Phone: "01012345678", Texts: true}, {Phone: "01099998888", Texts: false}, {Phone: "01055556666", Texts: true}}}}
	for _, hold := range []string{"text", "hold"} {
		b := &Bridge{o: Options{AutoCheckOut: hold, Now: time.Now}, sources: map[string]*source.Source{"m1": src}, kick: make(chan struct{}, 1)}
		for _, tc := range []struct {
			outcome firmware.Outcome
			jobs    int
		}{
			{firmware.CheckIn, 2}, {firmware.CheckOut, 2}, {firmware.AutoCheckOut, 2},
			{firmware.Duplicate, 0}, {firmware.NoData, 0}, {firmware.NotInUse, 0}, {firmware.UnknownCard, 0}, {firmware.ReplacedCard, 0},
		} {
			jobs := b.jobsFor(&protocol.Event{ID: "d-1", Centre: "m1", Device: "d", Child: "c1", Outcome: string(tc.outcome)})
			if len(jobs) != tc.jobs {
				t.Fatalf("%s, %s: %d texts, want %d", hold, tc.outcome, len(jobs), tc.jobs)
			}
			for _, j := range jobs {
				want := JobPending
				if tc.outcome == firmware.AutoCheckOut && hold == "hold" {
					want = JobHeld
				}
				if j.State != want || j.To == "01099998888" {
					t.Fatalf("%s, %s: %+v", hold, tc.outcome, j)
				}
			}
		}
		if jobs := b.jobsFor(&protocol.Event{ID: "d-2", Centre: "zz", Child: "c1", Outcome: "check_in"}); len(jobs) != 0 {
			t.Fatal("texts for an unknown centre")
		}
	}
}

// flaky answers garbage first, then hangs past the client's patience, then
// takes the text.
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
func TestTextRetries(t *testing.T) {
	st, err := OpenStore(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	clock := func() time.Time { return now }
	f := &flaky{}
	b := &Bridge{o: Options{Store: st, Provider: f, Now: clock, RetryMin: time.Second, RetryMax: time.Minute, Workers: 1}, db: st.Contract(), owner: "test",
		log: slog.New(slog.DiscardHandler), sources: map[string]*source.Source{}, in: ingest.New(st, ingest.Options{})}
	j := Job{ID: "d-1/0", EventID: "d-1", Centre: "m1", Child: "c1", Kind: "arrival", To: "01012345678", State: JobPending, NextAt: now}
	if err := st.Finish(j); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{JobPending, JobPending, JobFailed} {
		jobs, err := st.Claim(now, 10)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("round %d: %d jobs due, %v", i, len(jobs), err)
		}
		b.sendAll(context.Background(), context.Background(), jobs)
		var got Job
		st.Jobs(func(j Job) bool { got = j; return false })
		if got.State != want {
			t.Fatalf("round %d: %s (%s), want %s", i, got.State, got.Reason, want)
		}
		if want == JobPending && !got.NextAt.After(now) {
			t.Fatalf("round %d: retried without backoff", i)
		}
		now = got.NextAt
	}
	if s := b.Stats(); s.TextRetries != 2 || s.TextsFailed != 1 || !strings.Contains(b.Status().Failed[0].Reason, "invalid recipient") {
		t.Fatalf("stats %+v, status %+v", s, b.Status())
	}
}

// A roster change is recorded as the next revision before it goes out,
// once: trying again while offline does not make another revision, and a
// real change later does.
func TestPublishRecordsFirst(t *testing.T) {
	st, err := OpenStore(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := func(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }
	r := &firmware.Roster{Revision: 7, Centre: firmware.Centre{ID: "m1", Name: "망원1동", Terms: []firmware.Term{{Name: "t", From: mk("2026-01-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 600, End: 1100}}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &Bridge{o: Options{Store: st, Now: time.Now}, db: st.Contract(), owner: "test", log: slog.New(slog.DiscardHandler), sources: map[string]*source.Source{"m1": {Roster: r}}}
	rev := func() uint64 {
		p, err := st.Published("m1")
		if err != nil || p == nil {
			t.Fatalf("published: %v", err)
		}
		return p.Snapshot.Roster.Revision
	}
	for range 2 {
		if err := b.Publish("m1"); err == nil || !strings.Contains(err.Error(), "not connected") {
			t.Fatalf("offline publish: %v", err)
		}
		if rev() != 7 {
			t.Fatalf("revision %d, want 7 (the source's, the first time)", rev())
		}
	}
	r2 := *r
	r2.Children = append([]firmware.Child{}, r.Children...)
	r2.Children = append(r2.Children, firmware.Child{ID: "c2", Name: "이서연"})
	r2.Validate()
	b.sources["m1"] = &source.Source{Roster: &r2}
	b.Publish("m1")
	p, _ := st.Published("m1")
	if p.Snapshot.Roster.Revision != 8 || p.Delta == nil || p.Delta.Base != 7 || len(p.Delta.Children.Upsert) != 1 {
		t.Fatalf("after a change: %+v", p)
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

// Each text's outcome is recorded as soon as its provider answers, not
// when the whole claimed batch is done: a crash then sends again at most
// the texts in flight (one per worker), not the batch.
func TestTextsRecordedAsTheyFinish(t *testing.T) {
	st, err := OpenStore(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	p := &slowFor{to: "01000000000", release: make(chan struct{})}
	b := &Bridge{o: Options{Store: st, Provider: p, Now: time.Now, RetryMin: time.Second, RetryMax: time.Minute, Workers: 2}, db: st.Contract(), owner: "test",
		log: slog.New(slog.DiscardHandler), sources: map[string]*source.Source{}, in: ingest.New(st, ingest.Options{})}
	for i := range 6 {
		to := "01012345678"
		if i == 0 {
			to = p.to
		}
		if err := st.Finish(Job{ID: fmt.Sprintf("d-%d/0", i), Centre: "m1", Child: "c1", Kind: "arrival", To: to, State: JobPending, NextAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := st.Claim(now, 10)
	done := make(chan struct{})
	go func() { defer close(done); b.sendAll(context.Background(), context.Background(), jobs) }()
	sent := func() int {
		n := 0
		st.Jobs(func(j Job) bool {
			if j.State == JobSent {
				n++
			}
			return true
		})
		return n
	}
	wait.For(t, 10*time.Second, "the five quick texts recorded while the slow one is in flight", func() bool { return sent() == 5 })
	close(p.release)
	<-done
	if n := sent(); n != 6 {
		t.Fatalf("%d recorded sent, want 6", n)
	}
}

// A texter starts a claimed text only in the first half of its claim's
// lease: a batch that outlasts it gives the rest back to the queue, for
// any texter, rather than send them when another may have taken them.
func TestOldClaimsGivenBack(t *testing.T) {
	st, err := OpenStore(t.TempDir() + "/b.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := &slowFor{to: "01000000000", release: make(chan struct{})}
	b := &Bridge{o: Options{Store: st, Provider: p, Now: clock, RetryMin: time.Second, RetryMax: time.Minute, Workers: 1}, db: st.Contract(), owner: "test",
		log: slog.New(slog.DiscardHandler), sources: map[string]*source.Source{}, in: ingest.New(st, ingest.Options{})}
	for i := range 4 {
		to := "01012345678"
		if i == 0 {
			to = p.to
		}
		if err := st.Finish(Job{ID: fmt.Sprintf("d-%d/0", i), Centre: "m1", Child: "c1", Kind: "arrival", To: to, State: JobPending, NextAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := b.db.Claim(context.Background(), b.owner, now, 10, textLease)
	if err != nil || len(jobs) != 4 {
		t.Fatalf("claimed %d, %v", len(jobs), err)
	}
	done := make(chan struct{})
	go func() { defer close(done); b.sendAll(context.Background(), context.Background(), jobs) }()
	wait.For(t, 10*time.Second, "the slow text at the provider", func() bool { return p.started.Load() })
	mu.Lock()
	now = now.Add(claimFresh + time.Second) // the slow one took more than half the lease
	mu.Unlock()
	close(p.release)
	<-done
	states := map[string]string{}
	b.db.Jobs(context.Background(), true, func(j Job) bool { states[j.ID] = j.State; return true })
	if states["d-0/0"] != JobSent {
		t.Errorf("the slow text: %s, want sent", states["d-0/0"])
	}
	for _, id := range []string{"d-1/0", "d-2/0", "d-3/0"} {
		if states[id] != JobPending {
			t.Errorf("%s: %s, want pending (given back)", id, states[id])
		}
	}
	// Given back: claimable at once by any texter.
	again, err := b.db.Claim(context.Background(), "another", clock(), 10, textLease)
	if err != nil || len(again) != 3 {
		t.Fatalf("another texter claims %d, %v; want the 3 given back", len(again), err)
	}
}
