package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"kiumtap/portal/api"
	"kiumtap/portal/ingest"
	"kiumtap/portal/sms"
	"kiumtap/portal/store"
)

// Reason tells apart the errors a real provider returns (the webhook,
// against servers that answer each way), not errors made up to fit it.
func TestReason(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `{"id":"1"}`)
		case "/bad-number":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid recipient"}`)
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/garbage":
			fmt.Fprint(w, `<html>`)
		case "/hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // first: srv.Close waits for the handlers
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nobody listens there now
	for _, tc := range []struct {
		url, want string
	}{
		{srv.URL + "/bad-number", Refused},
		{srv.URL + "/busy", ProviderError},
		{srv.URL + "/down", ProviderError},
		{srv.URL + "/garbage", ProviderError},
		{srv.URL + "/hang", Timeout},
		{closed.URL, Unreachable},
		{"ftp://example.invalid/", Refused}, // a URL no attempt can use
	} {
		p := sms.NewWebhook(sms.WebhookOptions{URL: tc.url, HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
		_, err := p.Send(context.Background(), sms.Message{Key: "k", To: "01012345678", From: "0212345678", Text: sms.Text{Type: sms.TypeSMS, Body: "hi"}})
		if err == nil {
			t.Errorf("%s: sent", tc.url)
			continue
		}
		if got := Reason(err); got != tc.want {
			t.Errorf("%s: %v: reason %s, want %s", tc.url, err, got, tc.want)
		}
	}
	// A send cut short by the bridge's stop is a timeout too.
	p := sms.NewWebhook(sms.WebhookOptions{URL: srv.URL + "/hang"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Send(ctx, sms.Message{Key: "k", To: "01012345678", From: "0212345678", Text: sms.Text{Type: sms.TypeSMS, Body: "hi"}}); Reason(err) != Timeout {
		t.Errorf("cancelled: %v: reason %s", err, Reason(err))
	}
	var ne net.Error = &net.OpError{Op: "dial", Err: errors.New("refused")}
	if got := Reason(fmt.Errorf("a provider that breaks the contract: %w", ne)); got != ProviderError {
		t.Errorf("an error that is no *sms.Error: %s", got)
	}
}

// gather reads the registry into name{labels} → value, as the text
// format writes them, and the errors of collecting.
func gather(t *testing.T, m *Metrics) (map[string]float64, error) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case mt.GetCounter() != nil:
				out[name] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				out[name] = mt.GetGauge().GetValue()
			}
		}
	}
	return out, err
}

// Every metric is there from the start, the provider's counters at 0;
// state comes from the sources at each scrape; a store that cannot be
// read loses only the queue's metrics, and the scrape says why.
func TestScrape(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	st := api.Status{Connected: true, Centres: []string{"mangwon1", "hapjeong"},
		Stats:   api.Stats{Ingest: ingest.Stats{Stored: 7, Duplicates: 2, OutOfOrder: 3, Malformed: 1, UnknownCentre: 4}, Published: 5},
		Refused: []ingest.Refusal{{Centre: "mangwon1", Device: "door"}},
		Stalled: []ingest.Stall{{Centre: "mangwon1", Device: "door", Log: "L"}, {Centre: "hapjeong", Device: "door", Log: "L"}}}
	q := store.Queue{Pending: 3, Sending: 1, Oldest: now.Add(-90 * time.Second)}
	var qerr error
	m := New(Sources{
		Status:    func() api.Status { return st },
		Terminals: func() (int, int) { return 3, 2 },
		Queue:     func() (store.Queue, error) { return q, qerr },
		Provider:  "webhook",
		Now:       func() time.Time { return now },
		Version:   "1.2.3",
	})
	m.Texted("webhook", nil)
	m.Texted("webhook", nil)
	m.Texted("webhook", &sms.Error{Provider: "webhook", Status: 400, Permanent: true})
	m.Healthy(false)
	got, err := gather(t, m)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		`kiumbridge_events_ingested_total`:                                          7,
		`kiumbridge_events_refused_total{reason="duplicate"}`:                       2,
		`kiumbridge_events_refused_total{reason="beyond_gap"}`:                      3,
		`kiumbridge_messages_refused_total{reason="malformed"}`:                     1,
		`kiumbridge_messages_refused_total{reason="unknown_centre"}`:                4,
		`kiumbridge_terminals_refused`:                                              1,
		`kiumbridge_logs_stalled`:                                                   2,
		`kiumbridge_text_queue{state="pending"}`:                                    3,
		`kiumbridge_text_queue{state="sending"}`:                                    1,
		`kiumbridge_text_queue_oldest_age_seconds`:                                  90,
		`kiumbridge_terminals_known`:                                                3,
		`kiumbridge_terminals_online`:                                               2,
		`kiumbridge_broker_up`:                                                      1,
		`kiumbridge_centres`:                                                        2,
		`kiumbridge_rosters_published_total`:                                        5,
		`kiumbridge_build_info{version="1.2.3"}`:                                    1,
		`kiumbridge_healthy`:                                                        0,
		`kiumbridge_texts_sent_total{provider="webhook"}`:                           2,
		`kiumbridge_texts_failed_total{provider="webhook",reason="refused"}`:        1,
		`kiumbridge_texts_failed_total{provider="webhook",reason="timeout"}`:        0,
		`kiumbridge_texts_failed_total{provider="webhook",reason="unreachable"}`:    0,
		`kiumbridge_texts_failed_total{provider="webhook",reason="provider_error"}`: 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if _, ok := got["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics")
	}

	// The queue emptied: no age. The store fails: the rest is still there.
	q = store.Queue{}
	if got, _ := gather(t, m); got[`kiumbridge_text_queue_oldest_age_seconds`] != 0 {
		t.Errorf("the age of an empty queue: %v", got[`kiumbridge_text_queue_oldest_age_seconds`])
	}
	qerr = errors.New("reading the text queue: the disk is gone")
	got, err = gather(t, m)
	if err == nil || !strings.Contains(err.Error(), "the disk is gone") {
		t.Errorf("a scrape with the store failing: %v", err)
	}
	if _, ok := got[`kiumbridge_text_queue{state="pending"}`]; ok {
		t.Error("a queue depth while the store cannot be read")
	}
	if got[`kiumbridge_events_ingested_total`] != 7 || got[`kiumbridge_broker_up`] != 1 {
		t.Errorf("the store failing lost the other metrics: %v", got)
	}
}
