// Package texter sends the parents' texts. It claims due texts from the
// store's queue (store.TextQueue) as one owner among any number of
// texters, of this process or others, hands them to the provider
// (sms.Provider) a few at a time, and records each outcome as the
// provider answers: sent, refused for good, or pending again after a
// backoff. It owns the claims' discipline: a claimed text is started only
// in the first half of its claim's lease and each provider call is
// bounded, so no other texter takes a text being sent, and a texter that
// died has its texts sent again, with the same idempotency key, within
// Lease.
package texter

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"kiumtap/portal/sms"
	"kiumtap/portal/store"
)

// Lease is how long a texter's claim on a text holds. A texter starts a
// claimed text only in the first half of its lease (claimFresh) and gives
// each provider call at most sendTimeout.
const (
	Lease       = 30 * time.Second
	claimFresh  = Lease / 2
	sendTimeout = 10 * time.Second
)

// batch is the most texts claimed together. Each text's outcome is
// recorded as soon as its provider answers (texts that finish together
// share a commit), so a crash sends again at most the texts in flight:
// one per worker.
const batch = 32

// linger is how long the texter lets new texts gather before sending;
// burstYield how long it stands back after a burst of stored events
// (Options.Burst).
const (
	linger     = 10 * time.Millisecond
	burstYield = 100 * time.Millisecond
)

// Options configure a Texter. Zero values take the documented defaults.
type Options struct {
	// Queue is the text queue; Owner this texter's name in its claims,
	// unique among the texters sharing the queue (a restarted process is
	// another owner). Required.
	Queue store.TextQueue
	Owner string
	// Provider sends the texts, From the registered sender number.
	// Provider is required.
	Provider sms.Provider
	From     string
	// Workers is how many texts are handed to the provider at once;
	// default 4.
	Workers int
	// RetryMin and RetryMax bound the backoff of a text the provider did
	// not take (doubling per attempt); defaults 1 s and 5 min.
	RetryMin, RetryMax time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default none.
	Logger *slog.Logger
	// Names gives the centre's and the child's names for a text; nil,
	// or "" for either: its ID.
	Names func(centre, child string) (centreName, childName string)
	// Burst, if set, is when events were last stored in a burst (after an
	// outage, terminals pour in a backlog): storing and acknowledging go
	// first, the texter takes the gaps, a batch every 100 ms.
	Burst func() time.Time
	// Attempted, if set, is told of each provider call and its error.
	Attempted func(provider string, err error)
	// Sent, if set, is told of each text recorded as sent.
	Sent func(store.Job, sms.Text)
	// ReportEvery is how often the texter asks a provider how a text it
	// took by AlimTalk went (delivered, or fallen back to SMS/LMS);
	// default 15 s. ReportFor is how long it asks: then the text is
	// recorded sent, its channel unconfirmed; default 24 h.
	ReportEvery, ReportFor time.Duration
}

// Stats count the provider's answers.
type Stats struct {
	Sent, Failed, Retries int
	// By counts the texts recorded sent by channel (alimtalk, sms, lms);
	// FellBack those that fell back from AlimTalk to SMS/LMS.
	By       map[string]int
	FellBack int
}

// Texter sends texts; see the package comment.
type Texter struct {
	o    Options
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	stats  Stats
	failed []store.Job // the latest refused for good, newest last
}

// New checks the options and sets their defaults.
func New(o Options) (*Texter, error) {
	switch {
	case o.Queue == nil || o.Provider == nil:
		return nil, errors.New("texter: a Queue and a Provider are required")
	case o.Owner == "":
		return nil, errors.New("texter: an Owner is required (unique among the texters sharing the queue)")
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReportEvery <= 0 {
		o.ReportEvery = 15 * time.Second
	}
	if o.ReportFor <= 0 {
		o.ReportFor = 24 * time.Hour
	}
	return &Texter{o: o, log: o.Logger, kick: make(chan struct{}, 1)}, nil
}

// Kick tells the texter new texts may be due (they were just stored).
func (t *Texter) Kick() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Stats returns the counts so far.
func (t *Texter) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.By = maps.Clone(s.By)
	return s
}

