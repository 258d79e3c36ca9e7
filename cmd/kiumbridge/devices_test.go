package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/internal/cli"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
)

// An operator's path, with kiumbridge alone: a CA, the broker's
// certificate, a terminal's certificate and the broker's ACL. The files
// run Mosquitto with the shipped configuration, and the terminal connects
// with its certificate and reaches the portal; issuing over existing files
// is refused.
func TestCertificatesAndACL(t *testing.T) {
	dir := t.TempDir()
	kb := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	ca, broker, term := filepath.Join(dir, "ca"), filepath.Join(dir, "broker"), filepath.Join(dir, "term")
	if out, err := kb("ca", "init", "-out", ca, "-name", "Mapo-gu kiumtap CA"); err != nil || !strings.Contains(out, "ca.pem") {
		t.Fatalf("ca init: %v\n%s", err, out)
	}
	if out, err := kb("ca", "broker", "-ca", ca, "-host", "localhost,127.0.0.1", "-out", broker); err != nil || !strings.Contains(out, "broker.pem") {
		t.Fatalf("ca broker: %v\n%s", err, out)
	}
	out, err := kb("device", "issue", "-ca", ca, "-centre", "mangwon1", "-device", "mangwon1-door", "-out", term)
	if err != nil || !strings.Contains(out, "user mangwon1-door\n") || !strings.Contains(out, `"device_id": "mangwon1-door"`) {
		t.Fatalf("device issue: %v\n%s", err, out)
	}
	acl, err := kb("device", "acl", "mangwon1/mangwon1-door", "hapjeong/hapjeong-door")
	if err != nil || !strings.Contains(acl, "user portal\ntopic readwrite kium/v1/#") || !strings.Contains(acl, "user hapjeong-door") {
		t.Fatalf("device acl: %v\n%s", err, acl)
	}
	for _, bad := range [][]string{
		{"device", "issue", "-ca", ca, "-centre", "mangwon1", "-device", "mangwon1-door", "-out", term}, // exists
		{"device", "issue", "-ca", ca, "-centre", "mangwon1", "-device", "a/b", "-out", term},
		{"device", "issue", "-ca", filepath.Join(dir, "none"), "-centre", "m", "-device", "d", "-out", term},
		{"device", "acl", "mangwon1-door"},
		{"device", "acl", "m1/d", "m2/d"},
		{"ca", "broker", "-ca", ca, "-out", broker},
	} {
		if out, err := kb(bad...); err == nil {
			t.Errorf("kiumbridge %s: accepted\n%s", strings.Join(bad, " "), out)
		}
	}
	if _, err := kb("device", "issue", "-ca", ca); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("device issue without -device: %v", err)
	}

	certs := &mosqtest.Certs{Dir: dir, CAFile: filepath.Join(ca, "ca.pem"), ServerCert: filepath.Join(broker, "broker.pem"), ServerKey: filepath.Join(broker, "broker.key")}
	mq := mosqtest.Start(t, mosqtest.Options{Shipped: "../../deploy/mosquitto/mosquitto.conf", TLS: certs, Users: map[string]string{"portal": "pw"}, ACL: acl})
	raw, _ := os.ReadFile(certs.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(raw)
	connect := func(listener int, user, pass string, certFiles ...string) mqtt.Client {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if len(certFiles) == 2 {
			pair, err := tls.LoadX509KeyPair(certFiles[0], certFiles[1])
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("ssl://" + mq.Listener(listener)).SetClientID(user).SetUsername(user).SetPassword(pass).SetTLSConfig(cfg))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connecting as %s: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	portal := connect(1, "portal", "pw")
	got := make(chan string, 1)
	portal.Subscribe("kium/v1/c/+/d/+/events", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() })
	door := connect(0, "anything", "", filepath.Join(term, "mangwon1-door.pem"), filepath.Join(term, "mangwon1-door.key"))
	var topic string
	wait.For(t, 10*time.Second, "the terminal's event at the portal", func() bool {
		door.Publish("kium/v1/c/mangwon1/d/mangwon1-door/events", 1, false, "{}").Wait()
		select {
		case topic = <-got:
			return true
		default:
			return false
		}
	})
	if topic != "kium/v1/c/mangwon1/d/mangwon1-door/events" {
		t.Fatalf("got %s", topic)
	}
}
