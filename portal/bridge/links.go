package bridge

// The MQTT links: a connection per broker and instance, who they are,
// how a refusal is told from an unreachable broker, and publishing on
// every broker.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"kiumtap/portal/api"
	"kiumtap/protocol"
)

// eventsTopic is the shared subscription to every terminal's events.
func (b *Bridge) eventsTopic() string {
	return "$share/" + b.o.Group + "/" + protocol.Prefix + "/c/+/d/+/events"
}

// instanceID names connection i in its client ID and presence topic.
func (b *Bridge) instanceID(i int) string {
	id := []byte(fmt.Sprintf("%s-%d", b.o.ClientID, i))
	for k, c := range id {
		if !protocol.ValidID(string(c)) {
			id[k] = '_'
		}
	}
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return string(id)
}

func (b *Bridge) connect(ctx context.Context, url string, i int) (mqtt.Client, error) {
	topic := b.eventsTopic()
	handler := func(_ mqtt.Client, m mqtt.Message) {
		if err := b.in.Take(m.Topic(), m.Payload(), b.o.Now()); err != nil {
			b.log.Warn("bridge: events refused; not acknowledged, the terminal is told why", "topic", m.Topic(), "err", err)
			return
		}
		select {
		case b.taken <- struct{}{}:
		default:
		}
	}
	presence := protocol.PortalStatusTopic(b.instanceID(i))
	offline, _ := json.Marshal(protocol.PortalStatus{V: protocol.Version, State: "offline"})
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(b.instanceID(i)).
		SetUsername(b.o.Username).SetPassword(b.o.Password).
		// The first connection is retried by connect, while the broker
		// cannot be reached; a broker that refuses (a wrong password or
		// certificate) stops kiumbridge with its answer. Later drops
		// reconnect on their own, at most 2 s apart: a bridge is one of a
		// few clients (no herd to spread), and every second it is away
		// delays texts once the broker is back.
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		SetMaxReconnectInterval(2*time.Second).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			b.log.Warn("bridge: reconnecting to the broker", "broker", url)
		}).
		SetConnectTimeout(10*time.Second).SetKeepAlive(30*time.Second).SetOrderMatters(true).
		SetBinaryWill(presence, offline, 1, true).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Replies to commands go to every instance: the one that sent
			// the command is waiting. Terminals' statuses too.
			for topic, h := range map[string]mqtt.MessageHandler{topic: handler, replyTopic: b.onReply, statusTopic: func(_ mqtt.Client, m mqtt.Message) { b.onStatus(url, m) }} {
				t := c.Subscribe(topic, 1, h)
				if t.WaitTimeout(10*time.Second) && t.Error() == nil {
					b.log.Info("bridge: subscribed", "topic", topic, "instance", i)
				} else {
					b.log.Error("bridge: subscribing", "topic", topic, "err", t.Error())
				}
			}
			// Listening now: terminals send again at once what they sent
			// while no bridge listened, rather than after their resend
			// timeout.
			raw, _ := json.Marshal(protocol.PortalStatus{V: protocol.Version, State: "online", Time: b.o.Now().UTC()})
			if t := c.Publish(presence, 1, true, raw); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				b.log.Error("bridge: publishing its presence", "topic", presence, "err", t.Error())
			}
			// Every roster again, on this broker too: it may have lost
			// its retained copies (restarted without persistence).
			b.markDirty(b.centres()...)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.log.Warn("bridge: connection lost; reconnecting", "broker", url, "err", err)
		})
	if b.o.TLS != nil {
		o.SetTLSConfig(b.o.TLS)
	}
	wait := connectRetryMin
	for attempt := 1; ; attempt++ {
		c := mqtt.NewClient(o)
		t := c.Connect()
		select {
		case <-t.Done():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		err := t.Error()
		if err == nil {
			b.log.Info("bridge: connected", "broker", url, "client_id", b.instanceID(i), "attempts", attempt)
			return c, nil
		}
		if closedEarly(err) && b.o.TLS != nil {
			// With TLS 1.3 the broker checks the client's certificate
			// after the handshake: its alert may lose to the reset that
			// MQTT's CONNECT, written at once, brings about. A handshake
			// that writes nothing, then reads, gets the alert if there is
			// one.
			if alert := tlsProbe(ctx, url, b.o.TLS); alert != nil {
				err = fmt.Errorf("%w (the reset's cause: %w)", err, alert)
			}
		}
		if !unreachable(err) {
			return nil, fmt.Errorf("bridge: the broker %s refused the connection: %w: %s", url, err, refusalHint(err))
		}
		d := min(jitter(wait), connectRetryMax)
		attrs := []any{"broker", url, "instance", i, "attempt", attempt, "retry_in", d.Round(time.Millisecond), "err", err}
		if closedEarly(err) {
			// Also how a TLS broker's refusal of a certificate may come,
			// when the connection's reset outruns its alert.
			attrs = append(attrs, "hint", `the broker closed the connection before answering: if this goes on, check the config's "broker" (tcp:// for a plain listener, ssl:// for TLS) and, with TLS, "cert" and "key"`)
		}
		b.log.Warn("bridge: cannot reach the broker; trying again", attrs...)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		wait = min(2*wait, connectRetryMax)
	}
}

