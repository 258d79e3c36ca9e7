package mosqtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// wait bounds every wait on the broker in these tests.
const wait = 5 * time.Second

// client describes one test client.
type client struct {
	url, id, user, pass string
	tls                 *tls.Config
	keepSession         bool // clean session false
}

// dial connects c and returns the connected client or the connect error.
func dial(t testing.TB, c client) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker(c.url).
		SetClientID(c.id).
		SetUsername(c.user).
		SetPassword(c.pass).
		SetCleanSession(!c.keepSession).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait)
	if c.tls != nil {
		o.SetTLSConfig(c.tls)
	}
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, fmt.Errorf("connect %s as %q: no CONNACK within %v", c.url, c.id, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s as %q: %w", c.url, c.id, err)
	}
	return cl, nil
}

// mustDial connects c and disconnects it at the end of the test.
func mustDial(t testing.TB, c client) paho.Client {
	t.Helper()
	cl, err := dial(t, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

func done(t testing.TB, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("%s: no reply within %v", what, wait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// inbox collects the messages of subscriptions in the order paho delivers
// them.
type inbox chan paho.Message

func newInbox() inbox { return make(inbox, 1000) }

func (in inbox) handler(_ paho.Client, m paho.Message) { in <- m }

// subscribe subscribes cl to filter at QoS 1 and returns the SUBACK code.
func (in inbox) subscribe(t testing.TB, cl paho.Client, filter string) byte {
	t.Helper()
	tok := cl.Subscribe(filter, 1, in.handler)
	done(t, "subscribe "+filter, tok)
	code, ok := tok.(*paho.SubscribeToken).Result()[filter]
	if !ok {
		t.Fatalf("subscribe %s: no result for the filter in the SUBACK", filter)
	}
	return code
}

// next returns the next message, failing the test after wait.
func (in inbox) next(t testing.TB) paho.Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(wait):
		t.Fatalf("no message within %v", wait)
		return nil
	}
}

func publish(t testing.TB, cl paho.Client, topic string, retained bool, payload string) {
	t.Helper()
	done(t, "publish "+topic, cl.Publish(topic, 1, retained, payload))
}

func TestPubSub(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{})
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q, Addr() = %q", b.URL(), b.Addr())
	}
	if b.TLSAddr() != "" || b.TLSURL() != "" {
		t.Errorf("without TLS: TLSAddr() = %q, TLSURL() = %q; want empty", b.TLSAddr(), b.TLSURL())
	}
	sub := mustDial(t, client{url: b.URL(), id: "sub"})
	pub := mustDial(t, client{url: b.URL(), id: "pub"})
	in := newInbox()
	if code := in.subscribe(t, sub, "a/+"); code != 1 {
		t.Fatalf("SUBACK code = %#x, want 1", code)
	}
	publish(t, pub, "a/b", false, "hello")
	if m := in.next(t); m.Topic() != "a/b" || string(m.Payload()) != "hello" {
		t.Fatalf("got %s %q, want a/b \"hello\"", m.Topic(), m.Payload())
	}
	if !strings.Contains(b.Log(), "New client connected") {
		t.Errorf("Log() lacks the connections:\n%s", b.Log())
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{})
	addr := b.Addr()

	// A subscriber with a persistent session goes away; a QoS 1 message for
	// it waits in the broker.
	away := mustDial(t, client{url: b.URL(), id: "away", keepSession: true})
	in := newInbox()
	in.subscribe(t, away, "queued")
	away.Disconnect(0)

	pub := mustDial(t, client{url: b.URL(), id: "pub"})
	publish(t, pub, "kept", true, "retained")
	publish(t, pub, "queued", false, "for away")
	pub.Disconnect(0)

	b.Restart()
	if b.Addr() != addr {
		t.Fatalf("after Restart, Addr() = %s, want %s", b.Addr(), addr)
	}
	if n := strings.Count(b.Log(), " running"); n != 2 {
		t.Errorf("Log() tells of %d starts, want 2 (it keeps the log across restarts)", n)
	}
	// An outage of the test's choosing: Stop, then Resume on the same port.
	b.Stop()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a stopped broker accepts connections")
	}
	b.Resume()
	b.Resume() // a running broker: nothing
	if n := strings.Count(b.Log(), " running"); n != 3 || b.Addr() != addr {
		t.Errorf("after Stop and Resume: %d starts (want 3), on %s", n, b.Addr())
	}

	// The session survived: reconnecting with the same client ID brings the
	// queued message. Paho routes it by the subscription it knows of.
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("away").
		SetCleanSession(false).SetAutoReconnect(false).SetConnectTimeout(wait)
	back := paho.NewClient(o)
	back.AddRoute("queued", in.handler)
	done(t, "reconnect away", back.Connect())
	t.Cleanup(func() { back.Disconnect(0) })
	if m := in.next(t); m.Topic() != "queued" || string(m.Payload()) != "for away" {
		t.Fatalf("after Restart, queued message: got %s %q", m.Topic(), m.Payload())
	}

	// The retained message survived.
	sub := mustDial(t, client{url: b.URL(), id: "sub"})
	in2 := newInbox()
	in2.subscribe(t, sub, "kept")
	if m := in2.next(t); string(m.Payload()) != "retained" || !m.Retained() {
		t.Fatalf("after Restart, retained message: got %q retained=%v", m.Payload(), m.Retained())
	}
}

