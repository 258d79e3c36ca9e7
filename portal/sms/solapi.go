package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// What the Solapi documentation says, as checked when this was written
// (docs.solapi.com "API Key 인증 방식" and "단일 메시지", mirrored in the
// solapi/documents repository, and the official Go SDK solapi/solapi-go):
//
//   - Authentication: the header
//     "Authorization: HMAC-SHA256 apiKey=<key>, date=<ISO 8601>, salt=<12-64
//     random bytes>, signature=<hex HMAC-SHA256 of date+salt keyed with the
//     API secret>". The server refuses a date more than 15 minutes from its
//     clock (RequestTimeTooSkewed) and a signature used twice within 15
//     minutes. The SDK formats the date as RFC 3339 in UTC
//     ("2019-07-01T00:41:48Z") and uses a 32-character salt; so do we.
//   - Sending one text: POST /messages/v4/send with
//     {"message":{"to","from","text","type","subject"}}; subject only for
//     LMS (20 Hangul or 40 Latin characters). The answer is
//     {"groupId","messageId","accountId","statusCode","statusMessage","to",
//     "from","type","country"} with statusCode "2000" for "정상 접수".
//   - Errors: an HTTP error status with {"errorCode","errorMessage"}, e.g.
//     400 {"errorCode":"ValidationError","errorMessage":"..."}.
//   - Idempotency: none documented. The send API has no idempotency key
//     field or header. Newer versions of the page list an "allowDuplicates"
//     boolean with no description, which suggests Solapi refuses some
//     duplicate texts on its own, but nothing documents when; we do not rely
//     on it and do not send it.

// SolapiOptions configures NewSolapi.
type SolapiOptions struct {
	APIKey    string // required: the API key from the Solapi console
	APISecret string // required: its secret, used only to sign requests
	// BaseURL is the API's address; default "https://api.solapi.com".
	BaseURL string
	// HTTPClient sends the requests; default a client with a 10 s timeout
	// that does not follow redirects.
	HTTPClient *http.Client
	// Now gives the date signed in each request; default time.Now.
	Now func() time.Time
	// Salt gives each request's random salt (12 to 64 characters); default
	// 32 random hex characters from crypto/rand.
	Salt func() string
	// PfID is the KakaoTalk channel's ID at Solapi (pfId) and Templates
	// the AlimTalk template of each kind of message: a message of a kind
	// with a template goes by AlimTalk, falling back to SMS/LMS at Solapi
	// for a recipient it cannot reach; others by SMS/LMS.
	PfID      string
	Templates Templates
}

type solapi struct{ o SolapiOptions }

var _ Provider = (*solapi)(nil)

// NewSolapi returns a provider sending through Solapi's v4 API
// (POST /messages/v4/send, one text per request).
//
// Solapi documents no idempotency key: Message.Key is not sent. The bridge's
// queue allows at most one successful Send per key, but when an answer is
// lost after Solapi accepted the text, the retry texts the parent again.
func NewSolapi(o SolapiOptions) Provider {
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.BaseURL == "" {
		o.BaseURL = "https://api.solapi.com"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultClient()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Salt == nil {
		o.Salt = randomSalt
	}
	return &solapi{o}
}

func randomSalt() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return hex.EncodeToString(b[:])
}

func (s *solapi) Name() string { return "solapi" }

// solapiRequest is the body of POST /messages/v4/send.
type solapiRequest struct {
	Message solapiMessage `json:"message"`
}

type solapiMessage struct {
	To      string `json:"to"`
	From    string `json:"from"`
	Text    string `json:"text"`
	Type    string `json:"type"`
	Subject string `json:"subject,omitempty"`
}

// solapiAuthorization builds the Authorization header for a date and salt.
func solapiAuthorization(apiKey, apiSecret, date, salt string) string {
	mac := hmac.New(sha256.New, []byte(apiSecret))
	mac.Write([]byte(date + salt))
	return fmt.Sprintf("HMAC-SHA256 apiKey=%s, date=%s, salt=%s, signature=%s",
		apiKey, date, salt, hex.EncodeToString(mac.Sum(nil)))
}

