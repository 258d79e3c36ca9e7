// Package smstest is a fake text provider for tests of what sends texts: a
// loopback HTTP server that speaks the webhook provider's documented
// request (sms.NewWebhook), checks each request's shape, signature and
// idempotency key, and records every delivery, repeats included, in the
// order they came.
//
// It owns no retries and no queue: it answers each request at once with
// 200 and {"id":"hook-<key>"}, then tells the test (After), so a test can
// act at the worst moment: right after a text went out.
package smstest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Delivery is one request the provider took.
type Delivery struct {
	Key  string // the Idempotency-Key
	To   string
	Text string
	At   time.Time
	// Nth counts deliveries of this key: 1 for the first, 2 for a repeat.
	Nth int
}

// Webhook is the fake provider. Its methods may be called from any
// goroutine.
type Webhook struct {
	// URL is where sms.NewWebhook must POST; Secret keys its signature.
	URL, Secret string

	t     testing.TB
	mu    sync.Mutex
	log   []Delivery
	count map[string]int
	after func(Delivery)
}

// NewWebhook starts the fake on loopback; it stops when the test ends.
func NewWebhook(t testing.TB, secret string) *Webhook {
	w := &Webhook{Secret: secret, t: t, count: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// After sets a function told of each delivery once its answer is on the
// wire (nil: none). It runs on the request's goroutine.
func (w *Webhook) After(f func(Delivery)) {
	w.mu.Lock()
	w.after = f
	w.mu.Unlock()
}

// request is the webhook's documented body.
type request struct {
	Key     string `json:"key"`
	To      string `json:"to"`
	From    string `json:"from"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	bad := func(status int, f string, a ...any) {
		w.t.Errorf("smstest: "+f, a...)
		http.Error(rw, fmt.Sprintf(f, a...), status)
	}
	if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		bad(http.StatusBadRequest, "not the documented request: %s %s (%s), %v", r.Method, r.URL, r.Header.Get("Content-Type"), err)
		return
	}
	mac := hmac.New(sha256.New, []byte(w.Secret))
	mac.Write(body)
	if r.Header.Get("X-Kiumtap-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		bad(http.StatusUnauthorized, "bad signature on %s", body)
		return
	}
	var m request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || m.To == "" || m.From == "" || m.Text == "" || (m.Type != "SMS" && m.Type != "LMS") {
		bad(http.StatusBadRequest, "body %s: %v", body, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" || key != m.Key {
		bad(http.StatusBadRequest, "idempotency key %q, the body's %q", key, m.Key)
		return
	}
	w.mu.Lock()
	w.count[key]++
	d := Delivery{Key: key, To: m.To, Text: m.Text, At: time.Now(), Nth: w.count[key]}
	w.log = append(w.log, d)
	after := w.after
	w.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(rw, `{"id":"hook-%s"}`, key)
	if f, ok := rw.(http.Flusher); ok {
		f.Flush()
	}
	if after != nil {
		after(d)
	}
}

// Deliveries returns every delivery so far, in order.
func (w *Webhook) Deliveries() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Delivery(nil), w.log...)
}

// Keys returns how many times each key was delivered.
func (w *Webhook) Keys() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.count))
	for k, n := range w.count {
		out[k] = n
	}
	return out
}

// Unique is how many keys were delivered at least once.
func (w *Webhook) Unique() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.count)
}

// Total is how many deliveries there were, repeats included.
func (w *Webhook) Total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.log)
}