// Restart retries while its port is taken: another listener holds it until
// mosquitto has failed to bind once.
func TestRestartWaitsForPort(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{})
	b.Stop()
	l, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("taking the broker's port: %v", err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		defer l.Close()
		deadline := time.Now().Add(wait)
		for !strings.Contains(b.Log(), "Address already in use") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling the log, bounded by deadline
		}
	}()
	b.Restart()
	<-released
	if !strings.Contains(b.Log(), "Address already in use") {
		t.Fatal("mosquitto never found its port taken; the test proves nothing")
	}
	mustDial(t, client{url: b.URL(), id: "back"})
}

func TestStopRefusesConnections(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{})
	b.Stop()
	b.Stop() // a second Stop does nothing
	if cl, err := dial(t, client{url: b.URL(), id: "late"}); err == nil {
		cl.Disconnect(0)
		t.Fatal("connected to a stopped broker")
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certs := NewCerts(t)
	b := Start(t, Options{TLS: certs})
	if b.TLSURL() != "ssl://"+b.TLSAddr() || b.TLSAddr() == b.Addr() {
		t.Fatalf("TLSURL() = %q, TLSAddr() = %q, Addr() = %q", b.TLSURL(), b.TLSAddr(), b.Addr())
	}
	goodCert, goodKey := certs.Client(t, "T-1")
	badCert, badKey := NewUntrustedClient(t, "T-1")
	tests := []struct {
		name      string
		tls       *tls.Config
		wantError bool
	}{
		{"CA-signed", certs.TLSConfig(t, goodCert, goodKey), false},
		{"untrusted CA", certs.TLSConfig(t, badCert, badKey), true},
		{"no client certificate", certs.TLSConfig(t, "", ""), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := dial(t, client{url: b.TLSURL(), id: "tls", tls: tt.tls})
			if err == nil {
				defer cl.Disconnect(0)
			}
			if (err != nil) != tt.wantError {
				t.Fatalf("connect: error %v, want error: %v", err, tt.wantError)
			}
			t.Logf("connect: %v", err)
			if err == nil {
				in := newInbox()
				in.subscribe(t, cl, "t")
				publish(t, cl, "t", false, "over TLS")
				if m := in.next(t); string(m.Payload()) != "over TLS" {
					t.Fatalf("got %q", m.Payload())
				}
			}
		})
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	b := Start(t, Options{Users: map[string]string{"alice": "s3cret", "bob": "other"}})
	tests := []struct {
		name, user, pass string
		wantErr          error
	}{
		{"right password", "alice", "s3cret", nil},
		{"second user", "bob", "other", nil},
		{"wrong password", "alice", "other", packets.ErrorRefusedNotAuthorised},
		{"unknown user", "carol", "s3cret", packets.ErrorRefusedNotAuthorised},
		{"anonymous", "", "", packets.ErrorRefusedNotAuthorised},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := dial(t, client{url: b.URL(), id: "u", user: tt.user, pass: tt.pass})
			if err == nil {
				cl.Disconnect(0)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("connect: error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestPasswordFileGo checks that the password file written in Go, used when
// mosquitto_passwd is not installed, is one mosquitto accepts.
func TestPasswordFileGo(t *testing.T) {
	saved := mosquittoPasswd
	mosquittoPasswd = "/nonexistent/mosquitto_passwd"
	t.Cleanup(func() { mosquittoPasswd = saved })

	b := Start(t, Options{Users: map[string]string{"alice": "s3cret"}})
	if cl, err := dial(t, client{url: b.URL(), id: "a", user: "alice", pass: "s3cret"}); err != nil {
		t.Fatal(err)
	} else {
		cl.Disconnect(0)
	}
	if _, err := dial(t, client{url: b.URL(), id: "a", user: "alice", pass: "wrong"}); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Fatalf("wrong password: error %v, want %v", err, packets.ErrorRefusedNotAuthorised)
	}
}

// TestHashedLine pins the Go hash to a line made by mosquitto_passwd 2.0.11.
func TestHashedLine(t *testing.T) {
	const want = "alice:$7$101$NPYF6iiM7RxfsNU3$EfMURmkHg2/JxL2+2pYJEojYlsSxlBP1n5KUuqsWdcppMOjS5cDYAYCFE10Kk899+EpANl+To7dLpQCgSy6Wew==\n"
	salt := []byte{0x34, 0xf6, 0x05, 0xea, 0x28, 0x8c, 0xed, 0x1c, 0x5f, 0xb0, 0xd5, 0x37} // NPYF6iiM7RxfsNU3
	got, err := hashedLine("alice", "secret", salt)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("hashedLine = %q\nwant         %q", got, want)
	}
}

// fatalTB records the first fatal failure instead of failing the test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatal(args ...any) { f.fail(fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fail(fmt.Sprintf(format, args...))
}

func (f *fatalTB) fail(msg string) {
	f.mu.Lock()
	f.msg = msg
	f.mu.Unlock()
	runtime.Goexit()
}

func TestStartFailsWithLog(t *testing.T) {
	t.Parallel()
	f := &fatalTB{TB: t}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		Start(f, Options{Extra: "no_such_option 1\n"})
	}()
	<-finished
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(f.msg, "no_such_option") || !strings.Contains(f.msg, "mosquitto log") {
		t.Fatalf("Start with a bad config failed with %q; want mosquitto's complaint about no_such_option", f.msg)
	}
}
