package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"
)

const (
	solapiKey    = "NCSAYU7YDBXYORXC"
	solapiSecret = "test-api-secret"
)

// solapiNow is the clock of the Solapi tests.
var solapiNow = time.Date(2019, 7, 1, 9, 41, 48, 0, time.FixedZone("KST", 9*3600))

// solapiDocRequest is the body of POST /messages/v4/send as Solapi
// documents it, for the parts we use.
type solapiDocRequest struct {
	Message struct {
		To      string  `json:"to"`
		From    string  `json:"from"`
		Text    string  `json:"text"`
		Type    string  `json:"type"`
		Subject *string `json:"subject"`
	} `json:"message"`
}

var solapiAuthRE = regexp.MustCompile(`^HMAC-SHA256 apiKey=([^,]*), date=([^,]*), salt=([^,]*), signature=([0-9a-f]{64})$`)

// checkSolapiRequest checks a request against Solapi's documentation.
func checkSolapiRequest(t *testing.T, r *http.Request, want Message) {
	t.Helper()
	if r.Method != http.MethodPost || r.URL.Path != "/messages/v4/send" {
		t.Errorf("%s %s, want POST /messages/v4/send", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	m := solapiAuthRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		t.Fatalf("Authorization %q is not Solapi's HMAC-SHA256 form", r.Header.Get("Authorization"))
	}
	key, date, salt, sig := m[1], m[2], m[3], m[4]
	if key != solapiKey {
		t.Errorf("apiKey %q", key)
	}
	if d, err := time.Parse(time.RFC3339, date); err != nil || !d.Equal(solapiNow) || date != "2019-07-01T00:41:48Z" {
		t.Errorf("date %q (%v), want %s in UTC", date, err, solapiNow)
	}
	if len(salt) < 12 || len(salt) > 64 {
		t.Errorf("salt %q: want 12 to 64 characters", salt)
	}
	mac := hmac.New(sha256.New, []byte(solapiSecret))
	mac.Write([]byte(date + salt))
	if want := hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(sig), []byte(want)) {
		t.Errorf("signature %s, want %s", sig, want)
	}
	var body solapiDocRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	got := body.Message
	if got.To != want.To || got.From != want.From || got.Text != want.Text.Body || got.Type != want.Text.Type {
		t.Errorf("message %+v, want %+v", got, want)
	}
	switch {
	case want.Text.Type == TypeLMS && (got.Subject == nil || *got.Subject != LMSSubject):
		t.Errorf("LMS subject %v", got.Subject)
	case want.Text.Type == TypeSMS && got.Subject != nil:
		t.Errorf("SMS with a subject %q", *got.Subject)
	}
}

func newTestSolapi(url string, c *http.Client) Provider {
	return NewSolapi(SolapiOptions{APIKey: solapiKey, APISecret: solapiSecret, BaseURL: url, HTTPClient: c,
		Now: func() time.Time { return solapiNow }})
}

