package e2e

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/devices"
	"kiumtap/portal/sms/smstest"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// bridgeWorkers is kiumbridge's default number of texts in flight.
const bridgeWorkers = 4

// recordedSent reads which texts a stopped bridge's store records as sent.
func recordedSent(t *testing.T, path string) map[string]bool {
	t.Helper()
	st, err := boltstore.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sent := map[string]bool{}
	st.Jobs(func(j store.Job) bool {
		if j.State == store.JobSent {
			sent[j.ID] = true
		}
		return true
	})
	return sent
}

// Issue 11: kiumbridge, as a process, stopped 20 times with SIGKILL and
// restarted 20 times with SIGTERM, each right after the provider answered
// a text, while three terminals on the emulated reader take 300 taps
// through a real Mosquitto (the terminals' defaults: 10 s resend, 500 ms
// to 60 s backoff). At the end: every tap's event is at the portal, once
// and in order; every tap is texted; no terminal is stalled (outboxes
// empty within 10 s of the last restart); a text reaches the provider
// twice only if it was in flight at a SIGKILL (sent, its outcome not yet
// recorded: at most one per worker), with the same idempotency key, and
// never because of a SIGTERM.
func TestBridgeRestartsAimedAtTexts(t *testing.T) {
	const taps, restarts = 300, 40
	c, src := busyCentre(12)
	mq := startBroker(t, []devices.Device{{Centre: c.id, ID: "door0"}, {Centre: c.id, ID: "door1"}, {Centre: c.id, ID: "door2"}})
	hook := smstest.NewWebhook(t, hookSecret)
	srcDir := t.TempDir()
	writeSource(t, srcDir, src)
	kb := newBridgeProc(t, mq, hook, srcDir)
	kb.start()
	var doors []*door
	for i := range 3 {
		doors = append(doors, startDoor(t, mq, c, fmt.Sprintf("door%d", i), tenAM(), func(o *uplink.Options) {
			o.ResendAfter, o.BackoffMin, o.BackoffMax = 0, 0, 0 // the defaults
		}))
	}
	waitRosters(t, doors...)

	// The kills: half of each, in a seeded order. A kill is armed, and the
	// provider's next answer fires it from the request's goroutine.
	rng := rand.New(rand.NewPCG(11, 0))
	sigs := make([]syscall.Signal, restarts)
	for i := range sigs {
		sigs[i] = map[bool]syscall.Signal{true: syscall.SIGKILL, false: syscall.SIGTERM}[i%2 == 0]
	}
	rng.Shuffle(len(sigs), func(i, j int) { sigs[i], sigs[j] = sigs[j], sigs[i] })
	var armed atomic.Int32 // the signal to send on the next delivery; 0: none
	fired := make(chan time.Time, 1)
	hook.After(func(smstest.Delivery) {
		if sig := armed.Swap(0); sig != 0 {
			kb.signal(syscall.Signal(sig))
			fired <- time.Now()
		}
	})

	// The taps: each door takes a third, the children in turn (a child's
	// taps at a door 2 minutes apart: arrivals and departures, no
	// duplicates). Tap i waits for restart i*restarts/taps, and kill k for
	// tap k*taps/restarts + 4, so the kills fall all along the stream.
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	done, tapped, failed := 0, 0, false
	children := slices.Sorted(maps.Keys(c.cards))
	children = slices.DeleteFunc(children, func(k string) bool { return k == "staff" })
	tapErrs := make(chan error, 3)
	var tappers sync.WaitGroup
	for k, d := range doors {
		tappers.Add(1)
		go func() {
			defer tappers.Done()
			for i := k; i < taps; i += len(doors) {
				mu.Lock()
				for done < i*restarts/taps && !failed {
					cond.Wait()
				}
				stop := failed
				mu.Unlock()
				if stop {
					return
				}
				f, err := d.tryTap(c.cards[children[(i/len(doors))%len(children)]])
				if err == nil && f.Pattern != firmware.PatternArrival && f.Pattern != firmware.PatternDeparture {
					err = fmt.Errorf("%s tap %d: %+v, want an arrival or a departure", d.id, i, f)
				}
				mu.Lock()
				if err != nil {
					failed = true
				}
				tapped++
				cond.Broadcast()
				mu.Unlock()
				if err != nil {
					tapErrs <- err
					return
				}
			}
		}()
	}
	abort := func(format string, a ...any) {
		mu.Lock()
		failed = true
		cond.Broadcast()
		mu.Unlock()
		tappers.Wait()
		t.Fatalf(format, a...)
	}

	// inDoubt: texts the provider took from the instance a SIGKILL stopped
	// and that it had not recorded, by how many kills. (One left in doubt
	// may still be at the next stop, not sent again yet: only texts the
	// instance just stopped delivered count against it.)
	inDoubt := map[string]int{}
	var stopTimes []time.Duration
	started := time.Now()
	for k, sig := range sigs {
		mu.Lock()
		for tapped < k*taps/restarts+4 && !failed {
			cond.Wait()
		}
		mu.Unlock()
		armed.Store(int32(sig))
		select {
		case <-fired:
		case err := <-tapErrs:
			abort("%v", err)
		case <-time.After(60 * time.Second):
			abort("restart %d: no text went out in 60 s to aim the %v at", k, sig)
		}
		signalled := time.Now()
		code := kb.wait()
		sent := recordedSent(t, kb.store)
		var doubt []string
		for _, d := range hook.Deliveries() {
			if d.At.After(started) && !sent[d.Key] && !slices.Contains(doubt, d.Key) {
				doubt = append(doubt, d.Key)
			}
		}
		switch sig {
		case syscall.SIGTERM:
			stopTimes = append(stopTimes, time.Since(signalled))
			if code != 0 {
				abort("restart %d: kiumbridge exited %d on SIGTERM, want 0", k, code)
			}
			if len(doubt) > 0 {
				abort("restart %d: after a SIGTERM, texts the provider took are not recorded as sent: %v", k, doubt)
			}
		case syscall.SIGKILL:
			if len(doubt) > bridgeWorkers {
				abort("restart %d: %d texts in doubt after a SIGKILL, more than one per worker (%d): %v", k, len(doubt), bridgeWorkers, doubt)
			}
			for _, key := range doubt {
				inDoubt[key]++
			}
		}
		started = time.Now()
		kb.start()
		mu.Lock()
		done++
		cond.Broadcast()
		mu.Unlock()
	}
	lastRestart := time.Now()
	tappers.Wait()
	select {
	case err := <-tapErrs:
		t.Fatal(err)
	default:
	}
	lastTap := time.Now()
	wait.For(t, 10*time.Second, "every terminal's outbox empty within 10 s of the last restart and the last tap", func() bool {
		for _, d := range doors {
			if f, _, _ := d.st.Waiting(); f != 0 {
				return false
			}
		}
		return true
	})
	drained, tapsAfter := time.Since(lastRestart), lastTap.Sub(lastRestart)
	wait.For(t, 30*time.Second, fmt.Sprintf("%d texts at the provider", taps), func() bool { return hook.Unique() >= taps })
	kb.signal(syscall.SIGTERM)
	if code := kb.wait(); code != 0 {
		t.Fatalf("the last SIGTERM: exit %d", code)
	}

	// Every tap's event at the portal, once and in order per terminal.
	st, err := boltstore.OpenReadOnly(kb.store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	last := map[string]uint64{}
	want := map[string]bool{} // the texts the taps call for: device/log/seq/guardian
	err = st.Events(c.id, func(e protocol.Event) bool {
		if k := e.Device + "/" + e.Log; e.Seq != last[k]+1 {
			t.Errorf("%s: event %d stored after %d", e.Device, e.Seq, last[k])
		}
		last[e.Device+"/"+e.Log] = e.Seq
		want[fmt.Sprintf("%s/%s/%d/0", e.Device, e.Log, e.Seq)] = true
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doors {
		if n := last[d.id+"/"+d.st.LogID()]; n != uint64(taps/len(doors)) {
			t.Errorf("%s: the portal has %d events, want %d", d.id, n, taps/len(doors))
		}
	}
	// Every tap texted; repeats only of texts in flight at a SIGKILL.
	keys := hook.Keys()
	repeats := 0
	for key, n := range keys {
		if !want[key] {
			t.Errorf("a text no tap called for: %s", key)
		}
		if n > 1 {
			repeats += n - 1
			if n-1 > inDoubt[key] {
				t.Errorf("%s sent %d times, but in flight at only %d SIGKILLs", key, n, inDoubt[key])
			}
		}
	}
	for key := range want {
		if keys[key] == 0 {
			t.Errorf("tap %s was not texted", key)
		}
	}
	slices.Sort(stopTimes)
	t.Logf("%d taps, %d texts (%d repeats, all in flight at a SIGKILL: %d texts were in doubt over 20 kills), outboxes empty %v after the last restart (the last tap %v after it); SIGTERM to exit: median %v, max %v",
		taps, len(keys), repeats, len(inDoubt), drained.Round(time.Millisecond), tapsAfter.Round(time.Millisecond),
		stopTimes[len(stopTimes)/2].Round(time.Millisecond), stopTimes[len(stopTimes)-1].Round(time.Millisecond))
	if !strings.Contains(readFile(t, kb.log), "bridge: stopped") {
		t.Error("kiumbridge's log never says it stopped gracefully")
	}
}

func readFile(t *testing.T, path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
