package smstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kakao is a fake of the two Korean providers' AlimTalk and SMS APIs, as
// their documentation has them (docs/providers.md): Solapi's
// /messages/v4/send (SMS, LMS and ATA with kakaoOptions),
// /messages/v4/list and /kakao/v2/templates/{id}, and NHN Cloud's AlimTalk
// v2.3 /alimtalk/v2.3/appkeys/{appkey}/messages (with its idempotency
// header), its single-message lookup and its template lookup, and NHN's
// SMS v3.0. It checks each request's documented shape (Problems lists
// what did not fit), keeps the templates (a message that does not fit
// its template is refused as the provider refuses it), and delivers: by
// AlimTalk, or, for a recipient in NotOnKakao, by the SMS/LMS fallback
// with Kakao's "not a KakaoTalk user" (Solapi 3104, NHN 3019). A message's
// first lookup says it is on its way; the next, how it went.
//
// Serve it with httptest.NewServer; it uses no testing.T, so the demo
// runs it too.
type Kakao struct {
	// Solapi's key and secret (the signature is checked), its channel;
	// NHN's AlimTalk app key, secret key and sender key; NHN SMS's
	// app key and secret key.
	SolapiKey, SolapiSecret, PfID   string
	NHNAppKey, NHNSecret, SenderKey string
	NHNSMSAppKey, NHNSMSSecret      string
	Templates                       map[string]Template // by ID (Solapi) or code (NHN)
	NotOnKakao                      map[string]bool     // recipients KakaoTalk cannot reach

	mu       sync.Mutex
	problems []string
	sent     []Sent
	msgs     map[string]*kakaoMsg
	keys     map[string]bool // NHN idempotency keys seen
	n        int
}

// Template is an AlimTalk template as the provider keeps it.
type Template struct {
	Content string
	// Approved: Solapi APPROVED, NHN TSC03; otherwise pending inspection.
	Approved bool
}

// Sent is a message the fake took.
type Sent struct {
	Provider string // solapi or nhn
	Key      string // NHN's idempotency key
	To       string
	// Channel is how it was delivered: alimtalk, sms or lms; Text what
	// the recipient read.
	Channel, Text string
	// Fallback: KakaoTalk could not reach the recipient.
	Fallback bool
}

type kakaoMsg struct {
	sent    Sent
	lookups int
}

// NewKakao returns the fake with no templates.
func NewKakao() *Kakao {
	return &Kakao{Templates: map[string]Template{}, NotOnKakao: map[string]bool{}, msgs: map[string]*kakaoMsg{}, keys: map[string]bool{}}
}

// Problems are the requests that did not have the documented shape.
func (k *Kakao) Problems() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.problems)
}

// Sent are the messages taken, in order.
func (k *Kakao) Sent() []Sent { k.mu.Lock(); defer k.mu.Unlock(); return slices.Clone(k.sent) }

func (k *Kakao) problem(format string, a ...any) {
	k.problems = append(k.problems, fmt.Sprintf(format, a...))
}

var (
	varRe        = regexp.MustCompile(`#\{([^{}]*)\}`)
	digitsRe     = regexp.MustCompile(`^[0-9]+$`)
	solapiAuthRe = regexp.MustCompile(`^HMAC-SHA256 apiKey=([^,]+), date=([^,]+), salt=([^,]+), signature=([0-9a-f]+)$`)
)

func varsOf(content string) []string {
	var out []string
	for _, m := range varRe.FindAllStringSubmatch(content, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

func render(content string, vars map[string]string) string {
	return varRe.ReplaceAllStringFunc(content, func(m string) string { return vars[m[2:len(m)-1]] })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ServeHTTP answers both providers' APIs.
func (k *Kakao) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/messages/v4/") || strings.HasPrefix(p, "/kakao/v2/"):
		if !k.solapiAuthorized(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"errorCode": "InvalidAPIKey", "errorMessage": "unauthorized"})
			return
		}
		switch {
		case r.Method == http.MethodPost && p == "/messages/v4/send":
			k.solapiSend(w, body)
		case r.Method == http.MethodGet && p == "/messages/v4/list":
			k.solapiList(w, r.URL.Query().Get("messageId"))
		case r.Method == http.MethodGet && strings.HasPrefix(p, "/kakao/v2/templates/"):
			k.solapiTemplate(w, strings.TrimPrefix(p, "/kakao/v2/templates/"))
		default:
			k.problem("solapi: %s %s is no documented API", r.Method, p)
			writeJSON(w, http.StatusNotFound, map[string]string{"errorCode": "NotFound", "errorMessage": "no such API"})
		}
	case strings.HasPrefix(p, "/alimtalk/v2.3/appkeys/"):
		k.nhn(w, r, body)
	case strings.HasPrefix(p, "/sms/v3.0/appKeys/"):
		k.nhnSMS(w, r, body)
	default:
		k.problem("%s %s is no documented API", r.Method, p)
		http.NotFound(w, r)
	}
}