func (s *solapi) Send(ctx context.Context, m Message) (Receipt, error) {
	typ, e := checkMessage(s.Name(), m, false)
	if e != nil {
		return Receipt{}, e
	}
	if tid := s.o.Templates[m.Kind]; tid != "" && s.o.PfID != "" {
		return s.sendAlimTalk(ctx, m, tid)
	}
	if s.o.APIKey == "" || s.o.APISecret == "" {
		return Receipt{}, &Error{Provider: s.Name(), Permanent: true,
			what: "no API key or secret", advice: "set sms.api_key and sms.api_secret from the Solapi console"}
	}
	salt := s.o.Salt()
	if len(salt) < 12 || len(salt) > 64 {
		return Receipt{}, &Error{Provider: s.Name(), Permanent: true,
			what: fmt.Sprintf("salt of %d bytes", len(salt)), advice: "SolapiOptions.Salt must give 12 to 64 characters"}
	}
	msg := solapiMessage{To: m.To, From: m.From, Text: m.Text.Body, Type: typ}
	if typ == TypeLMS {
		msg.Subject = m.Text.Subject
	}
	body, err := json.Marshal(solapiRequest{Message: msg})
	if err != nil {
		return Receipt{}, &Error{Provider: s.Name(), Permanent: true, Err: err, what: "cannot encode the request"}
	}
	date := s.o.Now().UTC().Format(time.RFC3339)
	hdr := http.Header{
		"Authorization": {solapiAuthorization(s.o.APIKey, s.o.APISecret, date, salt)},
		"Content-Type":  {"application/json"},
	}
	a, e := post(ctx, s.o.HTTPClient, s.Name(), s.o.BaseURL+"/messages/v4/send", hdr, body)
	if e != nil {
		return Receipt{}, e
	}
	r, e := parseSolapiResponse(a.status, a.body)
	if e != nil {
		return Receipt{}, e
	}
	r.Channel = ChannelOf(m.Text)
	return r, nil
}

// solapiAccepted reports whether a statusCode in a 2xx answer means the
// text was taken. "2000" (정상 접수) is the only code the send API's page
// shows. Other 2xxx codes, and "3000" and "4000", which Solapi's message
// status list uses for a text further on its way, are accepted too; that
// list was not checked when this was written. Any other code (1xxx, 3xxx
// failures) is taken as the text being refused.
func solapiAccepted(code string) bool {
	return code == "" || strings.HasPrefix(code, "2") || code == "3000" || code == "4000"
}

// parseSolapiResponse reads the answer to POST /messages/v4/send.
func parseSolapiResponse(status int, body []byte) (Receipt, *Error) {
	const name = "solapi"
	a := answer{status: status, body: body}
	o, isObject := parseObject(body)
	code, reason := clip(o.str("errorCode")), clip(o.str("errorMessage"))
	if status >= 200 && status < 300 {
		if !isObject {
			return Receipt{}, garbage(name, a, "with something that is not a JSON object")
		}
		if code != "" {
			// An error in a success answer: not documented; retry.
			return Receipt{}, solapiError(status, code, reason, false)
		}
		id := clip(o.str("messageId"))
		if id == "" {
			id = clip(o.str("groupId"))
		}
		if id == "" {
			return Receipt{}, garbage(name, a, "without a messageId or groupId")
		}
		if sc := clip(o.str("statusCode")); !solapiAccepted(sc) {
			return Receipt{}, &Error{Provider: name, Status: status, Code: sc, Reason: clip(o.str("statusMessage")), Permanent: true,
				what: "text refused (message " + id + ")", advice: "look the message up in the Solapi console's message log"}
		}
		return Receipt{ID: id}, nil
	}
	if code == "" && reason == "" {
		reason = "answered: " + snippet(body)
		if len(bytes.TrimSpace(body)) == 0 {
			reason = "answered with an empty body"
		}
	}
	if status >= 400 && status < 500 {
		return Receipt{}, solapiError(status, code, reason, !retryableStatus(status) && !solapiRetryableCode(code))
	}
	return Receipt{}, solapiError(status, code, reason, false)
}

// solapiRetryableCode lists the error codes of a 4xx answer that another
// attempt can fix.
func solapiRetryableCode(code string) bool {
	switch code {
	case "RequestTimeTooSkewed", // our clock: fixable, and the next request has a new date
		"DuplicatedSignature", // the next request has a new salt
		"NotEnoughBalance",    // fixed by topping up the balance
		"TooManyRequests", "InternalError", "UnknownError":
		return true
	}
	return false
}

// solapiError describes a Solapi error answer and says what to do.
func solapiError(status int, code, reason string, permanent bool) *Error {
	e := &Error{Provider: "solapi", Status: status, Code: code, Reason: reason, Permanent: permanent}
	lower := strings.ToLower(code)
	switch {
	case strings.Contains(reason, "발신번호") || strings.Contains(strings.ToLower(reason), "sender"):
		e.what, e.advice = "sender number refused", "register sms.from as a sender number (발신번호 등록) in the Solapi console"
	case strings.Contains(reason, "수신번호") || strings.Contains(strings.ToLower(reason), "recipient"):
		e.what, e.advice = "recipient number refused", "fix the parent's phone number in the roster"
	case code == "RequestTimeTooSkewed":
		e.what, e.advice = "request date refused", "set the portal's clock (NTP): Solapi allows 15 minutes of skew"
	case code == "NotEnoughBalance":
		e.what, e.advice = "balance too low", "top up the Solapi balance; texts are retried until then"
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		strings.Contains(lower, "apikey") || strings.Contains(lower, "signature") || strings.Contains(lower, "unauthorized"):
		e.what, e.advice = "credentials refused", "check sms.api_key and sms.api_secret against the Solapi console"
	case status == http.StatusTooManyRequests || code == "TooManyRequests":
		e.what = "rate limited"
	case permanent:
		e.what, e.advice = "text refused", "check the reason, then fix the roster or the configuration"
	default:
		e.what = "text not accepted"
	}
	return e
}
