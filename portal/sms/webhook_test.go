package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

const webhookSecret = "webhook-secret"

// webhookDocRequest is the documented webhook body.
type webhookDocRequest struct {
	Key     string `json:"key"`
	To      string `json:"to"`
	From    string `json:"from"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// checkWebhookRequest checks a request against NewWebhook's documentation.
func checkWebhookRequest(t *testing.T, r *http.Request, want Message, secret string) {
	t.Helper()
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		t.Errorf("%s %s, want POST /hook", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if k := r.Header.Get("Idempotency-Key"); k != want.Key {
		t.Errorf("Idempotency-Key %q, want %q", k, want.Key)
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	sig := r.Header.Get("X-Kiumtap-Signature")
	if secret == "" {
		if sig != "" {
			t.Errorf("signature %q without a secret", sig)
		}
	} else {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(raw)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(sig), []byte(want)) {
			t.Errorf("X-Kiumtap-Signature %q, want %q", sig, want)
		}
	}
	var body webhookDocRequest
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	wantSubject := ""
	if want.Text.Type == TypeLMS {
		wantSubject = LMSSubject
	}
	if body != (webhookDocRequest{Key: want.Key, To: want.To, From: want.From, Type: want.Text.Type, Subject: wantSubject, Text: want.Text.Body}) {
		t.Errorf("body %+v, want %+v", body, want)
	}
}

func newTestWebhook(url string, c *http.Client) Provider {
	return NewWebhook(WebhookOptions{URL: url + "/hook", Secret: webhookSecret, HTTPClient: c})
}

func TestWebhook(t *testing.T) {
	for _, tc := range []providerCase{
		{name: "SMS", text: smsText, status: 200, body: `{"id":"hook-1"}`, wantID: "hook-1"},
		{name: "LMS", text: lmsText, status: 201, body: `{"id":"hook-2","extra":true}`, wantID: "hook-2"},
		{name: "numeric id", text: smsText, status: 200, body: `{"id":42}`, wantID: "42"},
		{name: "no id", text: smsText, status: 202, body: `{"queued":true}`, wantID: ""},
		{name: "no content", text: smsText, status: 204, body: ``, wantID: ""},
		{name: "invalid number", text: smsText, status: 400, body: `{"error":"invalid number 01012345678"}`,
			err: &errWant{permanent: true, status: 400, contains: []string{"invalid number 01012345678"}}},
		{name: "bad signature", text: smsText, status: 401, body: `bad signature`,
			err: &errWant{permanent: true, status: 401, contains: []string{"bad signature", "sms.secret"}}},
		{name: "in flight", text: smsText, status: 409, body: `{"message":"key in progress","code":"in_progress"}`,
			err: &errWant{status: 409, code: "in_progress", contains: []string{"key in progress"}}},
		{name: "rate limited", text: smsText, status: 429, body: ``, err: &errWant{status: 429}},
		{name: "server error", text: smsText, status: 500, body: `{"error":"database down"}`,
			err: &errWant{status: 500, contains: []string{"database down"}}},
		{name: "gateway page", text: smsText, status: 502, body: `<html>Bad Gateway</html>`,
			err: &errWant{status: 502, contains: []string{"<html>Bad Gateway"}}},
		{name: "HTML with 200", text: smsText, status: 200, body: `<html>hello</html>`,
			err: &errWant{status: 200, contains: []string{"not a JSON object", "<html>hello"}}},
		{name: "JSON array with 200", text: smsText, status: 200, body: `["ok"]`,
			err: &errWant{status: 200, contains: []string{"not a JSON object"}}},
		{name: "redirect", text: smsText, status: 302, body: ``,
			err: &errWant{status: 302, contains: []string{"redirect"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := message(tc.text)
			srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
				checkWebhookRequest(t, r, want, webhookSecret)
				if tc.status == http.StatusFound {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			r, err := newTestWebhook(srv.URL, nil).Send(context.Background(), want)
			checkResult(t, "webhook", tc, r, err)
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

func TestWebhookWithoutSecret(t *testing.T) {
	want := message(smsText)
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		checkWebhookRequest(t, r, want, "")
		io.WriteString(w, `{"id":"x"}`)
	})
	if r, err := NewWebhook(WebhookOptions{URL: srv.URL + "/hook"}).Send(context.Background(), want); err != nil || r.ID != "x" {
		t.Errorf("Send = %v, %v", r, err)
	}
}

func TestWebhookHang(t *testing.T) { checkHang(t, "webhook", newTestWebhook, smsText) }

func TestWebhookRefusesBeforeSending(t *testing.T) {
	srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	checkRefusedBeforeSending(t, "webhook", newTestWebhook(srv.URL, nil), n)
	noKey := message(smsText)
	noKey.Key = ""
	for _, tc := range []struct {
		p Provider
		m Message
	}{
		{newTestWebhook(srv.URL, nil), noKey},
		{NewWebhook(WebhookOptions{}), message(smsText)},
		{NewWebhook(WebhookOptions{URL: "::not a url"}), message(smsText)},
		{NewWebhook(WebhookOptions{URL: "ftp://example.test/hook"}), message(smsText)},
		{NewWebhook(WebhookOptions{URL: "example.test/hook"}), message(smsText)},
	} {
		_, err := tc.p.Send(context.Background(), tc.m)
		checkError(t, "webhook", err, true)
	}
	if n.Load() != 0 {
		t.Errorf("%d requests", n.Load())
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	url := srv.URL
	srv.Close()
	_, err := newTestWebhook(url, nil).Send(context.Background(), message(smsText))
	checkError(t, "webhook", err, false)
}
