package sms

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// What the NHN Cloud SMS API v3.0 guide and result code table say, as
// checked when this was written (docs.nhncloud.com, Notification > SMS >
// API v3.0 Guide and Result Code):
//
//   - SMS: POST /sms/v3.0/appKeys/{appKey}/sender/sms; LMS ("장문 MMS"
//     without attachments): POST /sms/v3.0/appKeys/{appKey}/sender/mms. Both
//     with "Content-Type: application/json;charset=UTF-8" and
//     "X-Secret-Key: <secret>". Body: {"body","sendNo","recipientList":
//     [{"recipientNo"}],"senderGroupingKey"} plus "title" for mms.
//   - senderGroupingKey ("발신자 그룹키", up to 100 characters) is a label
//     the send-list APIs can search by. It is not an idempotency key: NHN
//     does not refuse a second request with the same grouping key. We put
//     Message.Key there so that a text whose answer was lost can be found
//     in the console. The X-NC-API-IDEMPOTENCY-KEY header NHN documents for
//     its KakaoTalk Bizmessage APIs is not documented for SMS v3.0, so it is
//     not sent: with NHN a lost answer can still mean a duplicate text.
//   - Answer: HTTP 200 with {"header":{"isSuccessful","resultCode",
//     "resultMessage"},"body":{"data":{"requestId","statusCode",
//     "senderGroupingKey","sendResultList":[{"recipientNo","resultCode",
//     "resultMessage","recipientSeq","recipientGroupingKey"}]}}}. Most
//     errors also come as HTTP 200 with isSuccessful false; each recipient
//     has its own resultCode (0 is success).
//   - The guide now names https://sms.api.nhncloudservice.com as the
//     domain; the default below is the older https://api-sms.cloud.toast.com,
//     which the v3.0 guide also listed. Set BaseURL to switch.

// NHNOptions configures NewNHN.
type NHNOptions struct {
	AppKey    string // required: the SMS service's app key
	SecretKey string // required: the SMS service's secret key
	// BaseURL is the API's address; default "https://api-sms.cloud.toast.com".
	BaseURL string
	// HTTPClient sends the requests; default a client with a 10 s timeout
	// that does not follow redirects.
	HTTPClient *http.Client
	// AlimTalk is NHN Cloud's KakaoTalk Bizmessage AlimTalk, a service of
	// its own with its own keys: a message of a kind with a template goes
	// by AlimTalk, falling back to SMS/LMS at NHN; others by SMS/LMS.
	AlimTalk NHNAlimTalk
}

// NHNAlimTalk configures NHN Cloud's AlimTalk (API v2.3).
type NHNAlimTalk struct {
	AppKey    string // the KakaoTalk Bizmessage service's app key
	SecretKey string // its secret key
	SenderKey string // the KakaoTalk channel's sender key (발신 키)
	// BaseURL is the API's address; default
	// "https://kakaotalk-bizmessage.api.nhncloudservice.com".
	BaseURL   string
	Templates Templates // template codes
}

type nhn struct{ o NHNOptions }

var _ Provider = (*nhn)(nil)

// NewNHN returns a provider sending through NHN Cloud's SMS API v3.0: SMS
// through /sender/sms, LMS through /sender/mms with a title and no
// attachment.
//
// NHN documents no idempotency key for SMS: Message.Key is sent as
// senderGroupingKey so that a text can be found in the console, but when an
// answer is lost after NHN accepted the text, the retry texts the parent
// again.
func NewNHN(o NHNOptions) Provider {
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.BaseURL == "" {
		o.BaseURL = "https://api-sms.cloud.toast.com"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultClient()
	}
	o.AlimTalk.BaseURL = strings.TrimRight(o.AlimTalk.BaseURL, "/")
	if o.AlimTalk.BaseURL == "" {
		o.AlimTalk.BaseURL = "https://kakaotalk-bizmessage.api.nhncloudservice.com"
	}
	return &nhn{o}
}

func (n *nhn) Name() string { return "nhn" }

// nhnRequest is the body of POST .../sender/sms and .../sender/mms.
type nhnRequest struct {
	Title             string         `json:"title,omitempty"` // mms only
	Body              string         `json:"body"`
	SendNo            string         `json:"sendNo"`
	SenderGroupingKey string         `json:"senderGroupingKey,omitempty"`
	RecipientList     []nhnRecipient `json:"recipientList"`
}

type nhnRecipient struct {
	RecipientNo string `json:"recipientNo"`
}