func (k *Kakao) solapiAuthorized(r *http.Request) bool {
	m := solapiAuthRe.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != k.SolapiKey || len(m[3]) < 12 || len(m[3]) > 64 {
		k.problem("solapi: Authorization %q is not HMAC-SHA256 apiKey=<key>, date=, salt= (12–64), signature=", r.Header.Get("Authorization"))
		return false
	}
	mac := hmac.New(sha256.New, []byte(k.SolapiSecret))
	mac.Write([]byte(m[2] + m[3]))
	if hex.EncodeToString(mac.Sum(nil)) != m[4] {
		k.problem("solapi: a wrong signature")
		return false
	}
	return true
}

func (k *Kakao) deliver(provider, key, to, template string, vars map[string]string, fallbackType, fallbackText string) *kakaoMsg {
	k.n++
	s := Sent{Provider: provider, Key: key, To: to, Channel: "alimtalk", Text: render(k.Templates[template].Content, vars)}
	if k.NotOnKakao[to] {
		s.Channel, s.Text, s.Fallback = strings.ToLower(fallbackType), fallbackText, true
	}
	k.sent = append(k.sent, s)
	return &kakaoMsg{sent: s}
}

func (k *Kakao) solapiSend(w http.ResponseWriter, body []byte) {
	var req struct {
		Message struct {
			To, From, Text, Type, Subject string
			KakaoOptions                  *struct {
				PfID       string            `json:"pfId"`
				TemplateID string            `json:"templateId"`
				Variables  map[string]string `json:"variables"`
				DisableSms bool              `json:"disableSms"`
			} `json:"kakaoOptions"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		k.problem("solapi: the body is not {\"message\":{...}}: %v", err)
		writeJSON(w, http.StatusBadRequest, map[string]string{"errorCode": "ValidationError", "errorMessage": err.Error()})
		return
	}
	m := req.Message
	if !digitsRe.MatchString(m.To) || !digitsRe.MatchString(m.From) {
		k.problem("solapi: to %q or from %q not digits", m.To, m.From)
	}
	k.n++
	id := fmt.Sprintf("M4V%08d", k.n)
	answer := map[string]string{"groupId": "G4V" + id[3:], "messageId": id, "to": m.To, "from": m.From, "type": m.Type, "statusCode": "2000", "statusMessage": "정상 접수(이통사로 접수 예정) "}
	switch m.Type {
	case "SMS", "LMS":
		if m.KakaoOptions != nil || m.Text == "" || (m.Type == "LMS") != (m.Subject != "") {
			k.problem("solapi: an %s with kakaoOptions, no text, or a subject that does not fit its type: %s", m.Type, body)
		}
		k.sent = append(k.sent, Sent{Provider: "solapi", To: m.To, Channel: strings.ToLower(m.Type), Text: m.Text})
	case "ATA":
		ko := m.KakaoOptions
		if ko == nil || ko.PfID != k.PfID {
			k.problem("solapi: an ATA without kakaoOptions or with another pfId: %s", body)
			answer["statusCode"], answer["statusMessage"] = "1041", "유효한 플러스 친구 값이 아닙니다"
			writeJSON(w, http.StatusOK, answer)
			return
		}
		t, ok := k.Templates[ko.TemplateID]
		if !ok {
			answer["statusCode"], answer["statusMessage"] = "1042", "유효한 템플릿 아이디가 아닙니다"
			writeJSON(w, http.StatusOK, answer)
			return
		}
		vars := map[string]string{}
		for key, v := range ko.Variables {
			if !strings.HasPrefix(key, "#{") || !strings.HasSuffix(key, "}") {
				k.problem("solapi: the variable key %q is not written #{name}", key)
			}
			vars[strings.TrimSuffix(strings.TrimPrefix(key, "#{"), "}")] = v
		}
		if !slices.Equal(slices.Sorted(maps.Keys(vars)), varsOf(t.Content)) || (m.Text != "" && m.Text != render(t.Content, vars)) {
			answer["statusCode"], answer["statusMessage"] = "1043", "등록한 템플릿과 내용이 다릅니다"
			writeJSON(w, http.StatusOK, answer)
			return
		}
		if ko.DisableSms {
			k.problem("solapi: disableSms set: no fallback")
		}
		typ := "SMS"
		if len(render(t.Content, vars)) > 90 {
			typ = "LMS"
		}
		msg := k.deliver("solapi", "", m.To, ko.TemplateID, vars, typ, render(t.Content, vars))
		k.msgs[id] = msg
	default:
		k.problem("solapi: type %q", m.Type)
	}
	writeJSON(w, http.StatusOK, answer)
}

func (k *Kakao) solapiList(w http.ResponseWriter, id string) {
	m := k.msgs[id]
	if m == nil {
		writeJSON(w, http.StatusOK, map[string]any{"messageList": map[string]any{}, "limit": 20})
		return
	}
	m.lookups++
	entry := map[string]any{"messageId": id, "type": "ATA", "to": m.sent.To, "statusCode": "3000", "status": "SENDING", "replacement": false}
	if m.lookups > 1 {
		entry["statusCode"], entry["status"] = "4000", "COMPLETE"
		if m.sent.Fallback {
			entry["statusCode"], entry["reason"], entry["replacement"] = "3104", "카카오톡 미사용자", true
			entry["replacements"] = []map[string]string{{"type": strings.ToUpper(m.sent.Channel), "statusCode": "4000"}}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messageList": map[string]any{id: entry}, "limit": 20})
}

func (k *Kakao) solapiTemplate(w http.ResponseWriter, id string) {
	t, ok := k.Templates[id]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"errorCode": "NotFound", "errorMessage": "템플릿을 찾을 수 없습니다"})
		return
	}
	st := "INSPECTING"
	if t.Approved {
		st = "APPROVED"
	}
	var vars []map[string]string
	for _, v := range varsOf(t.Content) {
		vars = append(vars, map[string]string{"name": "#{" + v + "}"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"templateId": id, "channelId": k.PfID, "content": t.Content, "status": st, "variables": vars})
}

type nhnHeader struct {
	ResultCode    int    `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
	IsSuccessful  bool   `json:"isSuccessful"`
}

func nhnFail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{code, msg, false}})
}

