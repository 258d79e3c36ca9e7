package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"kiumtap/internal/logbuf"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store/boltstore"
)

// runBridge runs a bridge of centre m1 on broker until the test ends; it
// returns the bridge, its control socket and Run's result.
func runBridge(t *testing.T, broker, password string, tc *tls.Config, log io.Writer) (*Bridge, string, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	if err := source.Write(filepath.Join(dir, "m1.json"), centreSource("m1")); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "kb.sock")
	b, err := New(Options{Broker: broker, Password: password, TLS: tc, Key: testKey, Store: st, SourceDir: dir, Provider: sms.NewConsole(io.Discard),
		Logger: slog.New(slog.NewTextHandler(log, nil)), Control: sock, StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- b.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10 s after its context ended")
		}
		st.Close()
	})
	return b, sock, done
}

// A bridge started before its broker waits for it: each attempt logged,
// 500 ms doubled, until the broker is up; meanwhile its control socket
// says it runs and is not connected. Then it connects, and logs so.
func TestConnectRetriesUntilTheBrokerIsUp(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{Users: map[string]string{"portal": "secret"}})
	mq.Stop() // its port is known, and nobody listens on it
	var logs logbuf.Buffer
	b, sock, done := runBridge(t, mq.URL(), "secret", nil, &logs)

	wait.For(t, 20*time.Second, "two attempts to connect", func() bool {
		return strings.Count(logs.String(), "cannot reach the broker; trying again") >= 2
	})
	select {
	case err := <-done:
		t.Fatalf("Run gave up while the broker was down: %v\n%s", err, logs.String())
	default:
	}
	var st api.Status
	if err := api.Ask(context.Background(), sock, "GET", "/status", nil, &st); err != nil || st.Connected || len(st.Centres) != 1 {
		t.Fatalf("the control socket while the broker is down: %+v, %v", st, err)
	}
	for _, want := range []string{"attempt=1 ", "attempt=2 ", "retry_in=", "connection refused", "broker=" + mq.URL()} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}

	mq.Resume()
	wait.For(t, 30*time.Second, "the bridge to connect", func() bool { return b.Status().Connected })
	if !strings.Contains(logs.String(), `msg="bridge: connected"`) {
		t.Errorf("no connected line:\n%s", logs.String())
	}
	if err := api.Ask(context.Background(), sock, "GET", "/status", nil, &st); err != nil || !st.Connected {
		t.Errorf("the control socket once connected: %+v, %v", st, err)
	}
}

// A broker that answers and refuses stops the bridge at once with its
// answer and the configuration key to check: waiting would not cure it.
func TestConnectRefused(t *testing.T) {
	certs := mosqtest.NewCerts(t)
	mq := mosqtest.Start(t, mosqtest.Options{Users: map[string]string{"portal": "secret"}, TLS: certs})
	cert, key := certs.Client(t, "portal")
	badCert, badKey := mosqtest.NewUntrustedClient(t, "portal")
	otherCA := mosqtest.NewCerts(t)
	for _, tc := range []struct {
		name, broker, password string
		tls                    *tls.Config
		want                   []string
		// mayRetry: the broker's TLS alert may lose to the connection's
		// reset (TLS 1.3 checks the client's certificate after the
		// handshake): a reset is waited out, with a hint, until the alert
		// comes.
		mayRetry bool
	}{
		{"wrong password", mq.URL(), "wrong", nil, []string{"refused the connection", `"username" (default portal) and "password"`}, false},
		{"untrusted client certificate", mq.TLSURL(), "secret", certs.TLSConfig(t, badCert, badKey), []string{"refused the connection", "remote error: tls", `"cert" and "key"`}, true},
		{"broker's certificate not trusted", mq.TLSURL(), "secret", otherCA.TLSConfig(t, cert, key), []string{"refused the connection", "certificate", `"ca"`}, false},
		{"wrong password over TLS", mq.TLSURL(), "wrong", certs.TLSConfig(t, cert, key), []string{`"password"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logbuf.Buffer
			_, _, done := runBridge(t, tc.broker, tc.password, tc.tls, &logs)
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("the bridge did not stop on a refusal:\n%s", logs.String())
			}
			if err == nil {
				t.Fatal("Run returned no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n := strings.Count(logs.String(), "trying again"); n > 0 && !tc.mayRetry {
				t.Errorf("a refusal was retried:\n%s", logs.String())
			} else if n > strings.Count(logs.String(), `with TLS, \"cert\" and \"key\"`) {
				t.Errorf("a retry without the hint:\n%s", logs.String())
			}
		})
	}
}

