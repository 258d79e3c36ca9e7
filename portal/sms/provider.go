package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Message is one text to one parent.
type Message struct {
	// Key is the idempotency key: the same Key must never produce two texts
	// at a provider that supports one. See the package documentation for
	// the providers that do not.
	Key  string
	To   string // recipient, digits only, e.g. "01012345678"
	From string // registered sender number, digits only
	Text Text   // the text as SMS/LMS, and AlimTalk's fallback
	// Kind and Vars: what the message says, for a provider sending it by
	// an AlimTalk template of that kind (Vars fills its variables).
	// Empty Kind: SMS/LMS only.
	Kind Kind
	Vars map[string]string
}

// Receipt is a provider's acknowledgement of a text.
type Receipt struct {
	ID string // the provider's message or request ID
	// Channel is how the provider took it: sms, lms, or alimtalk (how it
	// was delivered, fallback included, then comes from Reporter.Report).
	Channel string
}

// Provider hands texts to an SMS provider. Implementations are safe for
// concurrent use.
type Provider interface {
	// Name is the provider's name, for logs.
	Name() string
	// Send makes one attempt to hand m to the provider. It returns an
	// *Error on failure; IsPermanent tells whether another attempt can
	// succeed.
	Send(ctx context.Context, m Message) (Receipt, error)
}

// Error is a failed send. Permanent means do not retry: the provider refused
// the text for a reason that another attempt will not change (most 4xx
// answers: an invalid number, an unregistered sender, bad credentials).
// Otherwise (timeouts, 5xx, connection errors, an answer that is not what
// the provider documents) retry with backoff.
type Error struct {
	Provider  string // Name of the provider
	Status    int    // HTTP status of the answer; 0 when there was none
	Code      string // the provider's error or result code, if it gave one
	Reason    string // the provider's message, or what came back instead
	Permanent bool
	Err       error // the underlying error (network, context, decoding), if any

	what   string // what failed, e.g. "sender number not registered"
	advice string // what to do about it
}

// Error says which provider failed, what failed, the provider's code and
// reason, and what to do.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	b.WriteString(": ")
	if e.what != "" {
		b.WriteString(e.what)
	} else {
		b.WriteString("sending a text failed")
	}
	switch {
	case e.Status != 0 && e.Code != "":
		fmt.Fprintf(&b, " (HTTP %d, code %s)", e.Status, e.Code)
	case e.Status != 0:
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	case e.Code != "":
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.advice != "" {
		b.WriteString(": ")
		b.WriteString(e.advice)
	} else if !e.Permanent {
		b.WriteString(": will retry")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err is an *Error that another attempt will not
// fix. Any other error, nil included, is not permanent.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

const (
	// DefaultTimeout bounds one request when no HTTPClient is given.
	DefaultTimeout = 10 * time.Second
	// maxAnswer bounds how much of an answer is read.
	maxAnswer = 1 << 20
	// snippetLen is how much of an unexpected answer an error quotes.
	snippetLen = 200
)

// defaultClient is the client each provider gets when its options name
// none: a DefaultTimeout timeout, and redirects not followed (a redirected
// POST may silently turn into a GET; the redirect is reported instead).
func defaultClient() *http.Client {
	return &http.Client{
		Timeout: DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// answer is what came back from one HTTP request.
type answer struct {
	status int
	body   []byte
}

// post sends one JSON request and reads the answer. A request that could
// not be made is permanent (a bad URL will stay bad); one with no complete
// answer is not.
func post(ctx context.Context, c *http.Client, provider, url string, hdr http.Header, body []byte) (answer, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err == nil && req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		err = fmt.Errorf("URL %q is not http or https", url)
	}
	if err != nil {
		return answer{}, &Error{Provider: provider, Permanent: true, Err: err,
			what: "cannot build the request", advice: "check the provider URL in the configuration"}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		e := &Error{Provider: provider, Err: err, what: "no answer", advice: "will retry"}
		if ctx.Err() != nil || isTimeout(err) {
			e.what, e.advice = "no answer in time", "will retry; if the provider did accept the text, the parent may get it twice"
		}
		return answer{}, e
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, &Error{Provider: provider, Status: resp.StatusCode, Err: err, what: "answer cut off",
			advice: "will retry; if the provider did accept the text, the parent may get it twice"}
	}
	return answer{status: resp.StatusCode, body: b}, nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// snippet quotes at most the first snippetLen bytes of b.
func snippet(b []byte) string {
	if len(b) > snippetLen {
		b = b[:snippetLen]
	}
	return strconv.Quote(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// garbage is the retryable error for an answer that is not what the
// provider documents.
func garbage(provider string, a answer, what string) *Error {
	reason := "answered with an empty body"
	if len(bytes.TrimSpace(a.body)) > 0 {
		reason = "answered " + what + ": " + snippet(a.body)
	}
	return &Error{Provider: provider, Status: a.status, Reason: reason,
		what: "unexpected answer", advice: "will retry; if it persists, check the provider URL and the provider's status page"}
}

// checkMessage refuses a message no provider could send.
func checkMessage(provider string, m Message, needKey bool) (typ string, err *Error) {
	bad := func(what, advice string) *Error {
		return &Error{Provider: provider, Permanent: true, what: what, advice: advice}
	}
	switch {
	case !digits(m.To):
		return "", bad(fmt.Sprintf("recipient number %q is not digits only", m.To), "fix the parent's phone number in the roster")
	case !digits(m.From):
		return "", bad(fmt.Sprintf("sender number %q is not digits only", m.From), "set sms.from to the registered sender number")
	case m.Text.Body == "":
		return "", bad("empty text", "this is a bug in the caller: render the text with sms.Render")
	case needKey && m.Key == "":
		return "", bad("message without an idempotency key", "this is a bug in the caller: set Message.Key")
	}
	switch m.Text.Type {
	case "", TypeSMS:
		return TypeSMS, nil
	case TypeLMS:
		return TypeLMS, nil
	}
	return "", bad(fmt.Sprintf("unknown text type %q", m.Text.Type), "this is a bug in the caller: use TypeSMS or TypeLMS")
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// jsonObject is a leniently read JSON object: fields of an unexpected type
// read as absent rather than failing the whole answer.
type jsonObject map[string]json.RawMessage

// parseObject reads b as a JSON object; ok is false for anything else,
// null included.
func parseObject(b []byte) (o jsonObject, ok bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	if err := json.Unmarshal(b, &o); err != nil || o == nil {
		return nil, false
	}
	return o, true
}

// str reads a string or a number as text.
func (o jsonObject) str(k string) string {
	raw, ok := o[k]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) && json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func (o jsonObject) obj(k string) jsonObject {
	sub, _ := parseObject(o[k])
	return sub
}

func (o jsonObject) boolean(k string) (v, ok bool) {
	raw, present := o[k]
	if !present {
		return false, false
	}
	if json.Unmarshal(raw, &v) != nil {
		return false, false
	}
	return v, true
}

func (o jsonObject) list(k string) []jsonObject {
	var raws []json.RawMessage
	if json.Unmarshal(o[k], &raws) != nil {
		return nil
	}
	var l []jsonObject
	for _, raw := range raws {
		if sub, ok := parseObject(raw); ok {
			l = append(l, sub)
		}
	}
	return l
}

// clip bounds a provider's message or code quoted in an error, and turns
// control characters into spaces so that it stays on one log line.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= snippetLen {
		return s
	}
	cut := snippetLen
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// retryableStatus reports whether a 4xx status is still worth retrying.
func retryableStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooEarly || status == http.StatusTooManyRequests
}
