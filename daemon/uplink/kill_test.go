package uplink

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/protocol"
)

const childEnv = "KIUMTAP_UPLINK_CHILD" // store path; broker URL in KIUMTAP_UPLINK_BROKER

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		uplinkChild(path, os.Getenv("KIUMTAP_UPLINK_BROKER"), os.Getenv("KIUMTAP_UPLINK_TAPS"))
		return
	}
	os.Exit(m.Run())
}

// uplinkChild is a terminal: it taps until the log holds n events, sending
// them all along, and runs until killed.
func uplinkChild(path, broker, taps string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "child:", err); os.Exit(3) }
	n, _ := strconv.ParseUint(taps, 10, 64)
	st, err := store.Open(store.Options{Path: path, DeviceID: device, LockTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	clk := &clock{synced: true, start: time.Now()}
	up, err := New(Options{Broker: broker, Centre: centre, Device: device, Password: termPass, PortalKey: portalPub(),
		Store: st, Clock: clk, ResendAfter: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	go up.Run(context.Background())
	_, last, err := st.Waiting()
	if err != nil {
		fail(err)
	}
	for i := last; i < n; i++ {
		if _, _, err := st.Tap(store.TapRequest{At: clk.Stamp(), CardKey: firmware.CardKey(key, []byte{byte(i % 3)})}); err != nil {
			fail(err)
		}
		up.Notify()
		time.Sleep(200 * time.Microsecond)
	}
	select {}
}

// A terminal killed with SIGKILL mid-stream sends again, after restart,
// exactly what was not acknowledged: from its first unacknowledged event
// on, nothing before it.
func TestKilledMidStream(t *testing.T) {
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	var mu sync.Mutex
	var arrivals []uint64
	p.mu.Lock()
	p.onEvent = func(e *protocol.Event) { mu.Lock(); arrivals = append(arrivals, e.Seq); mu.Unlock() }
	p.mu.Unlock()

	path := filepath.Join(t.TempDir(), "k.db")
	st, err := store.Open(store.Options{Path: path, DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	st.ApplyRoster(sampleRoster(1), time.Now())
	logID := st.LogID()
	st.Close()
	exe, _ := os.Executable()
	const n = 3000
	start := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+path, "KIUMTAP_UPLINK_BROKER="+b.URL(), "KIUMTAP_UPLINK_TAPS="+strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	stored := func() int { return p.in.Stats().Stored }
	for round, at := range []int{400, 1500} {
		cmd := start()
		wait.For(t, 30*time.Second, "events stored by the portal", func() bool { return stored() >= at })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		p.waitQuiet(t)
		st, err := store.Open(store.Options{Path: path, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		first, last, _ := st.Waiting()
		st.Close()
		mu.Lock()
		arrivals = nil
		mu.Unlock()
		cmd = start()
		wait.For(t, 30*time.Second, "the re-sent events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrivals) > 0 && stored() >= int(last)
		})
		mu.Lock()
		got := arrivals[0]
		for _, a := range arrivals {
			if a < first {
				t.Fatalf("round %d: event %d re-sent, but it was acknowledged (first unacknowledged %d)", round, a, first)
			}
		}
		mu.Unlock()
		if first != 0 && got != first {
			t.Fatalf("round %d: re-sending began at %d, the first unacknowledged was %d", round, got, first)
		}
		t.Logf("round %d: killed with events %d..%d unacknowledged; re-sent from %d", round, first, last, got)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cmd := start()
	wait.For(t, 60*time.Second, "every event stored", func() bool { return stored() == n })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	checkStream(t, p, logID, 1, n)
}
