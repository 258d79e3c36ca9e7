// Package storetest is the conformance suite of the portal's storage
// contract (package store): every implementation runs it, with a fresh,
// empty store per test. It checks what the bridge relies on, including
// what only the database can hold when several instances share it: two
// instances storing the same events, or claiming texts, at the same
// moment.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// Open makes a fresh, empty store for one test; the suite closes it.
// Opening the same store again (a second instance on it) is Reopen's.
type Open func(t *testing.T) store.Store

// Options of the suite.
type Options struct {
	// Second, if set, opens a second handle on the store first opened
	// (another instance on the same database): the suite then runs the
	// concurrent cases across the two. Nil: both sides use one handle.
	Second func(t *testing.T, first store.Store) store.Store
}

var t0 = time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)

func ev(centre, device, log string, seq uint64, outcome string) protocol.Event {
	return protocol.Event{V: protocol.Version, ID: fmt.Sprintf("%s-%d", device, seq), Centre: centre, Device: device, Log: log, Seq: seq,
		Time: t0.Add(time.Duration(seq) * time.Minute), ClockSynced: true, Outcome: outcome, Reason: "in_window", Child: "c1", RosterRev: 1}
}

func run(t *testing.T, seq ...uint64) []protocol.Event {
	t.Helper()
	var out []protocol.Event
	for _, s := range seq {
		out = append(out, ev("mangwon1", "door", "L1", s, "check_in"))
	}
	return out
}

// twoTexts plans two texts (two guardians) per accepted tap.
var twoTexts = store.Plan{Texts: func(e *protocol.Event) []store.Job {
	if e.Outcome != "check_in" && e.Outcome != "check_out" {
		return nil
	}
	var js []store.Job
	for g := range 2 {
		js = append(js, store.Job{ID: fmt.Sprintf("%s/%d", e.ID, g), EventID: e.ID, Centre: e.Centre, Child: e.Child,
			Kind: "arrival", At: e.Time, To: fmt.Sprintf("0101234567%d", g), Created: e.Time, State: store.JobPending, NextAt: e.Time})
	}
	return js
}}

