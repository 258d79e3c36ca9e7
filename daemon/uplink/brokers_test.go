package uplink

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/internal/wait"
	"kiumtap/protocol"
)

// onBrokers makes a terminal's options name several brokers.
func onBrokers(urls ...string) func(*Options) {
	return func(o *Options) { o.Broker, o.Brokers = "", urls }
}

// waitOn waits until the terminal is connected to broker.
func (tm *terminal) waitOn(t testing.TB, broker string) {
	t.Helper()
	wait.For(t, 10*time.Second, "connected to "+broker, func() bool {
		l := tm.up.Link()
		return l.Connected && l.Broker == broker
	})
}

// waitRejected waits for a refusal of a message from the portal whose
// reason holds want.
func (tm *terminal) waitRejected(t testing.TB, want string) {
	t.Helper()
	wait.For(t, 10*time.Second, "a refusal for "+want, func() bool {
		for _, r := range tm.up.Stats().Rejections {
			if strings.Contains(r.Reason, want) {
				return true
			}
		}
		return false
	})
}

// Two brokers, the portal on both: the terminal fails over when its
// broker stops with events in flight and sends the rest through the
// other, from its first unacknowledged event; it fails back when the
// first returns and the second stops; the portal stores every event once
// and in order, some having come through each broker. The link names the
// broker in use, commands reach the terminal where it is, and each broker
// keeps the status the terminal last left there: the one it left (its
// will) older than those where it is.
func TestFailover(t *testing.T) {
	a, b := startBroker(t, ""), startBroker(t, "")
	p := newPortal(t, a.URL(), b.URL())
	var mu sync.Mutex
	var arrivals []uint64 // sequences arriving, in order
	p.mu.Lock()
	p.onEvent = func(e *protocol.Event) { mu.Lock(); arrivals = append(arrivals, e.Seq); mu.Unlock() }
	p.mu.Unlock()
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), "", onBrokers(a.URL(), b.URL()))
	tm.run()
	tm.waitOn(t, a.URL())
	for range 30 {
		tm.tap(t, 1)
	}
	wait.For(t, 10*time.Second, "the first events through a", func() bool { f, _ := tm.waiting(t); return f == 0 })

	// Events in flight as a stops: those it did not take go through b.
	for range 30 {
		tm.tap(t, 1)
	}
	acked, _ := tm.waiting(t)
	a.Stop()
	mu.Lock()
	arrivals = nil
	mu.Unlock()
	tm.waitOn(t, b.URL())
	for range 30 {
		tm.tap(t, 1)
	}
	wait.For(t, 10*time.Second, "the rest through b", func() bool { f, _ := tm.waiting(t); return f == 0 })
	mu.Lock()
	if acked != 0 && len(arrivals) > 0 && arrivals[0] < acked {
		t.Errorf("after the failover event %d was sent again, but it was acknowledged before a stopped (first unacknowledged %d)", arrivals[0], acked)
	}
	mu.Unlock()
	if s := tm.up.Stats(); s.Failovers != 1 {
		t.Errorf("%d failovers, want 1", s.Failovers)
	}

	// Commands come where the terminal is: b only.
	topics := protocol.Topics{Centre: centre, Device: device}
	raw, _ := json.Marshal(protocol.Command{V: 1, ID: "on-b", Centre: centre, Device: device, Name: protocol.CmdPing, Expires: time.Now().Add(time.Minute)})
	p.publishOn(b.URL(), topics.Cmd(), false, protocol.Sign(portalPriv, raw))
	wait.For(t, 10*time.Second, "the reply to a command on b", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.replies) == 1 && p.replies[0].ID == "on-b" && p.replies[0].OK
	})

	// a returns holding the terminal's will (a stopping Mosquitto sends
	// its clients' wills), stamped before everything the terminal said on
	// b: the newest status is b's, online.
	a.Resume()
	wait.For(t, 10*time.Second, "the statuses of both brokers", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		sa, sb := p.statusOn[a.URL()], p.statusOn[b.URL()]
		return sa.State == "offline" && sb.State == "online"
	})
	p.mu.Lock()
	sa, sb := p.statusOn[a.URL()], p.statusOn[b.URL()]
	p.mu.Unlock()
	if sa.Time.IsZero() || !sa.Time.Before(sb.Time) || sa.Instance != sb.Instance {
		t.Errorf("a's will %+v must be of the same instance as, and older than, b's status %+v", sa, sb)
	}

	// Back to a once b stops, not before.
	if l := tm.up.Link(); l.Broker != b.URL() {
		t.Fatalf("the terminal went back to a while b served: %+v", l)
	}
	b.Stop()
	tm.waitOn(t, a.URL())
	for range 30 {
		tm.tap(t, 1)
	}
	wait.For(t, 10*time.Second, "the last events through a", func() bool { f, _ := tm.waiting(t); return f == 0 })
	checkStream(t, p, tm.st.LogID(), 1, 120)
	p.mu.Lock()
	t.Logf("event messages through a: %d, through b: %d; the portal: %+v", p.receivedOn[a.URL()], p.receivedOn[b.URL()], p.in.Stats())
	if p.receivedOn[a.URL()] == 0 || p.receivedOn[b.URL()] == 0 {
		t.Errorf("events came through one broker only: %v", p.receivedOn)
	}
	p.mu.Unlock()
	if s := tm.up.Stats(); s.Failovers != 2 {
		t.Errorf("%d failovers, want 2", s.Failovers)
	}
}

