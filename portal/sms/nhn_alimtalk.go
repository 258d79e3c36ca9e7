package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// NHN Cloud's AlimTalk (KakaoTalk Bizmessage, API v2.3), as its guide
// has it (see docs/providers.md for the sources):
//
//   - Sending: POST /alimtalk/v2.3/appkeys/{appkey}/messages with
//     X-Secret-Key and X-NC-API-IDEMPOTENCY-KEY (a second request with the
//     same key within 10 minutes fails, -1005: the first was taken);
//     {"senderKey","templateCode","recipientList":[{"recipientNo",
//     "templateParameter":{"이름":"값"},"resendParameter":{"isResend",
//     "resendType":"SMS"|"LMS","resendTitle","resendContent",
//     "resendSendNo"},"recipientGroupingKey"}]}. The fallback goes through
//     NHN's SMS service from resendSendNo, a number registered there.
//   - The answer: {"header":{"resultCode","resultMessage","isSuccessful"},
//     "message":{"requestId","sendResults":[{"recipientSeq","recipientNo",
//     "resultCode","resultMessage"}]}}, errors mostly as HTTP 200 with
//     isSuccessful false: -3003 no such template, -3004 a template
//     parameter wrong, -3005 the template not approved, -3010 the content
//     differs from the template, -2017 no such channel.
//   - The delivery, later: GET .../messages/{requestId}/{recipientSeq}:
//     "messageStatus" COMPLETED or FAILED, "resultCode" 1000 delivered,
//     3019 not a KakaoTalk user (3018, 3020, 3021: unreachable, AlimTalk
//     blocked, too old a KakaoTalk), and the fallback's "resendStatus"
//     RSC01 none, RSC02 to come, RSC03 going, RSC04 delivered, RSC05
//     failed. Which of SMS and LMS went is the resendType we sent.
//   - The templates: GET .../senders/{senderKey}/templates/{templateCode}:
//     {"templates":{"templateContent","status",...}}; status TSC03 is
//     approved.

var nhnKakaoCodes = map[string]string{
	"3015": "템플릿을 찾을 수 없음", "3016": "메시지 내용이 템플릿과 일치하지 않음",
	"3018": "메시지를 전송할 수 없음 (최근 카카오톡 미사용 등)", "3019": "카카오톡 미사용자",
	"3020": "알림톡 수신 차단", "3021": "카카오톡 최소 버전 미지원", "3022": "발송 가능한 시간이 아님",
	"3008": "전화번호 오류", "4132": "템플릿 변수 불일치",
}

type nhnResend struct {
	IsResend      bool   `json:"isResend"`
	ResendType    string `json:"resendType"`
	ResendTitle   string `json:"resendTitle,omitempty"`
	ResendContent string `json:"resendContent"`
	ResendSendNo  string `json:"resendSendNo"`
}

type nhnATARecipient struct {
	RecipientNo          string            `json:"recipientNo"`
	TemplateParameter    map[string]string `json:"templateParameter,omitempty"`
	ResendParameter      nhnResend         `json:"resendParameter"`
	RecipientGroupingKey string            `json:"recipientGroupingKey,omitempty"`
}

type nhnATARequest struct {
	SenderKey     string            `json:"senderKey"`
	TemplateCode  string            `json:"templateCode"`
	RecipientList []nhnATARecipient `json:"recipientList"`
}

func (n *nhn) alimTalkHeader() http.Header {
	return http.Header{"Content-Type": {"application/json;charset=UTF-8"}, "X-Secret-Key": {n.o.AlimTalk.SecretKey}}
}

func (n *nhn) alimTalkURL(path string) string {
	return n.o.AlimTalk.BaseURL + "/alimtalk/v2.3/appkeys/" + url.PathEscape(n.o.AlimTalk.AppKey) + path
}

func (n *nhn) sendAlimTalk(ctx context.Context, m Message, typ, template string) (Receipt, error) {
	at := n.o.AlimTalk
	if at.AppKey == "" || at.SecretKey == "" || at.SenderKey == "" {
		return Receipt{}, &Error{Provider: n.Name(), Permanent: true,
			what: "no AlimTalk app key, secret key or sender key", advice: "set alimtalk.app_key, alimtalk.secret_key and alimtalk.sender_key from the NHN Cloud KakaoTalk Bizmessage console"}
	}
	resend := nhnResend{IsResend: true, ResendType: typ, ResendContent: m.Text.Body, ResendSendNo: m.From}
	if typ == TypeLMS {
		resend.ResendTitle = m.Text.Subject
	}
	body, err := json.Marshal(nhnATARequest{SenderKey: at.SenderKey, TemplateCode: template,
		RecipientList: []nhnATARecipient{{RecipientNo: m.To, TemplateParameter: m.Vars, ResendParameter: resend, RecipientGroupingKey: nhnGroupingKey(m.Key)}}})
	if err != nil {
		return Receipt{}, &Error{Provider: n.Name(), Permanent: true, Err: err, what: "cannot encode the request"}
	}
	hdr := n.alimTalkHeader()
	if m.Key != "" {
		hdr.Set("X-NC-API-IDEMPOTENCY-KEY", nhnGroupingKey(m.Key))
	}
	a, e := post(ctx, n.o.HTTPClient, n.Name(), n.alimTalkURL("/messages"), hdr, body)
	if e != nil {
		return Receipt{}, e
	}
	r, e := parseNHNAlimTalkResponse(a, m.Key, resend.ResendType)
	if e != nil {
		return Receipt{}, e
	}
	return r, nil
}

