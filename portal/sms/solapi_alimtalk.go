package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Solapi's AlimTalk, as its documentation and official SDKs have it (see
// docs/providers.md for the sources):
//
//   - Sending: the same POST /messages/v4/send with "type":"ATA" and
//     "kakaoOptions":{"pfId","templateId","variables","disableSms"}; the
//     variables' keys are written "#{이름}". With disableSms false (the
//     default) Solapi falls back to SMS/LMS from "from" for a recipient
//     KakaoTalk cannot reach. We send no "text": Solapi's staff advise
//     pfId, templateId and variables only (a text that differs from the
//     template is refused, 1043).
//   - Refusals at sending: 1041 (not a valid pfId), 1042 (not a valid
//     template ID), 1043 (the content differs from the template).
//   - The delivery, later: GET /messages/v4/list?messageId=ID answers
//     {"messageList":{"<ID>":{"statusCode","status","reason","type",
//     "replacement",...}}}: statusCode 4000 is delivered; 3104 "카카오톡
//     미사용자" and 3107 "72시간 이내 카카오톡 미사용자, 알림톡 차단" are
//     KakaoTalk's refusals; "replacement" true means the SMS/LMS fallback
//     went (its type in "replacements"[0].type, else "type").
//   - The templates: GET /kakao/v2/templates/{templateId} answers
//     {"templateId","content","status","variables":[{"name"}]}; status
//     APPROVED is the only one that sends.

// solapiKakaoCodes are Kakao's results as Solapi codes them.
var solapiKakaoCodes = map[string]string{
	"3101": "발신 프로필 키가 유효하지 않음", "3102": "친구 관계가 아님", "3103": "메시지와 템플릿 불일치",
	"3104": "카카오톡 미사용자", "3105": "미등록 템플릿", "3106": "유효하지 않은 채널",
	"3107": "72시간 이내 카카오톡 미사용자 또는 알림톡 차단", "3108": "메시지 발송 가능 시간이 아님",
}

type solapiKakaoOptions struct {
	PfID       string            `json:"pfId"`
	TemplateID string            `json:"templateId"`
	Variables  map[string]string `json:"variables,omitempty"`
	DisableSms bool              `json:"disableSms"`
}

type solapiATA struct {
	To           string             `json:"to"`
	From         string             `json:"from"`
	Type         string             `json:"type"`
	KakaoOptions solapiKakaoOptions `json:"kakaoOptions"`
}

func (s *solapi) auth() http.Header {
	date := s.o.Now().UTC().Format(time.RFC3339)
	return http.Header{
		"Authorization": {solapiAuthorization(s.o.APIKey, s.o.APISecret, date, s.o.Salt())},
		"Content-Type":  {"application/json"},
	}
}

func (s *solapi) sendAlimTalk(ctx context.Context, m Message, templateID string) (Receipt, error) {
	if s.o.APIKey == "" || s.o.APISecret == "" {
		return Receipt{}, &Error{Provider: s.Name(), Permanent: true,
			what: "no API key or secret", advice: "set sms.api_key and sms.api_secret from the Solapi console"}
	}
	vars := map[string]string{}
	for k, v := range m.Vars {
		vars["#{"+k+"}"] = v
	}
	body, err := json.Marshal(struct {
		Message solapiATA `json:"message"`
	}{solapiATA{To: m.To, From: m.From, Type: "ATA", KakaoOptions: solapiKakaoOptions{PfID: s.o.PfID, TemplateID: templateID, Variables: vars}}})
	if err != nil {
		return Receipt{}, &Error{Provider: s.Name(), Permanent: true, Err: err, what: "cannot encode the request"}
	}
	a, e := post(ctx, s.o.HTTPClient, s.Name(), s.o.BaseURL+"/messages/v4/send", s.auth(), body)
	if e != nil {
		return Receipt{}, e
	}
	r, e := parseSolapiResponse(a.status, a.body)
	if e != nil {
		switch e.Code {
		case "1041", "1042", "1043":
			e.Permanent = true
			e.what, e.advice = "AlimTalk refused: the channel (pfId) or the template does not fit", "check alimtalk.pf_id and alimtalk.templates against the Solapi console (kiumbridge checks them at start)"
		}
		return Receipt{}, e
	}
	r.Channel = ChannelAlimTalk
	return r, nil
}

// get sends one GET and reads the answer.
func get(ctx context.Context, c *http.Client, provider, u string, hdr http.Header) (answer, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, &Error{Provider: provider, Permanent: true, Err: err, what: "cannot build the request", advice: "check the provider URL in the configuration"}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, &Error{Provider: provider, Err: err, what: "no answer", advice: "will ask again"}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, &Error{Provider: provider, Status: resp.StatusCode, Err: err, what: "answer cut off", advice: "will ask again"}
	}
	return answer{status: resp.StatusCode, body: b}, nil
}