// Which failures are waited out and which stop the bridge, and the hint
// each refusal gets.
func TestUnreachable(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return fmt.Errorf("%w : %w", packets.ErrorNetworkError, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
		hint  string
	}{
		{"connection refused", dial(syscall.ECONNREFUSED), true, ""},
		{"no route", dial(syscall.EHOSTUNREACH), true, ""},
		{"timeout", fmt.Errorf("%w : %w", packets.ErrorNetworkError, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}), true, ""},
		{"name not resolved", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "mqtt.kium.example", IsTemporary: true}}, true, ""},
		{"closed before an answer", fmt.Errorf("%w : %w", packets.ErrorNetworkError, io.EOF), true, ""},
		{"reset", fmt.Errorf("%w : %w", packets.ErrorNetworkError, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true, ""},
		{"server unavailable", packets.ErrorRefusedServerUnavailable, true, ""},
		{"bad password", packets.ErrorRefusedBadUsernameOrPassword, false, `"password"`},
		{"not authorised", packets.ErrorRefusedNotAuthorised, false, `"password"`},
		{"client ID rejected", packets.ErrorRefusedIDRejected, false, "client ID"},
		{"certificate refused", fmt.Errorf("%w : %w", packets.ErrorNetworkError, &net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}), false, `"cert" and "key"`},
		{"unknown CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, false, `"ca"`},
		{"wrong host", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "10.0.0.1", Certificate: &x509.Certificate{}}}, false, `"broker" (the host name`},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, false, "tcp:// for a plain listener"},
		{"unknown scheme", errors.New("unknown protocol"), false, `"broker"`},
	} {
		if got := unreachable(tc.err); got != tc.retry {
			t.Errorf("%s: unreachable(%v) = %v", tc.name, tc.err, got)
		}
		if !tc.retry && !strings.Contains(refusalHint(tc.err), tc.hint) {
			t.Errorf("%s: hint %q lacks %q", tc.name, refusalHint(tc.err), tc.hint)
		}
	}
}

// The waits grow from 500 ms to 30 s, each jittered by at most a quarter
// and never beyond 30 s.
func TestConnectBackoff(t *testing.T) {
	wait := connectRetryMin
	for range 12 {
		d := min(jitter(wait), connectRetryMax)
		if d < wait*3/4 || d > wait*5/4 || d > connectRetryMax {
			t.Fatalf("a wait of %v for %v", d, wait)
		}
		wait = min(2*wait, connectRetryMax)
	}
	if wait != connectRetryMax || connectRetryMin != 500*time.Millisecond || connectRetryMax != 30*time.Second {
		t.Errorf("backoff %v to %v, ends at %v", connectRetryMin, connectRetryMax, wait)
	}
}

// The probe a reset brings about gets the broker's alert when it refuses
// this side's certificate, and nothing from a broker that takes it.
func TestTLSProbe(t *testing.T) {
	certs := mosqtest.NewCerts(t)
	mq := mosqtest.Start(t, mosqtest.Options{Users: map[string]string{"portal": "secret"}, TLS: certs})
	badCert, badKey := mosqtest.NewUntrustedClient(t, "portal")
	cert, key := certs.Client(t, "portal")
	if err := tlsProbe(context.Background(), mq.TLSURL(), certs.TLSConfig(t, badCert, badKey)); err == nil || !strings.Contains(err.Error(), "remote error: tls") {
		t.Errorf("an untrusted certificate: %v, want the broker's alert", err)
	}
	if err := tlsProbe(context.Background(), mq.TLSURL(), certs.TLSConfig(t, cert, key)); err != nil {
		t.Errorf("a trusted certificate: %v", err)
	}
}