// parseNHNAlimTalkResponse reads the answer to an AlimTalk send for one
// recipient: the receipt (the request ID, the recipient's sequence and
// the fallback's type), or why not.
func parseNHNAlimTalkResponse(a answer, key, resendType string) (Receipt, *Error) {
	const name = "nhn"
	o, ok := parseObject(a.body)
	h := o.obj("header")
	code, reason := clip(h.str("resultCode")), clip(h.str("resultMessage"))
	if !ok || h == nil {
		if a.status >= 400 && a.status < 500 && !retryableStatus(a.status) {
			return Receipt{}, &Error{Provider: name, Status: a.status, Reason: "answered: " + snippet(a.body), Permanent: true, what: "AlimTalk refused", advice: "check the alimtalk settings"}
		}
		return Receipt{}, garbage(name, a, "without a header")
	}
	if ok, _ := h.boolean("isSuccessful"); !ok {
		if code == "-1005" && key != "" && a.status >= 200 && a.status < 300 { // a repeat within 10 minutes: the first was taken
			return Receipt{ID: nhnDuplicate + key, Channel: ChannelAlimTalk}, nil
		}
		return Receipt{}, nhnAlimTalkError(a.status, code, reason)
	}
	if a.status < 200 || a.status >= 300 {
		return Receipt{}, garbage(name, a, "a success with HTTP "+fmt.Sprint(a.status))
	}
	msg := o.obj("message")
	rs := msg.list("sendResults")
	if len(rs) != 1 {
		return Receipt{}, garbage(name, a, "without one send result")
	}
	if rc := clip(rs[0].str("resultCode")); rc != "0" {
		return Receipt{}, nhnAlimTalkError(a.status, rc, clip(rs[0].str("resultMessage")))
	}
	id, seq := clip(msg.str("requestId")), clip(rs[0].str("recipientSeq"))
	if id == "" || seq == "" {
		return Receipt{}, garbage(name, a, "without a requestId and recipientSeq")
	}
	return Receipt{ID: id + "/" + seq + "/" + resendType, Channel: ChannelAlimTalk}, nil
}

// nhnDuplicate is a receipt's ID for a request NHN refused as a repeat of
// one taken within 10 minutes (-1005): taken, but not to be looked up.
const nhnDuplicate = "duplicate:"

func nhnAlimTalkError(status int, code, reason string) *Error {
	e := &Error{Provider: "nhn", Status: status, Code: code, Reason: reason, Permanent: true}
	switch code {
	case "-3003", "-3004", "-3005", "-3010", "-3347", "-2017", "-1006", "-1027":
		e.what, e.advice = "AlimTalk refused: the channel or the template does not fit", "check alimtalk.sender_key and alimtalk.templates against the NHN Cloud console (kiumbridge checks them at start)"
	case "-2502":
		e.what, e.advice = "the channel has no SMS fallback set up", "set up 대체 발송 for the channel in the NHN Cloud console, with a sender number registered in NHN SMS"
	case "-1000", "-1001":
		e.what, e.advice = "credentials refused", "check alimtalk.app_key and alimtalk.secret_key"
	case "-5000":
		e.what, e.advice = "recipient number refused", "fix the parent's phone number in the roster"
	case "-9999":
		e.Permanent, e.what = false, "NHN system error"
	default:
		e.what, e.advice = "AlimTalk refused", "check the reason, then the alimtalk settings"
	}
	if status >= 500 || retryableStatus(status) {
		e.Permanent, e.advice = false, "will retry"
	}
	return e
}