// Report asks Solapi how an AlimTalk went: delivered, fallen back to
// SMS/LMS (and why), or failed.
func (s *solapi) Report(ctx context.Context, r Receipt) (Delivery, error) {
	if r.Channel != ChannelAlimTalk {
		return Delivery{Final: true, Channel: r.Channel}, nil
	}
	a, e := get(ctx, s.o.HTTPClient, s.Name(), s.o.BaseURL+"/messages/v4/list?"+url.Values{"messageId": {r.ID}}.Encode(), s.auth())
	if e != nil {
		return Delivery{}, e
	}
	if a.status < 200 || a.status >= 300 {
		_, e := parseSolapiResponse(a.status, a.body)
		return Delivery{}, e
	}
	o, ok := parseObject(a.body)
	msg := o.obj("messageList").obj(r.ID)
	if !ok || msg == nil {
		return Delivery{}, garbage(s.Name(), a, "without the message "+r.ID)
	}
	return solapiDelivery(msg), nil
}

func solapiDelivery(msg jsonObject) Delivery {
	code, reason := clip(msg.str("statusCode")), clip(msg.str("reason"))
	replaced, _ := msg.boolean("replacement")
	if n := msg.str("replacement"); n == "1" {
		replaced = true
	}
	why := solapiKakaoCodes[code]
	if why == "" {
		why = reason
	}
	if why != "" && code != "" {
		why = fmt.Sprintf("%s (%s)", why, code)
	}
	if replaced {
		typ := ""
		if rs := msg.list("replacements"); len(rs) > 0 {
			typ = rs[0].str("type")
		}
		if typ == "" && !strings.EqualFold(msg.str("type"), "ATA") {
			typ = msg.str("type")
		}
		ch := ChannelSMS
		if strings.EqualFold(typ, TypeLMS) {
			ch = ChannelLMS
		}
		if why == "" {
			why = "알림톡 대체 발송"
		}
		return Delivery{Final: true, Channel: ch, Fallback: why}
	}
	switch {
	case code == "4000":
		return Delivery{Final: true, Channel: ChannelAlimTalk}
	case code == "" || code == "3000" || strings.HasPrefix(code, "2"):
		return Delivery{} // on its way: ask again
	}
	if why == "" {
		why = "code " + code
	}
	return Delivery{Final: true, Failed: why}
}

// CheckTemplates checks each configured template at Solapi: it exists,
// is approved, and uses only the variables kiumbridge fills.
func (s *solapi) CheckTemplates(ctx context.Context) error {
	if len(s.o.Templates) > 0 && s.o.PfID == "" {
		return &TemplateError{Provider: s.Name(), Kind: "any", Template: "-", Problem: "has no channel: set alimtalk.pf_id (the 카카오톡 채널's pfId in the Solapi console)"}
	}
	for _, k := range Kinds {
		id := s.o.Templates[k]
		if id == "" {
			continue
		}
		a, e := get(ctx, s.o.HTTPClient, s.Name(), s.o.BaseURL+"/kakao/v2/templates/"+url.PathEscape(id), s.auth())
		if e != nil {
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", id, k, e)
		}
		o, ok := parseObject(a.body)
		switch {
		case a.status == http.StatusNotFound || (ok && o.str("errorCode") == "NotFound"):
			return &TemplateError{Provider: s.Name(), Kind: string(k), Template: id, Problem: "does not exist at Solapi: check alimtalk.templates against the Solapi console"}
		case a.status < 200 || a.status >= 300:
			_, e := parseSolapiResponse(a.status, a.body)
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", id, k, e)
		case !ok:
			return fmt.Errorf("checking the AlimTalk template %q for %s messages: %w", id, k, garbage(s.Name(), a, "with something that is not a JSON object"))
		}
		if st := o.str("status"); st != "APPROVED" {
			return &TemplateError{Provider: s.Name(), Kind: string(k), Template: id, Problem: fmt.Sprintf("is %s, not APPROVED: Kakao sends only approved templates (검수 승인)", st)}
		}
		content := o.str("content")
		for _, v := range o.list("variables") {
			content += " #{" + strings.TrimSuffix(strings.TrimPrefix(v.str("name"), "#{"), "}") + "}"
		}
		if err := checkContent(s.Name(), k, id, content); err != nil {
			return err
		}
	}
	return nil
}
