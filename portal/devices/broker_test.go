package devices_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/devices"
)

const portalPass = "portal-secret"

// fleet is a CA, a broker running the shipped configuration with the ACL
// for two terminals of two centres, and what a test needs to connect.
type fleet struct {
	t      *testing.T
	ca     *devices.Authority
	mq     *mosqtest.Broker
	dir    string
	rootCA *x509.CertPool
}

func startFleet(t *testing.T, devs ...devices.Device) *fleet {
	now := time.Now()
	ca, err := devices.NewAuthority("test district CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	server, err := ca.Server([]string{"localhost", "127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := &mosqtest.Certs{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "broker.pem"), ServerKey: filepath.Join(dir, "broker.key")}
	key, _ := devices.KeyPEM(server.Key)
	for path, data := range map[string][]byte{certs.CAFile: devices.CertPEM(ca.Cert), certs.ServerCert: devices.CertPEM(server.Cert), certs.ServerKey: key} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	acl, err := devices.ACL("portal", devs)
	if err != nil {
		t.Fatal(err)
	}
	mq := mosqtest.Start(t, mosqtest.Options{Shipped: "../../deploy/mosquitto/mosquitto.conf", TLS: certs, Users: map[string]string{"portal": portalPass}, ACL: acl})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &fleet{t: t, ca: ca, mq: mq, dir: dir, rootCA: pool}
}

// client connects: as a terminal with its own certificate on the
// terminals' listener (cert set), or as the portal with its password on
// the portal's listener.
func (f *fleet) client(listener int, clientID, user, pass string, cert *devices.Issued) (mqtt.Client, error) {
	cfg := &tls.Config{RootCAs: f.rootCA, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key, Leaf: cert.Cert}}
	}
	o := mqtt.NewClientOptions().AddBroker("ssl://" + f.mq.Listener(listener)).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetTLSConfig(cfg).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, os.ErrDeadlineExceeded
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	f.t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func (f *fleet) terminal(d devices.Device, clientID, user string) mqtt.Client {
	f.t.Helper()
	cert, err := f.ca.Device(d, time.Now(), time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.client(0, clientID, user, "", cert)
	if err != nil {
		f.t.Fatalf("%s with its own certificate: %v", d.ID, err)
	}
	return c
}

// inbox collects messages.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (in *inbox) handle(_ mqtt.Client, m mqtt.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m.Topic()+" "+string(m.Payload()))
	in.mu.Unlock()
}

func (in *inbox) has(s string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m == s {
			return true
		}
	}
	return false
}

func publish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing on %s: %v", topic, tok.Error())
	}
}

// With the shipped broker configuration (deploy/mosquitto) and ACL made
// by this package, a terminal is its certificate: with door-a's
// certificate and door-b's client ID and centre as username, a forged
// check_in on door-b's topic is dropped, and door-b's session is not
// taken over; the portal's listener refuses a terminal's certificate
// without the portal's password, and the terminals' listener refuses a
// client without a certificate. (Under the configuration before, with one
// password per centre and the client ID chosen by the client, both
// attacks succeeded.)
func TestShippedBrokerConfinesEachDevice(t *testing.T) {
	a, b := devices.Device{Centre: "mangwon1", ID: "door-a"}, devices.Device{Centre: "hapjeong", ID: "door-b"}
	f := startFleet(t, a, b)
	portal, err := f.client(1, "kiumbridge-h1-0", "portal", portalPass, nil)
	if err != nil {
		t.Fatalf("the portal on its listener: %v", err)
	}
	seen := &inbox{}
	if tok := portal.Subscribe("kium/v1/#", 1, seen.handle); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	bEvents := "kium/v1/c/hapjeong/d/door-b/events"
	honest := f.terminal(b, "door-b", "door-b")
	publish(t, honest, bEvents, "honest 1")
	wait.For(t, 5*time.Second, "door-b's own event at the portal", func() bool { return seen.has(bEvents + " honest 1") })

	// The attacker holds door-a's certificate and claims door-b's client ID
	// and centre.
	attacker := f.terminal(a, "door-b", "hapjeong")
	publish(t, attacker, bEvents, "forged check_in")
	publish(t, attacker, "kium/v1/c/hapjeong/d/door-a/events", "forged centre")
	aEvents := "kium/v1/c/mangwon1/d/door-a/events"
	publish(t, attacker, aEvents, "marker")
	// A client's messages are handled in order: once its marker is at the
	// portal, the forged ones can no longer arrive.
	wait.For(t, 5*time.Second, "the attacker's own event at the portal", func() bool { return seen.has(aEvents + " marker") })
	if seen.has(bEvents+" forged check_in") || seen.has("kium/v1/c/hapjeong/d/door-a/events forged centre") {
		t.Fatal("a forged event reached the portal")
	}
	// door-b's session survived the attacker's connection with its client
	// ID: it still publishes, and its connection was never lost.
	if !honest.IsConnectionOpen() {
		t.Fatal("door-b's session was taken over")
	}
	publish(t, honest, bEvents, "honest 2")
	wait.For(t, 5*time.Second, "door-b's event after the attack", func() bool { return seen.has(bEvents + " honest 2") })
	if log := f.mq.Log(); !strings.Contains(log, "as door-a (") {
		t.Errorf("the broker did not take door-a as the attacker's client ID:\n%s", log)
	}

	// The portal's listener: a terminal's certificate and no password, or
	// a wrong password, are refused.
	certA, _ := f.ca.Device(a, time.Now(), time.Hour)
	if _, err := f.client(1, "x", "portal", "", certA); err == nil {
		t.Error("the portal's listener took a terminal's certificate without the portal's password")
	}
	if _, err := f.client(1, "x", "portal", "wrong", nil); err == nil {
		t.Error("the portal's listener took a wrong password")
	}
	// The terminals' listener: no certificate, no connection; a
	// certificate of another CA neither.
	if _, err := f.client(0, "door-a", "door-a", "", nil); err == nil {
		t.Error("the terminals' listener took a client without a certificate")
	}
	other, _ := devices.NewAuthority("another CA", time.Now(), time.Hour)
	foreign, _ := other.Device(a, time.Now(), time.Hour)
	if _, err := f.client(0, "door-a", "door-a", "", foreign); err == nil {
		t.Error("the terminals' listener took a certificate of another CA")
	}
}

// The example block in the shipped ACL is what Block writes, so the file
// and the generator cannot drift apart.
func TestShippedACLExample(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/mosquitto/acl")
	if err != nil {
		t.Fatal(err)
	}
	block := devices.Block(devices.Device{Centre: "mangwon1", ID: "mangwon1-door"})
	body := block[strings.Index(block, "\n")+1:] // without its comment line
	if !strings.Contains(string(raw), body) {
		t.Fatalf("deploy/mosquitto/acl's example differs from devices.Block:\n%s", body)
	}
	if _, err := devices.ACL("portal", []devices.Device{{Centre: "m1", ID: "d"}, {Centre: "m2", ID: "d"}}); err == nil {
		t.Error("two devices with one ID accepted")
	}
	if _, err := devices.ACL("portal", []devices.Device{{Centre: "m1", ID: "portal"}}); err == nil {
		t.Error("a device named as the portal's user accepted")
	}
	if _, err := devices.ACL("portal", []devices.Device{{Centre: "m1", ID: "a/b"}}); err == nil {
		t.Error("a device ID with a slash accepted")
	}
}
