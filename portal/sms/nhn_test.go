package sms

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const (
	nhnAppKey    = "AppKey-1234"
	nhnSecretKey = "secret-key-5678"
)

// nhnDocRequest is the body of the SMS v3.0 send requests as NHN Cloud
// documents it, for the parts we use.
type nhnDocRequest struct {
	Title             *string `json:"title"`
	Body              string  `json:"body"`
	SendNo            string  `json:"sendNo"`
	SenderGroupingKey string  `json:"senderGroupingKey"`
	RecipientList     []struct {
		RecipientNo string `json:"recipientNo"`
	} `json:"recipientList"`
}

// checkNHNRequest checks a request against NHN Cloud's documentation.
func checkNHNRequest(t *testing.T, r *http.Request, want Message) {
	t.Helper()
	path := "/sms/v3.0/appKeys/" + nhnAppKey + "/sender/sms"
	if want.Text.Type == TypeLMS {
		path = "/sms/v3.0/appKeys/" + nhnAppKey + "/sender/mms"
	}
	if r.Method != http.MethodPost || r.URL.Path != path {
		t.Errorf("%s %s, want POST %s", r.Method, r.URL.Path, path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if k := r.Header.Get("X-Secret-Key"); k != nhnSecretKey {
		t.Errorf("X-Secret-Key %q", k)
	}
	var body nhnDocRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if body.Body != want.Text.Body || body.SendNo != want.From || body.SenderGroupingKey != want.Key ||
		len(body.RecipientList) != 1 || body.RecipientList[0].RecipientNo != want.To {
		t.Errorf("body %+v, want %+v", body, want)
	}
	switch {
	case want.Text.Type == TypeLMS && (body.Title == nil || *body.Title != LMSSubject):
		t.Errorf("LMS title %v", body.Title)
	case want.Text.Type == TypeSMS && body.Title != nil:
		t.Errorf("SMS with a title %q", *body.Title)
	}
}

func newTestNHN(url string, c *http.Client) Provider {
	return NewNHN(NHNOptions{AppKey: nhnAppKey, SecretKey: nhnSecretKey, BaseURL: url, HTTPClient: c})
}

// nhnAnswer builds an NHN answer.
func nhnAnswer(ok bool, code int, msg string, data string) string {
	h, _ := json.Marshal(map[string]any{"isSuccessful": ok, "resultCode": code, "resultMessage": msg})
	if data == "" {
		return `{"header":` + string(h) + `}`
	}
	return `{"header":` + string(h) + `,"body":{"data":` + data + `}}`
}

func TestNHN(t *testing.T) {
	accepted := `{"requestId":"20180810100630ReZQ6KZzAH0","statusCode":"2","senderGroupingKey":"job-0001",` +
		`"sendResultList":[{"recipientNo":"01012345678","resultCode":0,"resultMessage":"SUCCESS","recipientSeq":1,"recipientGroupingKey":null}]}`
	recipientRefused := `{"requestId":"20180810100630ReZQ6KZzAH0","statusCode":"2","sendResultList":` +
		`[{"recipientNo":"01012345678","resultCode":-2019,"resultMessage":"RecipientNo is invalid.","recipientSeq":1}]}`
	for _, tc := range []providerCase{
		{name: "SMS", text: smsText, status: 200, body: nhnAnswer(true, 0, "SUCCESS", accepted), wantID: "20180810100630ReZQ6KZzAH0"},
		{name: "LMS", text: lmsText, status: 200, body: nhnAnswer(true, 0, "SUCCESS", accepted), wantID: "20180810100630ReZQ6KZzAH0"},
		{name: "invalid number, HTTP 200", text: smsText, status: 200, body: nhnAnswer(false, -2019, "RecipientNo is invalid.", ""),
			err: &errWant{permanent: true, status: 200, code: "-2019", contains: []string{"RecipientNo is invalid.", "fix the parent's phone number"}}},
		{name: "invalid number, HTTP 400", text: smsText, status: 400, body: nhnAnswer(false, -2019, "RecipientNo is invalid.", ""),
			err: &errWant{permanent: true, status: 400, code: "-2019", contains: []string{"RecipientNo is invalid."}}},
		{name: "sender not registered", text: smsText, status: 200, body: nhnAnswer(false, -2312, "Not regist sendno.", ""),
			err: &errWant{permanent: true, status: 200, code: "-2312", contains: []string{"Not regist sendno.", "register sms.from"}}},
		{name: "bad app key", text: smsText, status: 200, body: nhnAnswer(false, -1000, "Invalid appKey.", ""),
			err: &errWant{permanent: true, status: 200, code: "-1000", contains: []string{"check sms.app_key"}}},
		{name: "recipient refused inside a successful request", text: smsText, status: 200, body: nhnAnswer(true, 0, "SUCCESS", recipientRefused),
			err: &errWant{permanent: true, status: 200, code: "-2019", contains: []string{"RecipientNo is invalid.", "20180810100630ReZQ6KZzAH0"}}},
		{name: "system error", text: smsText, status: 200, body: nhnAnswer(false, -9999, "System error. Please inquire at support@toast.com.", ""),
			err: &errWant{status: 200, code: "-9999", contains: []string{"System error"}}},
		{name: "unknown code", text: smsText, status: 200, body: nhnAnswer(false, -31337, "new failure", ""),
			err: &errWant{status: 200, code: "-31337", contains: []string{"new failure"}}},
		{name: "request failed", text: smsText, status: 200, body: nhnAnswer(true, 0, "SUCCESS", `{"requestId":"R1","statusCode":"3","sendResultList":[]}`),
			err: &errWant{status: 200, code: "statusCode 3", contains: []string{"R1"}}},
		{name: "unauthorised", text: smsText, status: 401, body: `{"header":{"isSuccessful":false,"resultCode":-1001,"resultMessage":"Invalid secretKey."}}`,
			err: &errWant{permanent: true, status: 401, code: "-1001", contains: []string{"Invalid secretKey."}}},
		{name: "server error", text: smsText, status: 500, body: nhnAnswer(false, -9999, "System error.", ""),
			err: &errWant{status: 500, code: "-9999"}},
		{name: "gateway page", text: smsText, status: 503, body: `<html>Service Unavailable</html>`,
			err: &errWant{status: 503, contains: []string{"Service Unavailable"}}},
		{name: "HTML with 200", text: smsText, status: 200, body: `<html><body>login</body></html>`,
			err: &errWant{status: 200, contains: []string{"not a JSON object", "<html><body>login"}}},
		{name: "empty 200", text: smsText, status: 200, body: "",
			err: &errWant{status: 200, contains: []string{"empty body"}}},
		{name: "JSON without a header", text: smsText, status: 200, body: `{"body":{"data":{"requestId":"R1"}}}`,
			err: &errWant{status: 200, contains: []string{"isSuccessful"}}},
		{name: "success without a requestId", text: smsText, status: 200, body: nhnAnswer(true, 0, "SUCCESS", `{}`),
			err: &errWant{status: 200, contains: []string{"requestId"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := message(tc.text)
			srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
				checkNHNRequest(t, r, want)
				w.Header().Set("Content-Type", "application/json;charset=UTF-8")
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			r, err := newTestNHN(srv.URL, nil).Send(context.Background(), want)
			checkResult(t, "nhn", tc, r, err)
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

func TestNHNHang(t *testing.T) { checkHang(t, "nhn", newTestNHN, lmsText) }

func TestNHNRefusesBeforeSending(t *testing.T) {
	srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {})
	checkRefusedBeforeSending(t, "nhn", newTestNHN(srv.URL, nil), n)
	for _, p := range []Provider{
		NewNHN(NHNOptions{SecretKey: nhnSecretKey, BaseURL: srv.URL}),
		NewNHN(NHNOptions{AppKey: nhnAppKey, BaseURL: srv.URL}),
	} {
		_, err := p.Send(context.Background(), message(smsText))
		checkError(t, "nhn", err, true)
	}
	if n.Load() != 0 {
		t.Errorf("%d requests", n.Load())
	}
}

func TestNHNDefaults(t *testing.T) {
	p := NewNHN(NHNOptions{AppKey: "a", SecretKey: "s", BaseURL: "https://example.test/"}).(*nhn)
	if p.o.BaseURL != "https://example.test" || p.o.HTTPClient.Timeout != DefaultTimeout || p.Name() != "nhn" {
		t.Errorf("options %+v", p.o)
	}
	if p := NewNHN(NHNOptions{}).(*nhn); p.o.BaseURL != "https://api-sms.cloud.toast.com" {
		t.Errorf("default BaseURL %q", p.o.BaseURL)
	}
}

func TestNHNGroupingKey(t *testing.T) {
	if got := nhnGroupingKey("job-1"); got != "job-1" {
		t.Errorf("short key became %q", got)
	}
	long := strings.Repeat("k", 101)
	got := nhnGroupingKey(long)
	if len(got) > 100 || got != nhnGroupingKey(long) || got == nhnGroupingKey(long+"x") {
		t.Errorf("long key became %q", got)
	}
}
