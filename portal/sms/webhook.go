package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

// WebhookOptions configures NewWebhook.
type WebhookOptions struct {
	URL string // required: where texts are POSTed
	// Secret keys the X-Kiumtap-Signature HMAC. Without one no signature
	// header is sent.
	Secret string
	// HTTPClient sends the requests; default a client with a 10 s timeout
	// that does not follow redirects.
	HTTPClient *http.Client
}

type webhook struct{ o WebhookOptions }

var _ Provider = (*webhook)(nil)

// NewWebhook returns a provider that POSTs each text as JSON to a URL, for
// a gateway of the operator's own:
//
//	POST <URL>
//	Content-Type: application/json
//	Idempotency-Key: <Message.Key>
//	X-Kiumtap-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with Secret>
//
//	{"key":"...","to":"01012345678","from":"0212345678","type":"SMS","subject":"","text":"..."}
//
// The receiver must send at most one text per Idempotency-Key (the same key
// is also in the body): a retry after a lost answer carries the same key.
// A 2xx answer is success, with Receipt.ID taken from a JSON {"id":"..."}
// when there is one; an empty 2xx body is success without an ID. 4xx is
// permanent except 408, 409, 425 and 429; 5xx, timeouts and a 2xx body that
// is not a JSON object are retried.
func NewWebhook(o WebhookOptions) Provider {
	if o.HTTPClient == nil {
		o.HTTPClient = defaultClient()
	}
	return &webhook{o}
}

func (w *webhook) Name() string { return "webhook" }

// webhookRequest is the body POSTed to the webhook.
type webhookRequest struct {
	Key     string `json:"key"`
	To      string `json:"to"`
	From    string `json:"from"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// webhookSignature is the X-Kiumtap-Signature of body.
func webhookSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *webhook) Send(ctx context.Context, m Message) (Receipt, error) {
	typ, e := checkMessage(w.Name(), m, true)
	if e != nil {
		return Receipt{}, e
	}
	if w.o.URL == "" {
		return Receipt{}, &Error{Provider: w.Name(), Permanent: true, what: "no URL", advice: "set sms.url"}
	}
	req := webhookRequest{Key: m.Key, To: m.To, From: m.From, Type: typ, Text: m.Text.Body}
	if typ == TypeLMS {
		req.Subject = m.Text.Subject
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Receipt{}, &Error{Provider: w.Name(), Permanent: true, Err: err, what: "cannot encode the request"}
	}
	hdr := http.Header{
		"Content-Type":    {"application/json"},
		"Idempotency-Key": {m.Key},
	}
	if w.o.Secret != "" {
		hdr.Set("X-Kiumtap-Signature", webhookSignature(w.o.Secret, body))
	}
	a, e := post(ctx, w.o.HTTPClient, w.Name(), w.o.URL, hdr, body)
	if e != nil {
		return Receipt{}, e
	}
	r, e := parseWebhookResponse(a.status, a.body)
	if e != nil {
		return Receipt{}, e
	}
	return r, nil
}

// parseWebhookResponse reads the webhook's answer.
func parseWebhookResponse(status int, body []byte) (Receipt, *Error) {
	const name = "webhook"
	a := answer{status: status, body: body}
	o, isObject := parseObject(body)
	reason := clip(firstOf(o.str("error"), o.str("message"), o.str("reason")))
	switch {
	case status >= 200 && status < 300:
		if len(strings.TrimSpace(string(body))) == 0 {
			return Receipt{}, nil
		}
		if !isObject {
			return Receipt{}, garbage(name, a, "with something that is not a JSON object")
		}
		return Receipt{ID: clip(o.str("id"))}, nil
	case status >= 400 && status < 500:
		if reason == "" {
			reason = "answered: " + snippet(body)
		}
		permanent := !retryableStatus(status) && status != http.StatusConflict
		e := &Error{Provider: name, Status: status, Code: clip(o.str("code")), Reason: reason, Permanent: permanent}
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.what, e.advice = "request refused", "check that sms.secret matches the webhook's secret"
		case permanent:
			e.what, e.advice = "text refused", "check the reason, then fix the roster or the webhook"
		default:
			e.what = "text not accepted yet"
		}
		return Receipt{}, e
	case status >= 300 && status < 400:
		return Receipt{}, &Error{Provider: name, Status: status, Reason: "redirected instead of answering",
			what: "unexpected redirect", advice: "will retry; set sms.url to the final address"}
	}
	if reason == "" {
		return Receipt{}, garbage(name, a, "with an error status")
	}
	return Receipt{}, &Error{Provider: name, Status: status, Code: clip(o.str("code")), Reason: reason, what: "text not accepted"}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