func (k *Kakao) nhn(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/alimtalk/v2.3/appkeys/"), "/")
	if parts[0] != k.NHNAppKey {
		nhnFail(w, -1000, "Invalid appKey")
		return
	}
	if r.Header.Get("X-Secret-Key") != k.NHNSecret {
		nhnFail(w, -1001, "Invalid secretKey")
		return
	}
	switch {
	case r.Method == http.MethodPost && len(parts) == 2 && parts[1] == "messages":
		k.nhnSend(w, r, body)
	case r.Method == http.MethodGet && len(parts) == 4 && parts[1] == "messages":
		m := k.msgs[parts[2]+"/"+parts[3]]
		if m == nil {
			nhnFail(w, -4, "no such message")
			return
		}
		m.lookups++
		msg := map[string]any{"requestId": parts[2], "recipientSeq": parts[3], "recipientNo": m.sent.To, "messageStatus": "READY", "resendStatus": ""}
		if m.lookups > 1 {
			msg["messageStatus"], msg["resultCode"], msg["resultCodeName"], msg["resendStatus"] = "COMPLETED", "1000", "성공", "RSC01"
			if m.sent.Fallback {
				msg["messageStatus"], msg["resultCode"], msg["resultCodeName"], msg["resendStatus"], msg["resendResultCode"] = "FAILED", "3019", "카카오톡 유저가 아님", "RSC04", "1000"
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{0, "SUCCESS", true}, "message": msg})
	case r.Method == http.MethodGet && len(parts) == 5 && parts[1] == "senders" && parts[3] == "templates":
		if parts[2] != k.SenderKey {
			nhnFail(w, -2017, "Not exist plus friend.")
			return
		}
		t, ok := k.Templates[parts[4]]
		if !ok {
			nhnFail(w, -3003, "Template does not exist.")
			return
		}
		st, name := "TSC02", "검수 중"
		if t.Approved {
			st, name = "TSC03", "승인"
		}
		writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{0, "SUCCESS", true},
			"templates": map[string]any{"senderKey": k.SenderKey, "templateCode": parts[4], "templateContent": t.Content, "status": st, "statusName": name, "block": false, "dormant": false}})
	default:
		k.problem("nhn: %s %s is no documented API", r.Method, r.URL.Path)
		nhnFail(w, -4, "no such API")
	}
}

