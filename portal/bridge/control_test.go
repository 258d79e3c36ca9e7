package bridge

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/portal/api"
)

// brokerClient is a connected client whose publishes end as token says.
type brokerClient struct {
	mqtt.Client // nil: only the methods below are called
	token       mqtt.Token
}

func (c brokerClient) IsConnectionOpen() bool { return true }

func (c brokerClient) Publish(string, byte, bool, any) mqtt.Token { return c.token }

// publishToken is a publish's token: acknowledged or not, and its error.
type publishToken struct {
	acked bool
	err   error
}

func (t publishToken) Wait() bool                     { return t.acked }
func (t publishToken) WaitTimeout(time.Duration) bool { return t.acked }
func (t publishToken) Error() error                   { return t.err }
func (t publishToken) Done() <-chan struct{} {
	ch := make(chan struct{})
	if t.acked {
		close(ch)
	}
	return ch
}

// An enrol command the broker does not take answers 503, as no broker
// does, and says why: the acknowledgement timed out, or the publish's
// error; never "<nil>".
func TestEnrolPublishFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token publishToken
		want  string
	}{
		{"no acknowledgement", publishToken{}, "timed out after 10s waiting for its acknowledgement (the broker is slow or unreachable)"},
		{"failed", publishToken{acked: true, err: errors.New("connection lost before Publish completed")}, "connection lost before Publish completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "m1")
			h.put(bound("m1", "T-1", 1, "c1", "X", t0)) // the bridge has events from T-1
			h.b.mu.Lock()
			h.b.clients = []link{{c: brokerClient{token: tc.token}}}
			h.b.mu.Unlock()

			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/enrol", strings.NewReader(`{"centre":"m1","child":"c2","by":"op.kim"}`))
			h.b.ControlHandler().ServeHTTP(rec, req)
			var ce api.ControlError
			if err := json.Unmarshal(rec.Body.Bytes(), &ce); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want %d", rec.Code, http.StatusServiceUnavailable)
			}
			if !strings.HasPrefix(ce.Error, "publishing the enrol command to T-1: the broker did not take it: ") || !strings.Contains(ce.Error, tc.want) || strings.Contains(ce.Error, "<nil>") {
				t.Errorf("error %q, want one saying %q", ce.Error, tc.want)
			}
		})
	}
}

// The control socket is the bridge's user's alone (0600), and one another
// bridge answers on is not taken: the error says so.
func TestControlSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "kiumbridge.sock")
	l, err := listenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the control socket: %v %v, want mode 0600", fi.Mode(), err)
	}
	want := "control socket " + sock + " is answered by another process: is another kiumbridge running?"
	if _, err := listenControl(sock); err == nil || err.Error() != want {
		t.Errorf("a second listenControl = %v, want %q", err, want)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the first bridge's socket after the second tried: %v", err)
	}
}