func TestSolapi(t *testing.T) {
	ok := `{"groupId":"G4V20190701094148ABCDEFGHIJKLMNO","to":"01012345678","from":"0212345678","type":"SMS",` +
		`"statusMessage":"정상 접수(이통사로 접수 예정) ","country":"82","messageId":"M4V20190701094148ABCDEFGHIJKLMNO",` +
		`"statusCode":"2000","accountId":"12925149"}`
	for _, tc := range []providerCase{
		{name: "SMS", text: smsText, status: 200, body: ok, wantID: "M4V20190701094148ABCDEFGHIJKLMNO"},
		{name: "LMS", text: lmsText, status: 200, body: ok, wantID: "M4V20190701094148ABCDEFGHIJKLMNO"},
		{name: "only a groupId", text: smsText, status: 200, body: `{"groupId":"G1","statusCode":"2000"}`, wantID: "G1"},
		{name: "invalid number", text: smsText, status: 400,
			body: `{"errorCode":"ValidationError","errorMessage":"수신번호 형식이 올바르지 않습니다."}`,
			err:  &errWant{permanent: true, status: 400, code: "ValidationError", contains: []string{"수신번호 형식이 올바르지 않습니다.", "fix the parent's phone number"}}},
		{name: "sender not registered", text: smsText, status: 400,
			body: `{"errorCode":"ValidationError","errorMessage":"발신번호 0212345678 은(는) 등록되지 않은 번호입니다."}`,
			err:  &errWant{permanent: true, status: 400, code: "ValidationError", contains: []string{"등록되지 않은", "Solapi console"}}},
		{name: "bad credentials", text: smsText, status: 401,
			body: `{"errorCode":"SignatureDoesNotMatch","errorMessage":"Signature does not match"}`,
			err:  &errWant{permanent: true, status: 401, code: "SignatureDoesNotMatch", contains: []string{"check sms.api_key"}}},
		{name: "clock skew", text: smsText, status: 403,
			body: `{"errorCode":"RequestTimeTooSkewed","errorMessage":"request time too skewed"}`,
			err:  &errWant{status: 403, code: "RequestTimeTooSkewed", contains: []string{"clock"}}},
		{name: "balance", text: smsText, status: 402, body: `{"errorCode":"NotEnoughBalance","errorMessage":"잔액 부족"}`,
			err: &errWant{status: 402, code: "NotEnoughBalance", contains: []string{"top up"}}},
		{name: "rate limited", text: smsText, status: 429, body: `{"errorCode":"TooManyRequests","errorMessage":"slow down"}`,
			err: &errWant{status: 429, code: "TooManyRequests"}},
		{name: "4xx without JSON", text: smsText, status: 404, body: `<html>Not Found</html>`,
			err: &errWant{permanent: true, status: 404, contains: []string{"<html>Not Found"}}},
		{name: "server error", text: smsText, status: 500, body: `{"errorCode":"InternalError","errorMessage":"oops"}`,
			err: &errWant{status: 500, code: "InternalError", contains: []string{"oops"}}},
		{name: "bad gateway page", text: smsText, status: 502, body: `<html><body>502 Bad Gateway</body></html>`,
			err: &errWant{status: 502, contains: []string{"502 Bad Gateway"}}},
		{name: "HTML with 200", text: smsText, status: 200, body: `<!DOCTYPE html><html><title>Maintenance</title></html>`,
			err: &errWant{status: 200, contains: []string{"not a JSON object", "<!DOCTYPE html>"}}},
		{name: "empty 200", text: smsText, status: 200, body: ``,
			err: &errWant{status: 200, contains: []string{"empty body"}}},
		{name: "JSON without an ID", text: smsText, status: 200, body: `{"statusCode":"2000"}`,
			err: &errWant{status: 200, contains: []string{"without a messageId"}}},
		{name: "error inside 200", text: smsText, status: 200, body: `{"errorCode":"UnknownError","errorMessage":"?"}`,
			err: &errWant{status: 200, code: "UnknownError"}},
		{name: "refused status code", text: smsText, status: 200,
			body: `{"groupId":"G1","messageId":"M1","statusCode":"3059","statusMessage":"변작된 발신번호"}`,
			err:  &errWant{permanent: true, status: 200, code: "3059", contains: []string{"변작된 발신번호", "M1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := message(tc.text)
			srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
				checkSolapiRequest(t, r, want)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			p := newTestSolapi(srv.URL, nil)
			r, err := p.Send(context.Background(), want)
			checkResult(t, "solapi", tc, r, err)
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

func TestSolapiHang(t *testing.T) { checkHang(t, "solapi", newTestSolapi, smsText) }

func TestSolapiRefusesBeforeSending(t *testing.T) {
	srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	checkRefusedBeforeSending(t, "solapi", newTestSolapi(srv.URL, nil), n)
	for _, p := range []Provider{
		NewSolapi(SolapiOptions{APISecret: solapiSecret, BaseURL: srv.URL}),
		NewSolapi(SolapiOptions{APIKey: solapiKey, BaseURL: srv.URL}),
		NewSolapi(SolapiOptions{APIKey: solapiKey, APISecret: solapiSecret, BaseURL: srv.URL, Salt: func() string { return "short" }}),
		NewSolapi(SolapiOptions{APIKey: solapiKey, APISecret: solapiSecret, BaseURL: "http://bad host/"}),
	} {
		_, err := p.Send(context.Background(), message(smsText))
		checkError(t, "solapi", err, true)
	}
	if n.Load() != 0 {
		t.Errorf("%d requests", n.Load())
	}
}

func TestSolapiDefaults(t *testing.T) {
	p := NewSolapi(SolapiOptions{APIKey: "k", APISecret: "s"}).(*solapi)
	if p.o.BaseURL != "https://api.solapi.com" || p.o.HTTPClient.Timeout != DefaultTimeout || p.Name() != "solapi" {
		t.Errorf("defaults %+v", p.o)
	}
	salts := map[string]bool{}
	for range 100 {
		s := p.o.Salt()
		if len(s) < 12 || len(s) > 64 || salts[s] {
			t.Fatalf("salt %q", s)
		}
		salts[s] = true
	}
}

// TestSolapiAuthorizationExample checks the signature against the shape of
// the documentation's example header, with a secret of our own.
func TestSolapiAuthorizationExample(t *testing.T) {
	got := solapiAuthorization("NCSAYU7YDBXYORXC", "secret", "2019-07-01T00:41:48Z", "jqsba2jxjnrjor")
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte("2019-07-01T00:41:48Zjqsba2jxjnrjor"))
	want := "HMAC-SHA256 apiKey=NCSAYU7YDBXYORXC, date=2019-07-01T00:41:48Z, salt=jqsba2jxjnrjor, signature=" + hex.EncodeToString(mac.Sum(nil))
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