func (k *Kakao) nhnSend(w http.ResponseWriter, r *http.Request, body []byte) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		nhnFail(w, -9996, "Content-type is not application/json")
		return
	}
	key := r.Header.Get("X-NC-API-IDEMPOTENCY-KEY")
	if key == "" {
		k.problem("nhn: a send without X-NC-API-IDEMPOTENCY-KEY")
	} else if k.keys[key] {
		nhnFail(w, -1005, "The same 'X-NC-API-IDEMPOTENCY-KEY' was used within the last 10 minute.")
		return
	}
	var req struct {
		SenderKey     string `json:"senderKey"`
		TemplateCode  string `json:"templateCode"`
		RecipientList []struct {
			RecipientNo       string            `json:"recipientNo"`
			TemplateParameter map[string]string `json:"templateParameter"`
			ResendParameter   *struct {
				IsResend      bool   `json:"isResend"`
				ResendType    string `json:"resendType"`
				ResendTitle   string `json:"resendTitle"`
				ResendContent string `json:"resendContent"`
				ResendSendNo  string `json:"resendSendNo"`
			} `json:"resendParameter"`
			RecipientGroupingKey string `json:"recipientGroupingKey"`
		} `json:"recipientList"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.RecipientList) != 1 {
		k.problem("nhn: the body is not {senderKey, templateCode, recipientList:[one]}: %s", body)
		nhnFail(w, 4, "invalid parameter")
		return
	}
	if req.SenderKey != k.SenderKey {
		nhnFail(w, -2017, "Not exist plus friend.")
		return
	}
	t, ok := k.Templates[req.TemplateCode]
	if !ok {
		nhnFail(w, -3003, "Template does not exist.")
		return
	}
	if !t.Approved {
		nhnFail(w, -3005, "Template is not approved.")
		return
	}
	rc := req.RecipientList[0]
	for key := range rc.TemplateParameter {
		if strings.Contains(key, "#") || strings.Contains(key, "{") {
			k.problem("nhn: the templateParameter key %q is not the bare name", key)
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(rc.TemplateParameter)), varsOf(t.Content)) {
		nhnFail(w, -3004, "Please check template parameter.")
		return
	}
	rp := rc.ResendParameter
	if rp == nil || !rp.IsResend || (rp.ResendType != "SMS" && rp.ResendType != "LMS") || rp.ResendContent == "" || !digitsRe.MatchString(rp.ResendSendNo) || (rp.ResendType == "LMS") != (rp.ResendTitle != "") {
		k.problem("nhn: resendParameter not {isResend: true, resendType SMS|LMS, resendContent, resendSendNo, resendTitle for LMS}: %s", body)
	}
	if !digitsRe.MatchString(rc.RecipientNo) {
		nhnFail(w, -5000, "invalid recipientNo")
		return
	}
	if key != "" {
		k.keys[key] = true
	}
	fbType, fbText := "SMS", ""
	if rp != nil {
		fbType, fbText = rp.ResendType, rp.ResendContent
	}
	msg := k.deliver("nhn", key, rc.RecipientNo, req.TemplateCode, rc.TemplateParameter, fbType, fbText)
	rid := fmt.Sprintf("2026120110000%06d", k.n)
	k.msgs[rid+"/1"] = msg
	writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{0, "SUCCESS", true},
		"message": map[string]any{"requestId": rid, "sendResults": []map[string]any{{"recipientSeq": 1, "recipientNo": rc.RecipientNo, "resultCode": 0, "resultMessage": "SUCCESS", "recipientGroupingKey": rc.RecipientGroupingKey}}}})
}

func (k *Kakao) nhnSMS(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/sms/v3.0/appKeys/"), "/")
	if len(parts) != 3 || parts[0] != k.NHNSMSAppKey || r.Header.Get("X-Secret-Key") != k.NHNSMSSecret || parts[1] != "sender" {
		writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{-1000, "Invalid appKey or secret", false}})
		return
	}
	var req struct {
		Title, Body, SendNo string
		RecipientList       []struct{ RecipientNo string } `json:"recipientList"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.RecipientList) != 1 {
		k.problem("nhn sms: %s", body)
	}
	ch := "sms"
	if parts[2] == "mms" {
		ch = "lms"
	}
	to := ""
	if len(req.RecipientList) > 0 {
		to = req.RecipientList[0].RecipientNo
	}
	k.n++
	k.sent = append(k.sent, Sent{Provider: "nhn", To: to, Channel: ch, Text: req.Body})
	writeJSON(w, http.StatusOK, map[string]any{"header": nhnHeader{0, "SUCCESS", true},
		"body": map[string]any{"data": map[string]any{"requestId": fmt.Sprintf("sms-%d", k.n), "statusCode": "2",
			"sendResultList": []map[string]any{{"recipientNo": to, "resultCode": 0, "resultMessage": "SUCCESS", "recipientSeq": 1}}}}})
}