// Failed returns the latest texts the provider refused for good (at most
// 20), newest last.
func (t *Texter) Failed() []store.Job {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.failed)
}

// Run sends due texts until stop ends; texts in flight then finish under
// hard. A text the provider took just before a crash is sent again after
// it, with the same idempotency key.
func (t *Texter) Run(stop, hard context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for stop.Err() == nil {
		if t.o.Burst != nil {
			if since := time.Since(t.o.Burst()); since < burstYield {
				select {
				case <-stop.Done():
					return
				case <-time.After(burstYield - since):
				}
			}
		}
		jobs, err := t.o.Queue.Claim(hard, t.o.Owner, t.o.Now(), batch, Lease)
		if err != nil {
			t.log.Error("texter: reading the text queue", "err", err)
		}
		t.SendClaimed(stop, hard, jobs)
		if len(jobs) == batch {
			continue
		}
		select {
		case <-stop.Done():
			return
		case <-t.kick:
			// Let a burst gather: texts claimed together go out together.
			select {
			case <-stop.Done():
				return
			case <-time.After(linger):
			}
		case <-tick.C:
		}
	}
}

// sent is one text's outcome, to record.
type sent struct {
	job      store.Job
	text     sms.Text
	recorded chan struct{} // closed once the outcome's commit is over
}

// SendClaimed sends texts this texter claimed, Workers at a time, and
// records each outcome as it comes: what Run does with each claim. Once
// stop ends, or the claim is too old to start a send that must end within
// its lease, no further text is started (their claims go back, for any
// texter); those started go on under hard, which ends only when a
// graceful stop has run out of time.
func (t *Texter) SendClaimed(stop, hard context.Context, jobs []store.Job) {
	if len(jobs) == 0 {
		return
	}
	results := make(chan sent, len(jobs))
	recorded := make(chan struct{})
	go func() { defer close(recorded); t.record(results) }()
	sem := make(chan struct{}, t.o.Workers)
	var wg sync.WaitGroup
	claimed := t.o.Now()
	for i, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-stop.Done():
		}
		if stop.Err() != nil || t.o.Now().Sub(claimed) > claimFresh {
			if err := t.o.Queue.Release(hard, t.o.Owner, jobs[i:]...); err != nil {
				t.log.Warn("texter: giving back texts not sent; their claims lapse", "err", err, "lapse_in", Lease)
			}
			if stop.Err() == nil {
				<-sem
			}
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(hard, sendTimeout)
			defer cancel()
			j, text := t.send(ctx, j)
			// The worker starts its next text only once this one's outcome
			// is recorded: a crash leaves at most one text per worker
			// handed to the provider and not recorded (sent again, with
			// its key), however slow the store's commits are.
			r := sent{j, text, make(chan struct{})}
			results <- r
			<-r.recorded
		}()
	}
	wg.Wait()
	close(results)
	<-recorded
}

