package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"net/http"
	"net/http/httptest"

	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/internal/wait"
	"kiumtap/protocol"
)

func TestParseFilter(t *testing.T) {
	if f, err := ParseFilter("2026-11-23", "no_data", "c1", "5"); err != nil || f.Limit != 5 || f.Outcome != "no_data" || f.Day.String() != "2026-11-23" {
		t.Errorf("%+v %v", f, err)
	}
	for _, bad := range [][4]string{{"2026-13-01", "", "", ""}, {"", "arrived", "", ""}, {"", "", "", "0"}, {"", "", "", "x"}} {
		if _, err := ParseFilter(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("ParseFilter%q: no error", bad)
		}
	}
}

func TestHandlerAndSocket(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "k.db"), DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	refusedSince := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	h := Handler(st, time.Now, func() uplink.Link {
		return uplink.Link{Broker: "ssl://mqtt:8883", Connected: true, Refused: &protocol.Refusal{Seq: 27, Reason: "unknown centre", Since: refusedSince, Count: 3}}
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/events?outcome=nope", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "outcome") {
		t.Errorf("bad filter: %d %s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	var status Status
	if err := json.Unmarshal(rec.Body.Bytes(), &status); rec.Code != http.StatusOK || err != nil || status.Device != "d" {
		t.Errorf("status: %d %s", rec.Code, rec.Body.String())
	}
	if l := status.Link; l == nil || !l.Connected || l.Refused == nil || l.Refused.Seq != 27 || l.Refused.Count != 3 || !l.Refused.Since.Equal(refusedSince) {
		t.Errorf("the link in the status: %+v", status.Link)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/status", nil))
	if rec.Code == http.StatusOK {
		t.Error("POST /status answered: the API is read-only")
	}
	// A second server on a live socket is refused.
	sock := filepath.Join(dir, "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, h) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := Client(sock).Get("http://kiumtapd/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // waiting for the socket, with a deadline
	}
	if err := Serve(context.Background(), sock, h); err == nil || !strings.Contains(err.Error(), "another kiumtapd") {
		t.Errorf("second Serve: %v", err)
	}
	cancel()
	<-done
}

// Serve returns only after every request in flight has been answered:
// their contexts end with Serve's, so a request waiting on the terminal
// ends at once and the caller may close the store when Serve returns.
func TestServeWaitsForItsRequests(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	var answered atomic.Bool
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/emu/tap" {
			return // up
		}
		close(started)
		<-r.Context().Done() // an emu request waiting for a screen
		answered.Store(true)
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, h) }()
	wait.For(t, 5*time.Second, "the socket", func() bool {
		resp, err := Client(sock).Get("http://kiumtapd/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	asked := make(chan struct{})
	go func() {
		defer close(asked)
		if resp, err := Client(sock).Post("http://kiumtapd/emu/tap", "application/json", strings.NewReader("{}")); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	if !answered.Load() {
		t.Error("Serve returned before its request was answered")
	}
	<-asked
}

// A socket that cannot be made is an error that says where and what to do.
func TestServeCannotListen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Serve(context.Background(), filepath.Join(file, "s.sock"), http.NotFoundHandler())
	if err == nil || !strings.Contains(err.Error(), "set socket in the configuration") {
		t.Errorf("Serve under a file: %v", err)
	}
}
