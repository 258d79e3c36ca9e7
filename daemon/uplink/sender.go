package uplink

import (
	"errors"
	"fmt"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/protocol"
)

// Outbox is what the sender needs of the store: the events waiting, and
// deleting the prefix the portal acknowledged.
type Outbox interface {
	// Waiting returns the first event waiting (0: none) and the last
	// sequence given out.
	Waiting() (first, last uint64, err error)
	// Events calls fn for each event from the sequence from on, in order,
	// until fn returns false.
	Events(from uint64, fn func(store.Event) bool) error
	// Ack deletes the events up to through.
	Ack(through uint64) (int, error)
}

var _ Outbox = (*store.Store)(nil)

// errTooBig: a batch makes a message over protocol.MaxEvents.
var errTooBig = errors.New("events message over the size limit")

// Holds after a refusal: doubled per refusal from refuseHoldMin to
// refuseHoldMax.
const (
	refuseHoldMin = time.Second
	refuseHoldMax = 5 * time.Minute
)

// minWindow is the least window going back leaves.
const minWindow = 64

// sender is the terminal's half of the acknowledgement protocol
// (docs/protocol.md, "Ordering, acknowledgement and idempotency") apart
// from MQTT and the clock: which events go out next, always in batches of
// consecutive sequences, what an ack lets the terminal delete (only a
// prefix of its outbox), and what a loss, a refusal or a portal coming
// back changes. One goroutine (the session's) uses it; the model test
// drives it against the portal's ingest through every interleaving of
// loss, duplicates, refusals and restarts.
type sender struct {
	out         Outbox
	window      int // most events in flight (Options.Window)
	batch       int // most events in a message (Options.Batch)
	resendAfter time.Duration

	next  uint64 // next sequence to send
	first uint64 // first unacknowledged; 0 when the outbox is empty
	// cwnd is the window in use: halved when events were lost on the way
	// (a broker's queue overflowing), grown by a batch per ack up to
	// window. recover is where the last going back started: until acks
	// pass it, news of a gap is of the old sending.
	cwnd         int
	recover      uint64
	lastProgress time.Time

	// After a refusal batches shrink (size, down to one event, which
	// isolates an event the portal cannot take) and nothing goes out
	// until holdUntil, the hold doubling per refusal: a refused message is
	// never sent again unchanged at once, nor forever at the same pace.
	// Progress ends it.
	size      int
	hold      time.Duration
	holdUntil time.Time
	refused   *protocol.Refusal
}

func newSender(out Outbox, window, batch int, resendAfter time.Duration) *sender {
	return &sender{out: out, window: window, batch: batch, resendAfter: resendAfter, cwnd: window, size: batch}
}

// restart sends again from the first unacknowledged event, as on a new
// connection. A refusal's hold and batch size stay: the portal's mind
// does not change with the connection.
func (s *sender) restart(now time.Time) error {
	s.cwnd, s.recover = s.window, 0
	first, last, err := s.out.Waiting()
	if err != nil {
		return fmt.Errorf("reading the outbox: %w", err)
	}
	s.first, s.next = first, first
	if s.next == 0 {
		s.next = last + 1
	}
	s.lastProgress = now
	return nil
}

