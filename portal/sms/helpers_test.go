package sms

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// at is 15:02 in Seoul.
var at = time.Date(2025, 3, 4, 6, 2, 0, 0, time.UTC)

var (
	smsText = Render(Arrival, "망원1동", "김민준", at)
	lmsText = Render(Departure, "서울특별시 마포구 망원1동 제2센터", "남궁아름다운별하늘", at)
)

func message(x Text) Message {
	return Message{Key: "job-0001", To: "01012345678", From: "0212345678", Text: x}
}

// errWant is what a failed Send must say.
type errWant struct {
	permanent bool
	status    int
	code      string
	contains  []string // in Reason or Error()
}

// providerCase is one exchange with a fake provider: the answer it gives
// and what Send must make of it.
type providerCase struct {
	name   string
	text   Text
	status int
	body   string
	wantID string
	err    *errWant // nil: success
}

// serve starts a loopback server that counts its requests.
func serve(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// hanging returns a handler that answers nothing until the client gives up
// or stop is called.
func hanging() (h http.HandlerFunc, stop func()) {
	done := make(chan struct{})
	return func(_ http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}, func() { close(done) }
}

// checkResult checks a Send's result against a case.
func checkResult(t *testing.T, provider string, tc providerCase, r Receipt, err error) {
	t.Helper()
	if tc.err == nil {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if r.ID != tc.wantID {
			t.Fatalf("Receipt.ID = %q, want %q", r.ID, tc.wantID)
		}
		return
	}
	e := checkError(t, provider, err, tc.err.permanent)
	if tc.err.status != 0 && e.Status != tc.err.status {
		t.Errorf("Status = %d, want %d", e.Status, tc.err.status)
	}
	if e.Code != tc.err.code {
		t.Errorf("Code = %q, want %q", e.Code, tc.err.code)
	}
	for _, s := range tc.err.contains {
		if !strings.Contains(e.Reason, s) && !strings.Contains(e.Error(), s) {
			t.Errorf("error %q does not say %q", e.Error(), s)
		}
	}
}

// checkError checks that err is an *Error from provider with the given
// permanence, and returns it.
func checkError(t *testing.T, provider string, err error, permanent bool) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Provider != provider {
		t.Errorf("Provider = %q, want %q", e.Provider, provider)
	}
	if e.Permanent != permanent || IsPermanent(err) != permanent {
		t.Errorf("Permanent = %v, want %v: %v", e.Permanent, permanent, err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, provider+": ") || !utf8.ValidString(msg) {
		t.Errorf("Error() = %q", msg)
	}
	return e
}

// checkHang sends to a server that never answers, once bounded by the
// context and once by the client's timeout; both must be retryable.
func checkHang(t *testing.T, name string, newProvider func(url string, c *http.Client) Provider, x Text) {
	t.Helper()
	h, stop := hanging()
	srv, _ := serve(t, h)
	t.Cleanup(stop) // runs before the server's Close, which waits for h
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := newProvider(srv.URL, nil).Send(ctx, message(x))
	e := checkError(t, name, err, false)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(e.Error(), "no answer in time") {
		t.Errorf("context deadline: %v", err)
	}
	_, err = newProvider(srv.URL, &http.Client{Timeout: 100 * time.Millisecond}).Send(context.Background(), message(x))
	if e := checkError(t, name, err, false); !strings.Contains(e.Error(), "no answer in time") {
		t.Errorf("client timeout: %v", err)
	}
}

// checkRefusedBeforeSending checks that messages no provider could send
// are refused for good without a request.
func checkRefusedBeforeSending(t *testing.T, name string, p Provider, n *atomic.Int32) {
	t.Helper()
	for _, m := range []Message{
		{Key: "k", To: "010-1234-5678", From: "0212345678", Text: smsText},
		{Key: "k", To: "", From: "0212345678", Text: smsText},
		{Key: "k", To: "01012345678", From: "", Text: smsText},
		{Key: "k", To: "01012345678", From: "0212345678", Text: Text{}},
		{Key: "k", To: "01012345678", From: "0212345678", Text: Text{Body: "x", Type: "MMS"}},
	} {
		_, err := p.Send(context.Background(), m)
		checkError(t, name, err, true)
	}
	if got := n.Load(); got != 0 {
		t.Errorf("%d requests for messages that should never be sent", got)
	}
}

func TestErrorFormat(t *testing.T) {
	inner := errors.New("connection reset")
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{&Error{Provider: "solapi", Status: 400, Code: "ValidationError", Reason: "발신번호 미등록", Permanent: true,
			what: "sender number refused", advice: "register it in the Solapi console"},
			"solapi: sender number refused (HTTP 400, code ValidationError): 발신번호 미등록: register it in the Solapi console"},
		{&Error{Provider: "nhn", Code: "-2019"}, "nhn: sending a text failed (code -2019): will retry"},
		{&Error{Provider: "webhook", Status: 500}, "webhook: sending a text failed (HTTP 500): will retry"},
		{&Error{Provider: "webhook", Err: inner, what: "no answer"}, "webhook: no answer: connection reset: will retry"},
		{&Error{Provider: "x", Permanent: true}, "x: sending a text failed"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q\nwant      %q", got, tc.want)
		}
	}
	e := &Error{Provider: "x", Err: inner}
	if !errors.Is(e, inner) || errors.Unwrap(e) != inner {
		t.Error("Unwrap does not reach the inner error")
	}
	if IsPermanent(nil) || IsPermanent(inner) || IsPermanent(e) || !IsPermanent(&Error{Permanent: true}) {
		t.Error("IsPermanent")
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
