package sms

import (
	"testing"
	"unicode/utf8"
)

// The fuzz targets feed arbitrary answers, under a spread of HTTP statuses,
// to each provider's answer parser. Seeds are in testdata/fuzz/<target>/
// and below.

var fuzzStatuses = []int{0, 100, 200, 201, 204, 302, 400, 401, 404, 408, 409, 429, 500, 502, 503, 999}

// checkParsed checks what must hold for any answer.
func checkParsed(t *testing.T, name string, status int, body []byte, r Receipt, e *Error, needID bool) {
	t.Helper()
	ok := status >= 200 && status < 300
	if e == nil {
		if !ok {
			t.Fatalf("HTTP %d %q accepted as %+v", status, body, r)
		}
		if needID && r.ID == "" {
			t.Fatalf("HTTP %d %q accepted without an ID", status, body)
		}
		if len(r.ID) > 2*snippetLen || !utf8.ValidString(r.ID) {
			t.Fatalf("receipt ID %q", r.ID)
		}
		return
	}
	if r != (Receipt{}) {
		t.Fatalf("both a receipt %+v and an error %v", r, e)
	}
	if e.Provider != name || e.Status != status {
		t.Fatalf("error %+v for HTTP %d", e, status)
	}
	msg := e.Error()
	if !utf8.ValidString(msg) || len(msg) > 4096 {
		t.Fatalf("error message of %d bytes: %q", len(msg), msg)
	}
	if status >= 500 && e.Permanent {
		t.Fatalf("HTTP %d permanent: %v", status, e)
	}
	if _, isObject := parseObject(body); ok && !isObject && len(body) > 0 && e.Permanent {
		t.Fatalf("garbage permanent: %v", e)
	}
}

func FuzzSolapiResponse(f *testing.F) {
	for _, s := range []string{
		`{"groupId":"G4V20200909142323YCYNARPEI60NHQW","to":"01000000001","from":"029302266","type":"SMS","statusMessage":"정상 접수(이통사로 접수 예정) ","country":"82","messageId":"M4V20200909142323EXWXP4U8YPSZRBB","statusCode":"2000","accountId":"12925149"}`,
		`{"errorCode":"ValidationError","errorMessage":"수신번호 형식이 올바르지 않습니다."}`,
		`{"errorCode":1,"errorMessage":{"a":[]},"messageId":null}`,
		`<html>502 Bad Gateway</html>`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range fuzzStatuses {
			r, e := parseSolapiResponse(status, body)
			checkParsed(t, "solapi", status, body, r, e, true)
		}
	})
}

func FuzzNHNResponse(f *testing.F) {
	for _, s := range []string{
		`{"header":{"isSuccessful":true,"resultCode":0,"resultMessage":"SUCCESS"},"body":{"data":{"requestId":"20180810100630ReZQ6KZzAH0","statusCode":"2","senderGroupingKey":"SenderGroupingKey","sendResultList":[{"recipientNo":"01012345678","resultCode":0,"resultMessage":"SUCCESS","recipientSeq":1,"recipientGroupingKey":"RecipientGroupingKey"}]}}}`,
		`{"header":{"isSuccessful":false,"resultCode":-2019,"resultMessage":"RecipientNo is invalid."}}`,
		`{"header":{"isSuccessful":true},"body":{"data":{"requestId":1,"sendResultList":[{"resultCode":"-2312"},7,null]}}}`,
		`{"header":null,"body":[]}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range fuzzStatuses {
			r, e := parseNHNResponse(status, body, "01012345678")
			checkParsed(t, "nhn", status, body, r, e, true)
		}
	})
}

func FuzzWebhookResponse(f *testing.F) {
	for _, s := range []string{
		`{"id":"hook-job-0001"}`,
		`{"error":"invalid number","code":"bad_number"}`,
		`{"id":{"nested":true}}`,
		`["ok"]`,
		` `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range fuzzStatuses {
			r, e := parseWebhookResponse(status, body)
			checkParsed(t, "webhook", status, body, r, e, false)
		}
	})
}

// checkDelivery checks what must hold of any delivery read.
func checkDelivery(t *testing.T, body []byte, d Delivery) {
	t.Helper()
	switch d.Channel {
	case "", ChannelAlimTalk, ChannelSMS, ChannelLMS:
	default:
		t.Fatalf("%q: channel %q", body, d.Channel)
	}
	if !d.Final && (d.Channel != "" || d.Failed != "" || d.Fallback != "") {
		t.Fatalf("%q: not final, yet %+v", body, d)
	}
	if d.Final && (d.Channel == "") == (d.Failed == "") {
		t.Fatalf("%q: final, but delivered by %q and failed %q", body, d.Channel, d.Failed)
	}
	for _, s := range []string{d.Fallback, d.Failed} {
		if !utf8.ValidString(s) || len(s) > 4*snippetLen {
			t.Fatalf("%q: %q", body, s)
		}
	}
}

// Solapi's AlimTalk answers: the send (as SMS's) and the lookup of a
// message's delivery.
func FuzzSolapiDelivery(f *testing.F) {
	for _, s := range []string{
		`{"messageList":{"M1":{"messageId":"M1","type":"ATA","statusCode":"4000","status":"COMPLETE","replacement":false}}}`,
		`{"messageList":{"M1":{"messageId":"M1","type":"ATA","statusCode":"3104","reason":"카카오톡 미사용자","replacement":true,"replacements":[{"type":"LMS","statusCode":"4000"}]}}}`,
		`{"messageList":{"M1":{"statusCode":"3000","replacement":0}}}`,
		`{"messageList":{"M1":{"statusCode":"3107","replacement":"1","type":"SMS"}}}`,
		`{"messageList":{"M1":[]}}`,
		`{"messageList":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, ok := parseObject(body)
		msg := o.obj("messageList").obj("M1")
		if !ok || msg == nil {
			return
		}
		checkDelivery(t, body, solapiDelivery(msg))
	})
}

// NHN Cloud's AlimTalk answers: the send, and the lookup of a message.
func FuzzNHNAlimTalk(f *testing.F) {
	for _, s := range []string{
		`{"header":{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true},"message":{"requestId":"R1","sendResults":[{"recipientSeq":1,"recipientNo":"01012345678","resultCode":0,"resultMessage":"SUCCESS"}]}}`,
		`{"header":{"resultCode":-3003,"resultMessage":"Template does not exist.","isSuccessful":false}}`,
		`{"header":{"resultCode":-1005,"isSuccessful":false}}`,
		`{"header":{"isSuccessful":true},"message":{"requestId":"R1","recipientSeq":1,"messageStatus":"FAILED","resultCode":"3019","resendStatus":"RSC04"}}`,
		`{"header":{"isSuccessful":true},"message":{"messageStatus":"COMPLETED","resultCode":"1000","resendStatus":"RSC01"}}`,
		`{"header":{"isSuccessful":true},"message":{"messageStatus":"FAILED","resultCode":"3008","resendStatus":"RSC05","resendResultCode":"-1"}}`,
		`{"header":[],"message":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, status := range fuzzStatuses {
			r, e := parseNHNAlimTalkResponse(answer{status: status, body: body}, "door/L/1/0", TypeSMS)
			checkParsed(t, "nhn", status, body, r, e, true)
		}
		if o, ok := parseObject(body); ok {
			checkDelivery(t, body, nhnDelivery(o.obj("message"), TypeLMS))
		}
	})
}