// nhnGroupingKey fits a key into senderGroupingKey's 100 characters: a
// longer key is replaced by its SHA-256.
func nhnGroupingKey(key string) string {
	if len(key) <= 100 {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256-" + hex.EncodeToString(sum[:])
}

func (n *nhn) Send(ctx context.Context, m Message) (Receipt, error) {
	typ, e := checkMessage(n.Name(), m, false)
	if e != nil {
		return Receipt{}, e
	}
	if code := n.o.AlimTalk.Templates[m.Kind]; code != "" {
		return n.sendAlimTalk(ctx, m, typ, code)
	}
	if n.o.AppKey == "" || n.o.SecretKey == "" {
		return Receipt{}, &Error{Provider: n.Name(), Permanent: true,
			what: "no app key or secret key", advice: "set sms.app_key and sms.secret_key from the NHN Cloud SMS console"}
	}
	req := nhnRequest{
		Body:              m.Text.Body,
		SendNo:            m.From,
		SenderGroupingKey: nhnGroupingKey(m.Key),
		RecipientList:     []nhnRecipient{{RecipientNo: m.To}},
	}
	path := "/sender/sms"
	if typ == TypeLMS {
		path, req.Title = "/sender/mms", m.Text.Subject
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Receipt{}, &Error{Provider: n.Name(), Permanent: true, Err: err, what: "cannot encode the request"}
	}
	hdr := http.Header{
		"Content-Type": {"application/json;charset=UTF-8"},
		"X-Secret-Key": {n.o.SecretKey},
	}
	u := n.o.BaseURL + "/sms/v3.0/appKeys/" + url.PathEscape(n.o.AppKey) + path
	a, e := post(ctx, n.o.HTTPClient, n.Name(), u, hdr, body)
	if e != nil {
		return Receipt{}, e
	}
	r, e := parseNHNResponse(a.status, a.body, m.To)
	if e != nil {
		return Receipt{}, e
	}
	r.Channel = ChannelOf(m.Text)
	return r, nil
}

// parseNHNResponse reads the answer to a send request for one recipient,
// to.
func parseNHNResponse(status int, body []byte, to string) (Receipt, *Error) {
	const name = "nhn"
	a := answer{status: status, body: body}
	o, isObject := parseObject(body)
	h := o.obj("header")
	code, reason := clip(h.str("resultCode")), clip(h.str("resultMessage"))
	if status < 200 || status >= 300 {
		if code == "" && reason == "" {
			reason = "answered: " + snippet(body)
			if len(bytes.TrimSpace(body)) == 0 {
				reason = "answered with an empty body"
			}
		}
		permanent := status >= 400 && status < 500 && !retryableStatus(status)
		return Receipt{}, nhnError(status, code, reason, permanent)
	}
	if !isObject {
		return Receipt{}, garbage(name, a, "with something that is not a JSON object")
	}
	ok, present := h.boolean("isSuccessful")
	if !present {
		return Receipt{}, garbage(name, a, "without header.isSuccessful")
	}
	if !ok {
		return Receipt{}, nhnError(status, code, reason, nhnPermanent(code))
	}
	data := o.obj("body").obj("data")
	id := clip(data.str("requestId"))
	// One recipient per request: its result decides.
	results := data.list("sendResultList")
	var mine jsonObject
	for _, r := range results {
		if r.str("recipientNo") == to {
			mine = r
			break
		}
	}
	if mine == nil && len(results) > 0 {
		mine = results[0]
	}
	if rc := clip(mine.str("resultCode")); rc != "" && rc != "0" {
		e := nhnError(status, rc, clip(mine.str("resultMessage")), nhnPermanent(rc))
		if id != "" {
			e.what += " (request " + id + ")"
		}
		return Receipt{}, e
	}
	if data.str("statusCode") == "3" { // 3: 요청 실패
		return Receipt{}, &Error{Provider: name, Status: status, Code: "statusCode 3", Reason: "request failed (요청 실패) without a recipient result",
			what: "text not accepted", advice: "will retry; look the request up in the NHN Cloud console (request " + id + ")"}
	}
	if id == "" {
		return Receipt{}, garbage(name, a, "isSuccessful but without body.data.requestId")
	}
	return Receipt{ID: id}, nil
}

// nhnPermanent classifies NHN's result codes (the SMS "API Result Code"
// table). Codes for a refused recipient or sender, bad credentials, a text
// the API will never take, or a request we built wrong are permanent;
// system errors, limits that lift with time and unknown codes are not (a
// request with isSuccessful false was not accepted, so retrying it cannot
// duplicate a text).
func nhnPermanent(code string) bool {
	switch code {
	case "4", // parameter validation failed
		"-1000", "-1001", "-1002", "-1003", "-1004", "-1007", "-1008", // app key, project, member, IP
		"-1006",          // message type invalid
		"-2001", "-2018", // recipient missing
		"-2019",                            // recipient number invalid
		"-2014", "-2015", "-2023", "-2024", // title or body empty, too long, bad characters, LMS abroad
		"-2044", "-2045", "-2046", // country refused
		"-2312", "-2313", // sender number not registered, blocked
		"-6001",                            // recipient opted out (080 수신거부)
		"-9995", "-9996", "-9997", "-9998", // API version, content type, JSON, API missing
		"-8000": // authentication wording missing
		return true
	}
	return false
}

// nhnError describes an NHN error answer and says what to do.
func nhnError(status int, code, reason string, permanent bool) *Error {
	e := &Error{Provider: "nhn", Status: status, Code: code, Reason: reason, Permanent: permanent}
	switch code {
	case "-2312", "-2313":
		e.what, e.advice = "sender number not registered or blocked", "register sms.from as a sender number (발신번호 사전 등록) in the NHN Cloud SMS console"
	case "-2001", "-2018", "-2019":
		e.what, e.advice = "recipient number refused", "fix the parent's phone number in the roster"
	case "-6001":
		e.what, e.advice = "recipient opted out", "the parent refused texts from this number (080 수신거부)"
	case "-1000", "-1001", "-1002", "-1003", "-1007", "-1008":
		e.what, e.advice = "app key or project refused", "check sms.app_key and the SMS service in the NHN Cloud console"
	case "-1004":
		e.what, e.advice = "portal's address not allowed", "allow the portal's IP address in the NHN Cloud SMS console"
	case "-2015", "-2023":
		e.what, e.advice = "text refused", "the text is too long or has characters EUC-KR cannot carry; render it with sms.Render"
	case "-9999", "-2021":
		e.what = "NHN Cloud system error"
	default:
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.what, e.advice = "credentials refused", "check sms.app_key and sms.secret_key against the NHN Cloud console"
		case status == http.StatusTooManyRequests:
			e.what = "rate limited"
		case permanent:
			e.what, e.advice = "text refused", "check the reason, then fix the roster or the configuration"
		default:
			e.what = "text not accepted"
		}
	}
	return e
}