// Run runs the suite.
func Run(t *testing.T, open Open, o Options) {
	second := func(t *testing.T, s store.Store) store.Store {
		if o.Second == nil {
			return s
		}
		return o.Second(t, s)
	}
	fresh := func(t *testing.T) store.Store {
		s := open(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("EventsInOrder", func(t *testing.T) { eventsInOrder(t, fresh(t)) })
	t.Run("EventsBringTheirTexts", func(t *testing.T) { eventsBringTheirTexts(t, fresh(t)) })
	t.Run("TwoInstancesStoreOnce", func(t *testing.T) { s := fresh(t); twoInstancesStoreOnce(t, s, second(t, s)) })
	t.Run("ClaimsAreExclusive", func(t *testing.T) { s := fresh(t); claimsAreExclusive(t, s, second(t, s)) })
	t.Run("ClaimLifecycle", func(t *testing.T) { claimLifecycle(t, fresh(t)) })
	t.Run("ClaimAfterManyPuts", func(t *testing.T) { claimAfterManyPuts(t, fresh(t)) })
	t.Run("Retry", func(t *testing.T) { retry(t, fresh(t)) })
	t.Run("EventsAfter", func(t *testing.T) { eventsAfter(t, fresh(t)) })
	t.Run("CentreJobs", func(t *testing.T) { centreJobs(t, fresh(t)) })
	t.Run("Enqueue", func(t *testing.T) { s := fresh(t); enqueue(t, s, second(t, s)) })
	t.Run("Revisions", func(t *testing.T) { s := fresh(t); revisions(t, s, second(t, s)) })
	t.Run("Gaps", func(t *testing.T) { gaps(t, fresh(t)) })
	t.Run("BindingJobs", func(t *testing.T) { bindingJobs(t, fresh(t)) })
	t.Run("Devices", func(t *testing.T) { devices(t, fresh(t)) })
	t.Run("RegistryTables", func(t *testing.T) { registryTables(t, fresh(t)) })
	t.Run("RegistryRollsBack", func(t *testing.T) { registryRollsBack(t, fresh(t)) })
	t.Run("RegistryWritesOneAtATime", func(t *testing.T) { s := fresh(t); registryOneAtATime(t, s, second(t, s)) })
	t.Run("RegistryHoldsTheQueue", func(t *testing.T) { s := fresh(t); registryHoldsTheQueue(t, s, second(t, s)) })
	t.Run("Locks", func(t *testing.T) { s := fresh(t); locks(t, s, second(t, s)) })
}

var ctx = context.Background()

func last(t *testing.T, s store.Events, device, log string) uint64 {
	t.Helper()
	n, err := s.Last(ctx, device, log)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func stored(t *testing.T, s store.Events, centre string) []protocol.Event {
	t.Helper()
	var out []protocol.Event
	if err := s.Events(ctx, centre, func(e protocol.Event) bool { out = append(out, e); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func jobs(t *testing.T, s store.TextQueue, done bool) []store.Job {
	t.Helper()
	var out []store.Job
	if err := s.Jobs(ctx, done, func(j store.Job) bool { out = append(out, j); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// Events are stored in order, once: a hole is refused whole, an event
// stored again is skipped, logs and centres are apart.
func eventsInOrder(t *testing.T, s store.Store) {
	if n := last(t, s, "door", "L1"); n != 0 {
		t.Fatalf("Last of a new log = %d", n)
	}
	if n, err := s.Put(ctx, run(t, 1, 2, 3), store.Plan{}); err != nil || n != 3 {
		t.Fatalf("Put 1..3 = %d, %v", n, err)
	}
	if n := last(t, s, "door", "L1"); n != 3 {
		t.Fatalf("Last = %d, want 3", n)
	}
	// A hole: nothing of the call is stored, not even the event before it.
	if n, err := s.Put(ctx, run(t, 4, 6), store.Plan{}); !errors.Is(err, store.ErrNotNext) || n != 0 {
		t.Fatalf("Put 4, 6 = %d, %v; want ErrNotNext and nothing", n, err)
	}
	if n := last(t, s, "door", "L1"); n != 3 {
		t.Fatalf("Last after a refused hole = %d, want 3", n)
	}
	// Sent again with the next: the stored ones are skipped.
	if n, err := s.Put(ctx, run(t, 2, 3, 4), store.Plan{}); err != nil || n != 1 {
		t.Fatalf("Put 2..4 = %d, %v; want 1 stored", n, err)
	}
	// Another log of the same device, another device, another centre.
	other := []protocol.Event{ev("mangwon1", "door", "L2", 1, "check_in"), ev("mangwon1", "back", "L9", 1, "check_out"), ev("hapjeong", "door", "L3", 1, "check_in")}
	if n, err := s.Put(ctx, other, store.Plan{}); err != nil || n != 3 {
		t.Fatalf("Put of other logs = %d, %v", n, err)
	}
	got := stored(t, s, "mangwon1")
	var ids []string
	for _, e := range got {
		ids = append(ids, e.Device+"/"+e.Log+"/"+fmt.Sprint(e.Seq))
	}
	want := []string{"back/L9/1", "door/L1/1", "door/L1/2", "door/L1/3", "door/L1/4", "door/L2/1"}
	if !slices.Equal(ids, want) {
		t.Fatalf("mangwon1's events %v, want %v", ids, want)
	}
	if got[1].Time != run(t, 1)[0].Time || got[1].Outcome != "check_in" || got[1].Reason != "in_window" {
		t.Errorf("an event did not come back as stored: %+v", got[1])
	}
	if n := len(stored(t, s, "")); n != 7 {
		t.Errorf("every centre's events: %d, want 7", n)
	}
	var first []protocol.Event
	s.Events(ctx, "", func(e protocol.Event) bool { first = append(first, e); return len(first) < 2 })
	if len(first) != 2 {
		t.Errorf("Events did not stop when fn said so: %d", len(first))
	}
	cs, err := s.Centres(ctx)
	if err != nil || !slices.Equal(cs, []string{"hapjeong", "mangwon1"}) {
		t.Errorf("Centres = %v, %v", cs, err)
	}
	// A binding change is stored without its raw UID.
	b := ev("mangwon1", "door", "L1", 5, protocol.OutcomeCardBound)
	b.UID, b.Card = "04A1B2C3", "hmac"
	if _, err := s.Put(ctx, []protocol.Event{b}, store.Plan{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range stored(t, s, "mangwon1") {
		if e.Seq == 5 && (e.UID != "" || e.Card != "hmac") {
			t.Errorf("card_bound stored with UID %q, card %q", e.UID, e.Card)
		}
	}
}

// Texts come with their event in one transaction, once per event and
// guardian however often the event is sent; none with a refused call.
func eventsBringTheirTexts(t *testing.T, s store.Store) {
	if _, err := s.Put(ctx, run(t, 1, 2), twoTexts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, run(t, 2, 3), twoTexts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, run(t, 4, 9), twoTexts); !errors.Is(err, store.ErrNotNext) {
		t.Fatalf("a hole: %v", err)
	}
	js := jobs(t, s, true)
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	want := []string{"door-1/0", "door-1/1", "door-2/0", "door-2/1", "door-3/0", "door-3/1"}
	if !slices.Equal(ids, want) {
		t.Fatalf("texts %v, want %v (in the order queued)", ids, want)
	}
	for i, j := range js {
		if j.State != store.JobPending || j.To == "" || j.Q == 0 || (i > 0 && j.Q <= js[i-1].Q) {
			t.Errorf("text %+v: want pending, its number, its place after the one before", j)
		}
	}
	q, err := s.Queue(ctx)
	if err != nil || q.Pending != 6 || q.Sending != 0 || !q.Oldest.Equal(run(t, 1)[0].Time) {
		t.Errorf("Queue = %+v, %v", q, err)
	}
}

// Two instances storing the same events at the same moment store each
// once, with its texts once; neither sees an error but a real hole.
func twoInstancesStoreOnce(t *testing.T, a, b store.Store) {
	const n = 200
	var all []protocol.Event
	for i := uint64(1); i <= n; i++ {
		all = append(all, run(t, i)...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, s := range []store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i += 10 {
				// Each instance sends batches as a terminal does after a
				// reconnect: from where it believes the log is.
				from := max(0, i-5)
				if _, err := s.Put(ctx, all[from:i+10], twoTexts); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent Put: %v", err)
	}
	if got := last(t, a, "door", "L1"); got != n {
		t.Fatalf("Last = %d, want %d", got, n)
	}
	if got := len(stored(t, b, "mangwon1")); got != n {
		t.Fatalf("%d events stored, want %d", got, n)
	}
	js := jobs(t, a, true)
	seen := map[string]bool{}
	for _, j := range js {
		if seen[j.ID] {
			t.Fatalf("text %s queued twice", j.ID)
		}
		seen[j.ID] = true
	}
	if len(js) != 2*n {
		t.Fatalf("%d texts, want %d", len(js), 2*n)
	}
}

func queueTexts(t *testing.T, s store.Store, n int) {
	t.Helper()
	var evs []protocol.Event
	for i := 1; i <= n; i++ {
		evs = append(evs, run(t, uint64(i))...)
	}
	if _, err := s.Put(ctx, evs, twoTexts); err != nil {
		t.Fatal(err)
	}
}

// Texters of two instances claiming at once never get the same text.
func claimsAreExclusive(t *testing.T, a, b store.Store) {
	queueTexts(t, a, 100) // 200 texts
	now := t0.Add(24 * time.Hour)
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		s := []store.Store{a, b}[w%2]
		owner := fmt.Sprintf("texter-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				js, err := s.Claim(ctx, owner, now, 7, time.Minute)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(js) == 0 {
					return
				}
				mu.Lock()
				for _, j := range js {
					if prev, ok := got[j.ID]; ok {
						t.Errorf("text %s claimed by %s and %s", j.ID, prev, owner)
					}
					got[j.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 200 {
		t.Fatalf("%d texts claimed, want 200", len(got))
	}
}

// A claim: due texts only, counted attempts, Sending while held; Release
// gives it back; Finish records it (done, or pending later); a claim left
// by a dead owner lapses at its lease.
func claimLifecycle(t *testing.T, s store.Store) {
	queueTexts(t, s, 3) // texts due at t0+1m, +2m, +3m
	at := t0.Add(90 * time.Second)
	js, err := s.Claim(ctx, "a", at, 10, time.Minute)
	if err != nil || len(js) != 2 || js[0].ID != "door-1/0" || js[1].ID != "door-1/1" {
		t.Fatalf("Claim at +90s = %v, %v; want door-1's two texts, in order", ids(js), err)
	}
	for _, j := range js {
		if j.State != store.JobSending || j.Attempts != 1 {
			t.Errorf("claimed %+v: want sending, attempt 1", j)
		}
	}
	q, _ := s.Queue(ctx)
	if q.Sending != 2 || q.Pending != 4 {
		t.Errorf("Queue with two claimed = %+v", q)
	}
	for _, j := range jobs(t, s, false)[:2] {
		if j.State != store.JobSending {
			t.Errorf("Jobs shows claimed %s as %s", j.ID, j.State)
		}
	}
	if again, _ := s.Claim(ctx, "b", at, 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed twice: %v", ids(again))
	}
	// Release: back, and claimed again at once.
	if err := s.Release(ctx, "a", js[1]); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Claim(ctx, "b", at, 10, time.Minute); len(again) != 1 || again[0].ID != "door-1/1" || again[0].Attempts != 1 {
		t.Fatalf("after Release, claimed %v", again)
	}
	// Finish: the first sent, the second to try again in 5 minutes.
	sent := js[0]
	sent.State, sent.Receipt, sent.SentAt = store.JobSent, "R1", at
	retry, _ := s.Claim(ctx, "x", at.Add(time.Hour), 0, time.Minute) // claims nothing: n is 0
	if len(retry) != 0 {
		t.Fatalf("Claim of 0 took %v", ids(retry))
	}
	if err := s.Finish(ctx, "a", sent); err != nil {
		t.Fatal(err)
	}
	later := js[1]
	later.Attempts, later.State, later.NextAt, later.Reason = 2, store.JobPending, at.Add(5*time.Minute), "timeout"
	if err := s.Finish(ctx, "b", later); err != nil {
		t.Fatal(err)
	}
	done := jobs(t, s, true)
	var state = map[string]store.Job{}
	for _, j := range done {
		state[j.ID] = j
	}
	if j := state["door-1/0"]; j.State != store.JobSent || j.Receipt != "R1" {
		t.Errorf("sent text %+v", j)
	}
	if j := state["door-1/1"]; j.State != store.JobPending || !j.NextAt.Equal(at.Add(5*time.Minute)) || j.Attempts != 2 {
		t.Errorf("text to retry %+v", j)
	}
	if q, _ := s.Queue(ctx); q.Pending != 5 || q.Sending != 0 {
		t.Errorf("Queue after Finish = %+v", q)
	}
	// Not before its time; at its time, yes.
	if c, _ := s.Claim(ctx, "a", at.Add(4*time.Minute), 10, time.Minute); slices.Contains(ids(c), "door-1/1") {
		t.Error("a text to retry claimed before its time")
	} else {
		s.Release(ctx, "a", c...)
	}
	// A claim whose owner died lapses at its lease's end.
	c, _ := s.Claim(ctx, "dies", at.Add(10*time.Minute), 1, time.Minute)
	if len(c) != 1 {
		t.Fatalf("claim for the owner that dies: %v", ids(c))
	}
	if again, _ := s.Claim(ctx, "b", at.Add(10*time.Minute+30*time.Second), 10, time.Minute); slices.Contains(ids(again), c[0].ID) {
		t.Fatal("a claim taken again within its lease")
	} else {
		s.Release(ctx, "b", again...)
	}
	again, _ := s.Claim(ctx, "b", at.Add(11*time.Minute+time.Second), 10, time.Minute)
	if !slices.Contains(ids(again), c[0].ID) {
		t.Fatalf("a lapsed claim is not claimed again: %v", ids(again))
	}
	// Done texts are never claimed.
	if slices.Contains(ids(again), "door-1/0") {
		t.Fatal("a sent text claimed again")
	}
}

func ids(js []store.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func snapshot(centre string, rev uint64) *store.Published {
	return &store.Published{Snapshot: &protocol.Snapshot{V: protocol.Version, Kind: "snapshot", Centre: centre,
		Roster: &firmware.Roster{Revision: rev, Centre: firmware.Centre{ID: centre}}}}
}

// One roster per revision number, whichever instance publishes.
func revisions(t *testing.T, a, b store.Store) {
	if p, err := a.Published(ctx, "mangwon1"); p != nil || err != nil {
		t.Fatalf("Published of a new centre = %v, %v", p, err)
	}
	if err := a.Publish(ctx, snapshot("mangwon1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, snapshot("mangwon1", 1)); !errors.Is(err, store.ErrRevisionTaken) {
		t.Fatalf("revision 1 published twice: %v", err)
	}
	if err := b.Publish(ctx, snapshot("mangwon1", 3)); !errors.Is(err, store.ErrRevisionTaken) {
		t.Fatalf("revision 3 after 1: %v", err)
	}
	// Both race for revision 2: one wins.
	var wins, taken int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Publish(ctx, snapshot("mangwon1", 2))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrRevisionTaken):
				taken++
			default:
				t.Errorf("Publish: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || taken != 3 {
		t.Fatalf("revision 2: %d published, %d refused; want 1 and 3", wins, taken)
	}
	p, err := b.Published(ctx, "mangwon1")
	if err != nil || p.Snapshot.Roster.Revision != 2 {
		t.Fatalf("Published = %+v, %v", p, err)
	}
	if p, _ := a.Published(ctx, "hapjeong"); p != nil {
		t.Fatal("another centre's revision")
	}
}

// A gap moves the log past it and is kept; one that no longer fits the
// log is refused.
func gaps(t *testing.T, s store.Store) {
	if _, err := s.Put(ctx, run(t, 1, 2), store.Plan{}); err != nil {
		t.Fatal(err)
	}
	g := store.Gap{Centre: "mangwon1", Device: "door", Log: "L1", From: 3, To: 9, By: "op.kim", Recorded: t0}
	if err := s.RecordGap(ctx, g); err != nil {
		t.Fatal(err)
	}
	if n := last(t, s, "door", "L1"); n != 9 {
		t.Fatalf("Last after the gap = %d, want 9", n)
	}
	if _, err := s.Put(ctx, run(t, 10), store.Plan{}); err != nil {
		t.Fatalf("the event after the gap: %v", err)
	}
	if err := s.RecordGap(ctx, g); !errors.Is(err, store.ErrLogMoved) {
		t.Fatalf("the same gap again: %v", err)
	}
	gs, err := s.Gaps(ctx, "mangwon1")
	if err != nil || len(gs) != 1 || gs[0] != g {
		t.Fatalf("Gaps = %+v, %v", gs, err)
	}
	if gs, _ := s.Gaps(ctx, "hapjeong"); len(gs) != 0 {
		t.Fatal("another centre's gaps")
	}
}

// Binding jobs come with their card_bound event, in order, once.
func bindingJobs(t *testing.T, s store.Store) {
	plan := store.Plan{Binding: func(e *protocol.Event) json.RawMessage {
		if e.Outcome != protocol.OutcomeCardBound {
			return nil
		}
		return json.RawMessage(fmt.Sprintf(`{"event":%q}`, e.ID))
	}}
	var evs []protocol.Event
	for i := uint64(1); i <= 3; i++ {
		evs = append(evs, ev("mangwon1", "door", "L1", i, protocol.OutcomeCardBound))
	}
	evs[1].Outcome = "check_in"
	if _, err := s.Put(ctx, evs, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, evs, plan); err != nil { // again: nothing new
		t.Fatal(err)
	}
	j, err := s.NextBinding(ctx)
	if err != nil || j == nil || string(j.Job) != `{"event":"door-1"}` {
		t.Fatalf("NextBinding = %+v, %v", j, err)
	}
	j.Job = json.RawMessage(`{"event":"door-1","planned":true}`)
	if err := s.UpdateBinding(ctx, *j); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.NextBinding(ctx); again == nil || again.Q != j.Q || string(again.Job) != `{"event":"door-1","planned":true}` {
		t.Fatalf("after UpdateBinding: %+v", again)
	}
	if err := s.DoneBinding(ctx, j.Q); err != nil {
		t.Fatal(err)
	}
	next, _ := s.NextBinding(ctx)
	if next == nil || string(next.Job) != `{"event":"door-3"}` || next.Q <= j.Q {
		t.Fatalf("the second binding job: %+v", next)
	}
	s.DoneBinding(ctx, next.Q)
	if none, err := s.NextBinding(ctx); none != nil || err != nil {
		t.Fatalf("an empty queue: %+v, %v", none, err)
	}
}

// Texts stored by many calls, one event each (a quiet day's flushes), are
// all claimable by one claim, in the order stored: however a store keeps
// them until claimed, none waits for a later claim.
func claimAfterManyPuts(t *testing.T, s store.Store) {
	const calls = 150
	for i := range calls {
		if _, err := s.Put(ctx, run(t, uint64(i+1)), twoTexts); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Claim(ctx, "a", t0.Add(24*time.Hour), 2*calls, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*calls {
		t.Fatalf("one claim of %d took %d texts", 2*calls, len(got))
	}
	for i, j := range got {
		if want := fmt.Sprintf("door-%d/%d", i/2+1, i%2); j.ID != want {
			t.Fatalf("text %d claimed is %s, want %s (the order stored)", i, j.ID, want)
		}
	}
}

// A failed text is sent again to a corrected number (Q22): pending and
// due again, its attempts afresh, its ID kept; a sent, pending or unknown
// text is not retriable.
func retry(t *testing.T, s store.Store) {
	if _, err := s.Put(ctx, run(t, 1), twoTexts); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	got, err := s.Claim(ctx, "a", now, 2, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %v %v", got, err)
	}
	failed, sent := got[0], got[1]
	failed.State, failed.Reason = store.JobFailed, "invalid number"
	sent.State = store.JobSent
	if err := s.Finish(ctx, "a", failed, sent); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sent.ID, "door-9/0"} {
		if err := s.Retry(ctx, id, "01099998888", now); !errors.Is(err, store.ErrNotRetriable) {
			t.Errorf("Retry %s: %v, want ErrNotRetriable", id, err)
		}
	}
	later := now.Add(time.Minute)
	if err := s.Retry(ctx, failed.ID, "01099998888", later); err != nil {
		t.Fatal(err)
	}
	if err := s.Retry(ctx, failed.ID, "01099998888", later); !errors.Is(err, store.ErrNotRetriable) {
		t.Errorf("Retry of a text pending again: %v", err)
	}
	again, err := s.Claim(ctx, "a", later, 5, time.Minute)
	if err != nil || len(again) != 1 {
		t.Fatalf("claim after Retry: %+v %v", again, err)
	}
	if j := again[0]; j.ID != failed.ID || j.To != "01099998888" || j.Attempts != 1 || j.Reason != "" || j.EventID != failed.EventID {
		t.Errorf("the text again: %+v", j)
	}
}

// EventsAfter reads only what follows the sequences given, log by log;
// a log not named is read whole; other centres' logs never.
func eventsAfter(t *testing.T, s store.Store) {
	evs := append(run(t, 1, 2, 3), ev("mangwon1", "back", "L9", 1, "check_out"), ev("mangwon1", "back", "L9", 2, "check_in"), ev("hapjeong", "door", "L3", 1, "check_in"))
	if _, err := s.Put(ctx, evs, store.Plan{}); err != nil {
		t.Fatal(err)
	}
	after := func(marks map[store.LogID]uint64) []string {
		t.Helper()
		var ids []string
		err := s.EventsAfter(ctx, "mangwon1", marks, func(e protocol.Event) bool {
			ids = append(ids, e.Device+"/"+e.Log+"/"+fmt.Sprint(e.Seq))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got, want := after(nil), []string{"back/L9/1", "back/L9/2", "door/L1/1", "door/L1/2", "door/L1/3"}; !slices.Equal(got, want) {
		t.Errorf("EventsAfter(none) = %v, want %v", got, want)
	}
	marks := map[store.LogID]uint64{{Device: "door", Log: "L1"}: 2, {Device: "back", Log: "L9"}: 2, {Device: "door", Log: "L3"}: 0}
	if got, want := after(marks), []string{"door/L1/3"}; !slices.Equal(got, want) {
		t.Errorf("EventsAfter(door/L1 at 2, back/L9 at 2) = %v, want %v", got, want)
	}
	if _, err := s.Put(ctx, run(t, 4, 5), store.Plan{}); err != nil {
		t.Fatal(err)
	}
	marks[store.LogID{Device: "door", Log: "L1"}] = 3
	if got, want := after(marks), []string{"door/L1/4", "door/L1/5"}; !slices.Equal(got, want) {
		t.Errorf("EventsAfter after new events = %v, want %v", got, want)
	}
	marks[store.LogID{Device: "door", Log: "L1"}] = 5
	if got := after(marks); len(got) != 0 {
		t.Errorf("EventsAfter with nothing new = %v", got)
	}
	n := 0
	s.EventsAfter(ctx, "mangwon1", nil, func(protocol.Event) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("EventsAfter did not stop when fn said so: %d", n)
	}
}

// CentreJobs: a centre's texts from a time on, in the order of their
// taps, whatever their state; none of another centre.
func centreJobs(t *testing.T, s store.Store) {
	evs := append(run(t, 1, 2, 3), ev("hapjeong", "hdoor", "L3", 1, "check_in"))
	if _, err := s.Put(ctx, evs, twoTexts); err != nil {
		t.Fatal(err)
	}
	// One finished (failed), so it is found among the done as well.
	got, err := s.Claim(ctx, "a", t0.Add(time.Hour), 1, time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	got[0].State, got[0].Reason = store.JobFailed, "invalid number"
	if err := s.Finish(ctx, "a", got...); err != nil {
		t.Fatal(err)
	}
	ids := func(centre string, since time.Time) []string {
		t.Helper()
		var out []string
		err := s.CentreJobs(ctx, centre, since, func(j store.Job) bool {
			out = append(out, j.ID+" "+j.State)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{"door-1/0 failed", "door-1/1 pending", "door-2/0 pending", "door-2/1 pending", "door-3/0 pending", "door-3/1 pending"}
	if got := ids("mangwon1", t0); !slices.Equal(got, want) {
		t.Errorf("CentreJobs(mangwon1) = %v, want %v", got, want)
	}
	if got := ids("mangwon1", t0.Add(2*time.Minute)); !slices.Equal(got, want[2:]) {
		t.Errorf("CentreJobs(mangwon1, from the second tap) = %v, want %v", got, want[2:])
	}
	if got := ids("hapjeong", t0); len(got) != 2 {
		t.Errorf("CentreJobs(hapjeong) = %v", got)
	}
	if got := ids("seogyo1", t0); len(got) != 0 {
		t.Errorf("CentreJobs of a centre without texts = %v", got)
	}
	if err := s.Retry(ctx, "door-1/0", "01099998888", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := ids("mangwon1", t0); got[0] != "door-1/0 pending" || len(got) != 6 {
		t.Errorf("CentreJobs after a retry = %v", got)
	}
}

// Enqueue queues texts no event brings, each once across instances and
// calls; they are claimed and listed like any other.
func enqueue(t *testing.T, s, other store.Store) {
	at := t0.Add(30 * time.Minute)
	job := func(g int) store.Job {
		return store.Job{ID: fmt.Sprintf("na/mangwon1/2026-11-23/c1/%d", g), Centre: "mangwon1", Child: "c1", Kind: "not_arrived", At: at,
			To: fmt.Sprintf("0101234567%d", g), Created: at, State: store.JobPending, NextAt: at}
	}
	if n, err := s.Enqueue(ctx, job(0), job(1)); err != nil || n != 2 {
		t.Fatalf("Enqueue = %d, %v; want 2", n, err)
	}
	if n, err := other.Enqueue(ctx, job(1), job(2)); err != nil || n != 1 {
		t.Fatalf("Enqueue again from another instance = %d, %v; want 1 (job 2)", n, err)
	}
	got, err := s.Claim(ctx, "a", at, 10, time.Minute)
	if err != nil || len(got) != 3 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	for _, j := range got {
		if j.Kind != "not_arrived" || j.State != store.JobSending || j.Attempts != 1 {
			t.Errorf("a queued text claimed: %+v", j)
		}
	}
	var ids []string
	s.CentreJobs(ctx, "mangwon1", t0, func(j store.Job) bool { ids = append(ids, j.ID); return true })
	if len(ids) != 3 {
		t.Errorf("CentreJobs lists %v", ids)
	}
	if n, err := s.Enqueue(ctx, job(0)); err != nil || n != 0 {
		t.Errorf("Enqueue of a text claimed = %d, %v; want 0", n, err)
	}
}