// The first connection to the broker is tried again, while the broker
// cannot be reached, after connectRetryMin, doubled per attempt up to
// connectRetryMax, each wait jittered by ±25 % (bridges started together
// spread out).
const (
	connectRetryMin = 500 * time.Millisecond
	connectRetryMax = 30 * time.Second
)

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// unreachable reports whether a connection attempt failed for want of a
// broker to answer, which waiting may cure (none listening yet, the
// network, a timeout, a broker that says it is unavailable), rather than
// because the broker answered and refused: bad credentials or
// certificates, which only a change of configuration cures.
func unreachable(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var ne net.Error
	switch {
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return true
	case tlsAlert(err), errors.As(err, &alert), errors.As(err, &verify), errors.As(err, &record),
		errors.As(err, &unknownCA), errors.As(err, &host), errors.As(err, &invalid):
		return false
	case errors.As(err, &ne): // a dial refused or timed out, a name not resolved, a reset…
		return true
	}
	return closedEarly(err)
}

// closedEarly reports whether a connection was closed before the broker
// answered: a broker stopping or starting, or one that does not speak
// this protocol (tcp:// to a TLS listener, ssl:// to a plain one), or one
// whose TLS refused this side, its alert lost to the reset.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// tlsAlert reports whether err is a TLS alert from the broker (crypto/tls
// makes one a *net.OpError "remote error"): its TLS refused this side,
// most often its certificate.
func tlsAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// refusalHint says which configuration to check for a broker's refusal,
// by kiumbridge's configuration keys.
func refusalHint(err error) string {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return `check the config's "username" (default portal) and "password" against the broker's password file`
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return `the broker rejected the client ID: check that no other client connects as this bridge`
	case tlsAlert(err), errors.As(err, &alert):
		return `the broker refused this bridge's certificate: check the config's "cert" and "key" (a certificate signed by the CA the broker trusts)`
	case errors.As(err, &host):
		return `the broker's certificate is for another host: check the config's "broker" (the host name the certificate names)`
	case errors.As(err, &verify), errors.As(err, &unknownCA):
		return `the broker's certificate is not trusted: check the config's "ca" (the CA that signed the broker's certificate)`
	case errors.As(err, &record):
		return `the broker's port does not speak TLS: check the config's "broker" (tcp:// for a plain listener, ssl:// for TLS)`
	}
	return `check the config's "broker", "username", "password", "ca", "cert" and "key"`
}

// link is one connection: to broker k of brokers(), instance i.
type link struct {
	c                mqtt.Client
	broker, instance int
}

// brokers are the brokers' URLs.
func (b *Bridge) brokers() []string {
	if len(b.o.Brokers) > 0 {
		return b.o.Brokers
	}
	return []string{b.o.Broker}
}

// links are the brokers' connections now.
func (b *Bridge) links() []api.BrokerLink {
	out := []api.BrokerLink{}
	for k, url := range b.brokers() {
		out = append(out, api.BrokerLink{URL: url, Connected: b.perBroker()[k] != nil})
	}
	return out
}

// perBroker is a connected client of each broker (nil for a broker none
// of whose connections is up), in the order of brokers().
func (b *Bridge) perBroker() []mqtt.Client {
	out := make([]mqtt.Client, len(b.brokers()))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.clients {
		if out[l.broker] == nil && l.c.IsConnectionOpen() {
			out[l.broker] = l.c
		}
	}
	return out
}

// client is a connected MQTT client, nil when none is.
func (b *Bridge) client() mqtt.Client {
	for _, c := range b.perBroker() {
		if c != nil {
			return c
		}
	}
	return nil
}

// publishAll publishes a message on every broker connected, as a
// terminal may be on any. It fails when no broker is connected, or
// with the first broker's error; a broker not connected gets the
// message when it is again, if the caller tries again (rosters are
// republished on each connection).
func (b *Bridge) publishAll(topic string, qos byte, retained bool, payload []byte) error {
	var errs []error
	sent := 0
	for k, c := range b.perBroker() {
		if c == nil {
			continue
		}
		if err := published(c.Publish(topic, qos, retained, payload)); err != nil {
			if len(b.brokers()) > 1 {
				err = fmt.Errorf("broker %s: %w", b.brokers()[k], err)
			}
			errs = append(errs, err)
			continue
		}
		sent++
	}
	if sent == 0 && len(errs) == 0 {
		return errors.New("not connected to any broker")
	}
	return errors.Join(errs...)
}

// tlsProbe makes a TLS handshake with the broker at url that writes
// nothing after it, and waits a moment for what the broker says: its
// alert refusing this side's certificate, if it refuses it (nil for
// anything else).
func tlsProbe(ctx context.Context, url string, tc *tls.Config) error {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "ssl://"), "tls://")
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			cfg.ServerName = h
		}
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		if tlsAlert(err) {
			return err
		}
		return nil
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err != nil && tlsAlert(err) {
		return err
	}
	return nil
}