// Report asks NHN how an AlimTalk went.
func (n *nhn) Report(ctx context.Context, r Receipt) (Delivery, error) {
	if r.Channel != ChannelAlimTalk {
		return Delivery{Final: true, Channel: r.Channel}, nil
	}
	parts := strings.Split(r.ID, "/")
	if strings.HasPrefix(r.ID, nhnDuplicate) || len(parts) != 3 {
		// Taken by an earlier request with the same key, whose ID was
		// lost with its answer: its delivery cannot be looked up.
		return Delivery{Final: true, Channel: ChannelAlimTalk, Fallback: "결과 미확인: 같은 요청의 응답이 유실되어 조회할 수 없음"}, nil
	}
	a, e := get(ctx, n.o.HTTPClient, n.Name(), n.alimTalkURL("/messages/"+url.PathEscape(parts[0])+"/"+url.PathEscape(parts[1])), n.alimTalkHeader())
	if e != nil {
		return Delivery{}, e
	}
	o, ok := parseObject(a.body)
	if !ok {
		return Delivery{}, garbage(n.Name(), a, "with something that is not a JSON object")
	}
	if ok, _ := o.obj("header").boolean("isSuccessful"); !ok {
		h := o.obj("header")
		return Delivery{}, &Error{Provider: n.Name(), Status: a.status, Code: clip(h.str("resultCode")), Reason: clip(h.str("resultMessage")), what: "looking up an AlimTalk", advice: "will ask again"}
	}
	return nhnDelivery(o.obj("message"), parts[2]), nil
}

func nhnDelivery(msg jsonObject, resendType string) Delivery {
	code := clip(msg.str("resultCode"))
	why := nhnKakaoCodes[code]
	if why == "" {
		why = clip(msg.str("resultCodeName"))
	}
	if code != "" {
		why = strings.TrimSpace(fmt.Sprintf("%s (%s)", why, code))
	}
	if why == "" {
		why = "결과 코드 없음"
	}
	switch msg.str("resendStatus") {
	case "RSC04":
		ch := ChannelSMS
		if resendType == TypeLMS {
			ch = ChannelLMS
		}
		return Delivery{Final: true, Channel: ch, Fallback: why}
	case "RSC02", "RSC03":
		return Delivery{}
	case "RSC05":
		return Delivery{Final: true, Failed: fmt.Sprintf("알림톡 실패: %s, 문자 대체 발송도 실패 (%s)", why, clip(msg.str("resendResultCode")))}
	}
	switch msg.str("messageStatus") {
	case "COMPLETED":
		if code == "1000" || code == "" {
			return Delivery{Final: true, Channel: ChannelAlimTalk}
		}
		return Delivery{Final: true, Failed: why}
	case "FAILED", "CANCEL":
		return Delivery{Final: true, Failed: why}
	}
	return Delivery{}
}

// CheckTemplates checks each configured template at NHN: it exists, is
// approved (TSC03), is not blocked or dormant, and uses only the
// variables kiumbridge fills.
func (n *nhn) CheckTemplates(ctx context.Context) error {
	at := n.o.AlimTalk
	if len(at.Templates) == 0 {
		return nil
	}
	if at.AppKey == "" || at.SecretKey == "" || at.SenderKey == "" {
		return &TemplateError{Provider: n.Name(), Kind: "any", Template: "-", Problem: "has no AlimTalk keys: set alimtalk.app_key, alimtalk.secret_key and alimtalk.sender_key (NHN Cloud KakaoTalk Bizmessage console)"}
	}
	for _, k := range Kinds {
		code := at.Templates[k]
		if code == "" {
			continue
		}
		a, e := get(ctx, n.o.HTTPClient, n.Name(), n.alimTalkURL("/senders/"+url.PathEscape(at.SenderKey)+"/templates/"+url.PathEscape(code)), n.alimTalkHeader())
		if e != nil {
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", code, k, e)
		}
		o, ok := parseObject(a.body)
		h := o.obj("header")
		if !ok || h == nil {
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", code, k, garbage(n.Name(), a, "without a header"))
		}
		if ok, _ := h.boolean("isSuccessful"); !ok {
			rc := h.str("resultCode")
			if rc == "-3003" {
				return &TemplateError{Provider: n.Name(), Kind: string(k), Template: code, Problem: "does not exist for this sender key at NHN Cloud: check alimtalk.templates and alimtalk.sender_key"}
			}
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", code, k, nhnAlimTalkError(a.status, rc, clip(h.str("resultMessage"))))
		}
		t := o.obj("templates")
		if st := t.str("status"); st != "TSC03" {
			return &TemplateError{Provider: n.Name(), Kind: string(k), Template: code, Problem: fmt.Sprintf("is %s (%s), not approved (TSC03): Kakao sends only approved templates", st, t.str("statusName"))}
		}
		if b, _ := t.boolean("block"); b {
			return &TemplateError{Provider: n.Name(), Kind: string(k), Template: code, Problem: "is blocked at Kakao"}
		}
		if d, _ := t.boolean("dormant"); d {
			return &TemplateError{Provider: n.Name(), Kind: string(k), Template: code, Problem: "is dormant (휴면): wake it in the NHN Cloud console"}
		}
		if err := checkContent(n.Name(), k, code, t.str("templateContent")); err != nil {
			return err
		}
	}
	return nil
}