// A newer roster retained on one broker only: after failing over to a
// broker whose retained snapshot is older, the terminal refuses it and
// keeps its roster, stays subscribed, and takes the newer one the portal
// publishes there; failing back to the first, whose snapshot is now the
// older, it refuses that one too.
func TestFailoverKeepsTheNewerRoster(t *testing.T) {
	a, b := startBroker(t, ""), startBroker(t, "")
	p := newPortal(t, a.URL(), b.URL())
	topics := protocol.Topics{Centre: centre, Device: device}
	p.publishOn(a.URL(), topics.Roster(), true, snapshotMsg(sampleRoster(5)))
	p.publishOn(b.URL(), topics.Roster(), true, snapshotMsg(sampleRoster(3))) // b missed 4 and 5
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), "", onBrokers(a.URL(), b.URL()))
	rev := func() uint64 { r, _, _ := tm.st.Roster(); return r.Revision }
	tm.run()
	wait.For(t, 10*time.Second, "revision 5 from a", func() bool { return rev() == 5 })

	a.Stop()
	tm.waitOn(t, b.URL())
	tm.waitRejected(t, "revision 3 is older than the current 5")
	if got := rev(); got != 5 {
		t.Fatalf("after failing over to b the roster is revision %d, want 5", got)
	}
	p.publishOn(b.URL(), topics.Roster(), true, snapshotMsg(sampleRoster(6)))
	wait.For(t, 10*time.Second, "revision 6 from b", func() bool { return rev() == 6 })

	a.Resume()
	b.Stop()
	tm.waitOn(t, a.URL())
	tm.waitRejected(t, "revision 5 is older than the current 6")
	if got := rev(); got != 6 {
		t.Fatalf("after failing back to a the roster is revision %d, want 6", got)
	}
}

// With every broker down and a long backoff, the probe finds the broker
// that comes back, whichever it is, and the terminal connects to it at
// once; the link says meanwhile which broker failed and why, naming
// mqtt.brokers.
func TestProbeFindsTheBrokerThatAnswers(t *testing.T) {
	a, b := startBroker(t, ""), startBroker(t, "")
	a.Stop()
	b.Stop()
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), "", func(o *Options) {
		onBrokers(a.URL(), b.URL())(o)
		o.BackoffMin, o.BackoffMax = time.Minute, time.Minute // only a probe brings it back in time
		o.ProbeEvery, o.ReconnectSpread = 50*time.Millisecond, 50*time.Millisecond
	})
	tm.run()
	wait.For(t, 10*time.Second, "the link down, saying why", func() bool {
		l := tm.up.Link()
		return !l.Connected && l.Broker == a.URL() && strings.Contains(l.LastError, "no broker answers at mqtt.brokers")
	})
	b.Resume() // the second listed, not the first
	tm.waitOn(t, b.URL())
	if s := tm.up.Stats(); s.Probed != 1 {
		t.Errorf("stats %+v: want one wait cut short by the probe", s)
	}
	b.Stop()
	a.Resume()
	tm.waitOn(t, a.URL())
	if s := tm.up.Stats(); s.Probed != 2 || s.Failovers != 1 {
		t.Errorf("stats %+v: want two waits cut short by the probe, one failover", s)
	}
}

// Of the brokers that answer a probe, the one last used wins, then those
// listed after it; none answering is -1.
func TestProbePrefersTheLastUsed(t *testing.T) {
	var addrs []string
	var open []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		addrs = append(addrs, l.Addr().String())
		open = append(open, l)
	}
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "k.db"), DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := Options{Centre: centre, Device: device, PortalKey: portalPub(), Store: st, Clock: &clock{synced: true}}
	for _, a := range addrs {
		o.Brokers = append(o.Brokers, "tcp://"+a)
	}
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got := u.probe(ctx, 1); got != 1 {
		t.Errorf("all answer, 1 last used: got %d", got)
	}
	open[1].Close() // refuses from now on
	if got := u.probe(ctx, 1); got != 2 {
		t.Errorf("0 and 2 answer, 1 last used: got %d, want 2 (listed after 1)", got)
	}
	if got := u.probe(ctx, 2); got != 2 {
		t.Errorf("0 and 2 answer, 2 last used: got %d", got)
	}
	open[0].Close()
	open[2].Close()
	if got := u.probe(ctx, 0); got != -1 {
		t.Errorf("none answers: got %d", got)
	}

	o.Broker = "tcp://127.0.0.1:1"
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "both Broker and Brokers") {
		t.Errorf("both a broker and a list: %v", err)
	}
}