// fill hands send batches of consecutive events while the window has
// room. send returns errTooBig for a batch that makes too big a message:
// the batch is halved and tried again.
func (s *sender) fill(now time.Time, send func([]store.Event) error) error {
	for {
		if now.Before(s.holdUntil) {
			return nil
		}
		if s.first == 0 {
			// Idle until now: is there something new?
			first, _, err := s.out.Waiting()
			if err != nil {
				return fmt.Errorf("reading the outbox: %w", err)
			}
			if first == 0 {
				return nil
			}
			s.first, s.lastProgress = first, now
			s.next = max(s.next, first)
		}
		room := s.cwnd - int(s.next-s.first)
		if room <= 0 {
			return nil
		}
		n := min(room, s.size)
		var batch []store.Event
		if err := s.out.Events(s.next, func(ev store.Event) bool {
			if len(batch) > 0 && ev.Seq != batch[len(batch)-1].Seq+1 {
				return false // a message carries consecutive events only
			}
			batch = append(batch, ev)
			return len(batch) < n
		}); err != nil {
			return fmt.Errorf("reading the outbox: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		err := send(batch)
		if errors.Is(err, errTooBig) && len(batch) > 1 {
			s.size = max(1, len(batch)/2)
			continue
		}
		if err != nil {
			return err
		}
		s.next = batch[len(batch)-1].Seq + 1
	}
}

// inFlight reports whether events were sent and not acknowledged.
func (s *sender) inFlight() bool { return s.first != 0 && s.next > s.first }

// goBack sends again from the first unacknowledged event; lost, when the
// events were lost on the way, halves the window.
func (s *sender) goBack(now time.Time, lost bool) {
	s.recover = s.next
	s.next = s.first
	if lost {
		s.cwnd = max(s.cwnd/2, minWindow)
	}
	s.lastProgress = now
}

// timedOut goes back when events are in flight and no ack came for
// resendAfter (go-back-N), and reports whether it did.
func (s *sender) timedOut(now time.Time) bool {
	if !s.inFlight() || now.Sub(s.lastProgress) <= s.resendAfter {
		return false
	}
	s.goBack(now, true)
	return true
}

// portalBack is a bridge instance come online: what was sent while none
// listened was dropped, so go back at once, and end a refusal's hold (the
// new instance may take what the last refused). It reports whether
// anything will be sent again.
func (s *sender) portalBack(now time.Time) bool {
	s.holdUntil = time.Time{}
	if !s.inFlight() {
		return false
	}
	s.goBack(now, false)
	return true
}

// ackResult is what an ack did.
type ackResult struct {
	deleted int
	// refused: the ack's refusal was taken (sending holds, batches
	// shrink); cleared: events were acknowledged after a refusal, which
	// is over.
	refused, cleared bool
	// resend: the portal dropped events beyond a gap; sending again.
	resend bool
	// lost: the portal asks for events this terminal deleted when the
	// portal acknowledged them (its store lost them): it cannot send them.
	lost error
}

// take applies an ack: its refusal, if any; then it deletes the prefix of
// the outbox the ack covers (protocol.Ack's Through), and goes back when
// the portal says it dropped events beyond a gap.
func (s *sender) take(a *protocol.Ack, now time.Time) (ackResult, error) {
	var r ackResult
	var err error
	if a.Refused != nil {
		if r.refused, err = s.refusal(a.Refused, now); err != nil {
			return r, err
		}
	}
	if len(a.Ranges) == 0 && a.Next == 0 {
		return r, nil
	}
	first, _, err := s.out.Waiting()
	if err != nil {
		return r, fmt.Errorf("reading the outbox: %w", err)
	}
	if through := a.Through(first); through > 0 {
		if r.deleted, err = s.out.Ack(through); err != nil {
			return r, err
		}
	}
	if r.deleted > 0 {
		s.lastProgress = now
		s.cwnd = min(s.cwnd+max(s.batch, minWindow/2), s.window)
		s.size = min(2*s.size, s.batch)
		r.cleared = s.refused != nil
		s.refused, s.hold, s.holdUntil = nil, 0, time.Time{}
	}
	if s.first, _, err = s.out.Waiting(); err != nil {
		return r, fmt.Errorf("reading the outbox: %w", err)
	}
	if s.first != 0 && s.next < s.first {
		s.next = s.first
	}
	if a.Next != 0 && s.first != 0 && a.Next < s.first {
		r.lost = fmt.Errorf("the portal expects event %d, but this terminal holds events from %d on: events %d..%d were acknowledged and deleted here; the portal must record the gap (its store lost them)", a.Next, s.first, a.Next, s.first-1)
	}
	// Asked for the first unacknowledged event (the portal dropped what
	// followed a gap), or for one deleted here: send again from the
	// first, once per going back. In the second case the portal learns
	// from it which event this terminal holds first, which the gap it
	// must record ends before (an earlier message may not have reached
	// it).
	inRecovery := s.recover != 0 && s.first != 0 && s.first <= s.recover
	if a.Next != 0 && a.Next <= s.first && s.inFlight() && !inRecovery {
		s.goBack(now, a.Next == s.first)
		r.resend = true
	}
	return r, nil
}

// refusal takes the portal's word that it refused a message whole. It
// reports whether the refusal was taken: one of a message already
// acknowledged, or one that arrives while sending holds after an earlier
// refusal (a message of the same sending), changes nothing.
func (s *sender) refusal(ref *protocol.Refusal, now time.Time) (bool, error) {
	first, _, err := s.out.Waiting()
	if err != nil {
		return false, fmt.Errorf("reading the outbox: %w", err)
	}
	s.first = first
	if first == 0 || (ref.Seq != 0 && ref.Seq < first) || now.Before(s.holdUntil) {
		return false, nil
	}
	cur := protocol.Refusal{Seq: ref.Seq, Reason: ref.Reason, Since: now, Count: 1}
	if cur.Seq == 0 {
		cur.Seq = first
	}
	if s.refused != nil && s.refused.Seq == cur.Seq {
		cur.Since, cur.Count = s.refused.Since, s.refused.Count+1
	}
	s.refused = &cur
	s.size = max(1, s.size/2)
	s.hold = min(max(2*s.hold, refuseHoldMin), refuseHoldMax)
	s.holdUntil = now.Add(s.hold)
	// Nothing after the refused message was stored either (the portal
	// stores in order): send again from the first, after the hold.
	s.goBack(now, false)
	return true, nil
}