// record commits outcomes as they come: all those waiting go in one
// transaction.
func (t *Texter) record(results <-chan sent) {
	for r := range results {
		batch := []sent{r}
	gather:
		for {
			select {
			case r, ok := <-results:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		t.finish(batch)
		for _, r := range batch {
			close(r.recorded)
		}
	}
}

// finish records a group of outcomes. A failed commit (a full disk, the
// database away) leaves the texts claimed: when the claims lapse they are
// sent again, with the same keys.
func (t *Texter) finish(batch []sent) {
	jobs := make([]store.Job, len(batch))
	for i, r := range batch {
		jobs[i] = r.job
	}
	if err := t.o.Queue.Finish(context.Background(), t.o.Owner, jobs...); err != nil {
		t.log.Error("texter: recording texts; they will be sent again with the same keys", "err", err)
		return
	}
	for _, r := range batch {
		j := r.job
		switch j.State {
		case store.JobSent:
			t.mu.Lock()
			if t.stats.By == nil {
				t.stats.By = map[string]int{}
			}
			t.stats.By[j.Channel]++
			if j.Fallback != "" && j.Channel != sms.ChannelAlimTalk {
				t.stats.FellBack++
			}
			t.mu.Unlock()
			if t.o.Sent != nil {
				t.o.Sent(j, r.text)
			}
		case store.JobFailed:
			t.log.Error("texter: text refused by the provider for good; staff must check the number", "job", j.ID, "child", j.Child, "reason", j.Reason)
			t.mu.Lock()
			t.failed = append(t.failed, j)
			if len(t.failed) > 20 {
				t.failed = t.failed[1:]
			}
			t.mu.Unlock()
		default:
			t.log.Warn("texter: text not sent; retrying", "job", j.ID, "attempt", j.Attempts, "next", j.NextAt, "err", j.Reason)
		}
	}
}

// send hands one text to the provider and returns it with its outcome.
func (t *Texter) send(ctx context.Context, j store.Job) (store.Job, sms.Text) {
	centreName, childName := j.Centre, j.Child
	if t.o.Names != nil {
		c, k := t.o.Names(j.Centre, j.Child)
		if c != "" {
			centreName = c
		}
		if k != "" {
			childName = k
		}
	}
	text := sms.Render(sms.Kind(j.Kind), centreName, childName, j.At)
	if j.Reporting {
		return t.report(ctx, j), text
	}
	r, err := t.o.Provider.Send(ctx, sms.Message{Key: j.ID, To: j.To, From: t.o.From, Text: text,
		Kind: sms.Kind(j.Kind), Vars: sms.Vars(centreName, childName, j.At)})
	if t.o.Attempted != nil {
		t.o.Attempted(t.o.Provider.Name(), err)
	}
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	_, reports := t.o.Provider.(sms.Reporter)
	switch {
	case err == nil && r.Channel == sms.ChannelAlimTalk && reports:
		// Taken by AlimTalk: how it went (delivered, or fallen back to
		// SMS/LMS at the provider) is asked later; never sent again.
		j.State, j.Receipt, j.SentAt, j.Reason, j.Channel = store.JobPending, r.ID, now, "", sms.ChannelAlimTalk
		j.Reporting, j.NextAt = true, now.Add(t.o.ReportEvery)
	case err == nil:
		if r.Channel == "" {
			r.Channel = sms.ChannelOf(text)
		}
		j.State, j.Receipt, j.SentAt, j.Reason, j.Channel = store.JobSent, r.ID, now, "", r.Channel
		t.stats.Sent++
	case sms.IsPermanent(err):
		j.State, j.Reason = store.JobFailed, err.Error()
		t.stats.Failed++
	default:
		wait := t.o.RetryMin << min(j.Attempts-1, 20)
		j.State, j.Reason, j.NextAt = store.JobPending, err.Error(), now.Add(min(wait, t.o.RetryMax))
		t.stats.Retries++
	}
	return j, text
}

// report asks the provider how a text it took by AlimTalk went, and
// records it: sent by the channel that delivered it (the fallback's
// reason with it), failed, or asked again later.
func (t *Texter) report(ctx context.Context, j store.Job) store.Job {
	d, err := t.o.Provider.(sms.Reporter).Report(ctx, sms.Receipt{ID: j.Receipt, Channel: j.Channel})
	now := t.o.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil && d.Final && d.Failed != "":
		j.State, j.Reason, j.Reporting = store.JobFailed, d.Failed, false
		t.stats.Failed++
	case err == nil && d.Final:
		j.State, j.Channel, j.Fallback, j.Reporting = store.JobSent, d.Channel, d.Fallback, false
		t.stats.Sent++
	case now.Sub(j.SentAt) >= t.o.ReportFor:
		j.State, j.Fallback, j.Reporting = store.JobSent, "전달 결과를 확인하지 못함", false
		t.stats.Sent++
	default:
		if err != nil {
			j.Reason = "looking up the delivery: " + err.Error()
		}
		j.NextAt = now.Add(t.o.ReportEvery)
	}
	return j
}
