package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/internal/wait"
)

// leftovers are the stacks of goroutines running kiumtap code that the
// test did not start itself: after run returns there must be none.
func leftovers() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "kiumtap/") && !strings.Contains(g, "kiumtapd.Test") && !strings.Contains(g, "kiumtapd.tapUntil") {
			out = append(out, g)
		}
	}
	return out
}

// tapUntil taps card over the socket until stop is closed, counting the
// taps that brought a screen.
func tapUntil(c *http.Client, card string, stop <-chan struct{}, shown *atomic.Int64) {
	body, _ := json.Marshal(localapi.EmuRequest{Card: card, Wait: localapi.Duration(2 * time.Second)})
	for {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := c.Post("http://kiumtapd/emu/tap", "application/json", bytes.NewReader(body))
		if err != nil {
			continue // stopping: the socket is going or gone
		}
		var res localapi.EmuResult
		if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&res) == nil && res.Screen != nil {
			shown.Add(1)
		}
		resp.Body.Close()
	}
}

// kiumtapd stopped (SIGTERM: its context ends) while cards are tapped
// without pause returns at once, leaves no goroutine behind, closes its
// store cleanly (nothing left for the next start to replay, bbolt
// consistent), and every tap that got feedback is in the store. Five
// rounds on one store.
func TestShutdownUnderLoad(t *testing.T) {
	in := newInstall(t, t.TempDir(), "1ms")
	defer func() {
		if t.Failed() {
			t.Logf("goroutines left:\n%s", strings.Join(leftovers(), "\n\n"))
		}
	}()
	before := runtime.NumGoroutine()
	stored := 0
	for round := 1; round <= 5; round++ {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"-config", in.config}, &out, &errOut) }()
		client := localapi.Client(in.socket)
		wait.For(t, 10*time.Second, "kiumtapd's socket", func() bool {
			resp, err := client.Get("http://kiumtapd/status")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		var shown atomic.Int64
		stop := make(chan struct{})
		var tappers sync.WaitGroup
		for _, c := range []string{"minjun", "jiho", "haeun", "046A2B5C1D8041"} {
			tappers.Go(func() { tapUntil(client, c, stop, &shown) })
		}
		wait.For(t, 30*time.Second, "taps with feedback", func() bool { return shown.Load() >= 20 })

		cancel() // SIGTERM
		stopped := time.Now()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: run did not return within 10 s of SIGTERM", round)
		}
		took := time.Since(stopped)
		close(stop)
		tappers.Wait()
		client.CloseIdleConnections()
		if err != nil {
			t.Fatalf("round %d: run = %v\n%s", round, err, errOut.String())
		}
		if took > 3*time.Second {
			t.Errorf("round %d: run took %v to stop", round, took)
		}
		wait.For(t, 2*time.Second, "every goroutine of kiumtapd to end", func() bool { return len(leftovers()) == 0 })

		screens := strings.Count(out.String(), "    screen: ")
		recorded := strings.Count(out.String(), "    event #")
		if strings.Contains(out.String(), "[error]") || strings.Contains(errOut.String(), "tap not recorded") {
			t.Errorf("round %d: a tap was refused while stopping:\n%s\n%s", round, out.String(), errOut.String())
		}
		st, err := store.Open(store.Options{Path: in.store, DeviceID: "mangwon1-door"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		st.Events(0, func(store.Event) bool { n++; return true })
		replayed, checkErr := st.Replayed(), st.Check()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: stopped in %v; %d taps answered over the socket, %d screens, %d events recorded, %d stored in all", round, took.Round(time.Millisecond), shown.Load(), screens, recorded, n)
		switch {
		case replayed != 0:
			t.Errorf("round %d: the store was not closed cleanly: %d taps replayed from the journal", round, replayed)
		case checkErr != nil:
			t.Errorf("round %d: bbolt check: %v", round, checkErr)
		case n-stored != recorded || recorded != screens || int64(screens) < shown.Load():
			t.Errorf("round %d: %d screens shown, %d taps recorded, %d answered; %d new events in the store", round, screens, recorded, shown.Load(), n-stored)
		}
		stored = n
	}
	wait.For(t, 5*time.Second, "the goroutines of before", func() bool { return runtime.NumGoroutine() <= before })
}

// A part that fails stops the whole daemon with an error naming it and
// what to do, and the store is closed when run returns.
func TestFailingPartStopsTheDaemon(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, in *install) (undo func()) // breaks the local socket
		want  []string
	}{
		{"socket under a file", func(t *testing.T, in *install) func() {
			file := filepath.Join(filepath.Dir(in.socket), "not-a-dir")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			in.socket = filepath.Join(file, "kiumtapd.sock")
			return func() {}
		}, []string{"the local API stopped", "set socket in the configuration"}},
		{"socket of another kiumtapd", func(t *testing.T, in *install) func() {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- localapi.Serve(ctx, in.socket, http.NotFoundHandler()) }()
			undo := sync.OnceFunc(func() { cancel(); <-done })
			t.Cleanup(undo)
			wait.For(t, 5*time.Second, "the other socket", func() bool {
				resp, err := localapi.Client(in.socket).Get("http://kiumtapd/")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil
			})
			return undo
		}, []string{"the local API stopped", "is another kiumtapd running?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstall(t, t.TempDir(), "")
			undo := tc.setup(t, &in)
			rewriteSocket(t, in)
			var out, errOut bytes.Buffer
			done := make(chan error, 1)
			go func() { done <- run(context.Background(), []string{"-config", in.config}, &out, &errOut) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not stop after its local API failed")
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("run = %v, want an error with %q", err, w)
				}
			}
			st, err := store.Open(store.Options{Path: in.store, DeviceID: "mangwon1-door", LockTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("the store after run returned: %v", err)
			}
			st.Close()
			undo()
			wait.For(t, 2*time.Second, "every goroutine of kiumtapd to end", func() bool { return len(leftovers()) == 0 })
		})
	}
}

// rewriteSocket writes in.socket into the install's configuration.
func rewriteSocket(t *testing.T, in install) {
	t.Helper()
	raw, err := os.ReadFile(in.config)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "socket = ") {
			lines[i] = fmt.Sprintf("socket = %q", in.socket)
		}
	}
	if err := os.WriteFile(in.config, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}
