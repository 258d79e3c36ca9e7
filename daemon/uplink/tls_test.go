package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
)

func clientTLS(t *testing.T, ca, cert, key string) *tls.Config {
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in", ca)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// Over TLS, with certificates made for the test: a terminal with a
// certificate of the broker's CA sends its events; one with a certificate
// of another CA is refused.
func TestTLS(t *testing.T) {
	certs := mosqtest.NewCerts(t)
	b := mosqtest.Start(t, mosqtest.Options{TLS: certs, Users: brokerUsers, ACL: brokerACL(t)})
	p := newPortal(t, b.URL())
	cert, keyFile := certs.Client(t, device)
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.TLSURL(), func(o *Options) {
		o.TLS = clientTLS(t, certs.CAFile, cert, keyFile)
	})
	for range 20 {
		tm.tap(t, 1)
	}
	tm.run()
	wait.For(t, 15*time.Second, "the outbox to empty over TLS", func() bool { f, _ := tm.waiting(t); return f == 0 })
	checkStream(t, p, tm.st.LogID(), 1, 20)

	badCert, badKey := mosqtest.NewUntrustedClient(t, device)
	bad := newTerminal(t, filepath.Join(t.TempDir(), "bad.db"), b.TLSURL(), func(o *Options) {
		o.TLS = clientTLS(t, certs.CAFile, badCert, badKey)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if s, err := bad.up.connect(ctx, b.TLSURL()); err == nil {
		s.close(true)
		t.Fatal("a certificate of another CA was let in")
	} else if !strings.Contains(err.Error(), "connecting") {
		t.Fatalf("unexpected error: %v", err)
	}
	// A certificate issued to another device: refused before connecting,
	// saying which.
	otherCert, otherKey := certs.Client(t, "T-2")
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "o.db"), DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(Options{Broker: b.TLSURL(), Centre: centre, Device: device, PortalKey: portalPub(), Store: st, Clock: &clock{synced: true},
		TLS: clientTLS(t, certs.CAFile, otherCert, otherKey)})
	if err == nil || !strings.Contains(err.Error(), `issued to "T-2", but this terminal is "T-1"`) {
		t.Fatalf("a certificate of another device: %v", err)
	}
}

// A terminal whose clock is not set sends its events as such; once an ack
// brings the portal's clock, later events of the boot go out corrected.
func TestClockCorrected(t *testing.T) {
	b := startBroker(t, "")
	p := newPortal(t, b.URL())
	tm := newTerminal(t, filepath.Join(t.TempDir(), "k.db"), b.URL(), nil)
	tm.clk.synced = false
	tm.tap(t, 1)
	tm.run()
	wait.For(t, 10*time.Second, "the first event acknowledged", func() bool { f, _ := tm.waiting(t); return f == 0 })
	tm.tap(t, 1)
	wait.For(t, 10*time.Second, "the second event acknowledged", func() bool { f, _ := tm.waiting(t); return f == 0 })
	evs := p.mem.Events()
	if len(evs) != 2 {
		t.Fatalf("%d events at the portal", len(evs))
	}
	if evs[0].ClockSynced || evs[0].Corrected || evs[0].Time.Year() != 1970 {
		t.Errorf("first event: %+v", evs[0])
	}
	if evs[1].ClockSynced || !evs[1].Corrected || time.Since(evs[1].Time).Abs() > time.Minute {
		t.Errorf("second event not corrected: %+v", evs[1])
	}
	if s := p.lastStatus(); s.ClockSynced {
		t.Errorf("status says the clock is set: %+v", s)
	}
}
