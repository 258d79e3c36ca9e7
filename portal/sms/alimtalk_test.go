package sms_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"kiumtap/portal/sms"
	"kiumtap/portal/sms/smstest"
)

var kst = time.FixedZone("KST", 9*3600)

const arrivalTemplate = "[#{센터명}] #{아동명} 어린이가 #{시각}에 입실했습니다."

// fakeKakao serves the fake providers with an approved arrival template
// (ID "TP-ARRIVAL" at Solapi, code "ARRIVAL" at NHN), one pending
// inspection ("TP-PENDING"), one with a variable we cannot fill
// ("TP-ADDRESS"); 01099990000 is not on KakaoTalk.
func fakeKakao(t *testing.T) (*smstest.Kakao, string) {
	k := smstest.NewKakao()
	k.SolapiKey, k.SolapiSecret, k.PfID = "key", "secret", "KA01PF-test"
	k.NHNAppKey, k.NHNSecret, k.SenderKey = "at-app", "at-secret", strings.Repeat("s", 40)
	k.NHNSMSAppKey, k.NHNSMSSecret = "sms-app", "sms-secret"
	for _, id := range []string{"TP-ARRIVAL", "ARRIVAL"} {
		k.Templates[id] = smstest.Template{Content: arrivalTemplate, Approved: true}
	}
	k.Templates["TP-PENDING"] = smstest.Template{Content: arrivalTemplate}
	k.Templates["TP-ADDRESS"] = smstest.Template{Content: "#{아동명} 어린이가 #{주소}에서 입실했습니다.", Approved: true}
	k.NotOnKakao["01099990000"] = true
	srv := httptest.NewServer(k)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if p := k.Problems(); len(p) > 0 {
			t.Errorf("requests not of the documented shape:\n%s", strings.Join(p, "\n"))
		}
	})
	return k, srv.URL
}

func providers(url string, templates map[string]sms.Templates) map[string]sms.Provider {
	return map[string]sms.Provider{
		"solapi": sms.NewSolapi(sms.SolapiOptions{APIKey: "key", APISecret: "secret", BaseURL: url, PfID: "KA01PF-test", Templates: templates["solapi"]}),
		"nhn": sms.NewNHN(sms.NHNOptions{AppKey: "sms-app", SecretKey: "sms-secret", BaseURL: url,
			AlimTalk: sms.NHNAlimTalk{AppKey: "at-app", SecretKey: "at-secret", SenderKey: strings.Repeat("s", 40), BaseURL: url, Templates: templates["nhn"]}}),
	}
}

var arrivals = map[string]sms.Templates{"solapi": {sms.Arrival: "TP-ARRIVAL"}, "nhn": {sms.Arrival: "ARRIVAL"}}

func message(to string, k sms.Kind, key string) sms.Message {
	at := time.Date(2026, 12, 1, 15, 2, 0, 0, kst)
	return sms.Message{Key: key, To: to, From: "0212345678", Kind: k, Text: sms.Render(k, "망원1동", "김민준", at), Vars: sms.Vars("망원1동", "김민준", at)}
}

// report asks until the provider is done with the text.
func report(t *testing.T, p sms.Provider, r sms.Receipt) sms.Delivery {
	t.Helper()
	for range 5 {
		d, err := p.(sms.Reporter).Report(context.Background(), r)
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		if d.Final {
			return d
		}
	}
	t.Fatal("the delivery never became final")
	return sms.Delivery{}
}

// Each provider's AlimTalk: a guardian on KakaoTalk gets the template
// filled in by AlimTalk; one who is not gets the SMS fallback, with
// Kakao's reason; a kind without a template goes by SMS; the templates
// pass the start-up check.
func TestAlimTalkAndFallback(t *testing.T) {
	for name := range providers("", nil) {
		t.Run(name, func(t *testing.T) {
			k, url := fakeKakao(t)
			p := providers(url, arrivals)[name]
			ctx := context.Background()
			if err := p.(sms.TemplateChecker).CheckTemplates(ctx); err != nil {
				t.Fatalf("the templates: %v", err)
			}
			r, err := p.Send(ctx, message("01012345678", sms.Arrival, "door/L/1/0"))
			if err != nil || r.Channel != sms.ChannelAlimTalk || r.ID == "" {
				t.Fatalf("an AlimTalk: %+v %v", r, err)
			}
			if d := report(t, p, r); d.Channel != sms.ChannelAlimTalk || d.Fallback != "" || d.Failed != "" {
				t.Errorf("delivered: %+v", d)
			}
			r, err = p.Send(ctx, message("01099990000", sms.Arrival, "door/L/1/1"))
			if err != nil || r.Channel != sms.ChannelAlimTalk {
				t.Fatalf("to a guardian not on KakaoTalk: %+v %v", r, err)
			}
			d := report(t, p, r)
			want := map[string]string{"solapi": "카카오톡 미사용자 (3104)", "nhn": "카카오톡 미사용자 (3019)"}[name]
			if d.Channel != sms.ChannelSMS || d.Fallback != want {
				t.Errorf("the fallback: %+v, want sms because %q", d, want)
			}
			r, err = p.Send(ctx, message("01012345678", sms.Departure, "door/L/2/0"))
			if err != nil || r.Channel != sms.ChannelSMS {
				t.Errorf("a kind without a template: %+v %v", r, err)
			}
			sent := k.Sent()
			if len(sent) != 3 || sent[0].Text != "[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다." || sent[0].Channel != "alimtalk" ||
				sent[1].Channel != "sms" || !sent[1].Fallback || !strings.Contains(sent[1].Text, "입실했습니다") || sent[2].Channel != "sms" || !strings.Contains(sent[2].Text, "퇴실") {
				t.Errorf("the provider delivered %+v", sent)
			}
		})
	}
}

// A template that does not fit is a configuration error at start-up: one
// with a variable kiumbridge cannot fill, one not approved, one unknown.
func TestTemplateMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, solapi, nhn, want string
	}{
		{"a variable we cannot fill", "TP-ADDRESS", "TP-ADDRESS", "uses #{주소}, which kiumbridge cannot fill"},
		{"not approved", "TP-PENDING", "TP-PENDING", "not"},
		{"unknown", "TP-NONE", "NONE", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := fakeKakao(t)
			for name, p := range providers(url, map[string]sms.Templates{"solapi": {sms.Arrival: tc.solapi}, "nhn": {sms.Arrival: tc.nhn}}) {
				err := p.(sms.TemplateChecker).CheckTemplates(context.Background())
				var te *sms.TemplateError
				if !errors.As(err, &te) || te.Kind != "arrival" || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v, want a template error saying %q", name, err, tc.want)
				}
			}
		})
	}
}

// A template changed at the provider after the start (its variables no
// longer ours): the provider refuses the text for good, saying to check
// the templates.
func TestTemplateChangedAfterStart(t *testing.T) {
	k, url := fakeKakao(t)
	ps := providers(url, arrivals)
	for _, id := range []string{"TP-ARRIVAL", "ARRIVAL"} {
		k.Templates[id] = smstest.Template{Content: "#{아동명} 입실 (#{반})", Approved: true}
	}
	for name, p := range ps {
		_, err := p.Send(context.Background(), message("01012345678", sms.Arrival, "door/L/1/0"))
		if !sms.IsPermanent(err) || !strings.Contains(err.Error(), "alimtalk.templates") {
			t.Errorf("%s: %v, want a permanent refusal naming alimtalk.templates", name, err)
		}
	}
}

// Provider errors: a 5xx is retried; NHN's repeat of a key within 10
// minutes (-1005) means the first was taken: not sent again, its delivery
// unknown.
func TestAlimTalkProviderErrors(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errorCode":"InternalError","errorMessage":"down"}`, http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for name, p := range providers(down.URL, arrivals) {
		if _, err := p.Send(context.Background(), message("01012345678", sms.Arrival, "k")); err == nil || sms.IsPermanent(err) {
			t.Errorf("%s down: %v, want a retryable error", name, err)
		}
	}
	k, url := fakeKakao(t)
	p := providers(url, arrivals)["nhn"]
	m := message("01012345678", sms.Arrival, "door/L/1/0")
	if _, err := p.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r, err := p.Send(context.Background(), m) // the answer was lost: sent again
	if err != nil || r.Channel != sms.ChannelAlimTalk {
		t.Fatalf("a repeat within 10 minutes: %+v %v", r, err)
	}
	if d := report(t, p, r); !strings.Contains(d.Fallback, "결과 미확인") {
		t.Errorf("the repeat's delivery: %+v", d)
	}
	if n := len(k.Sent()); n != 1 {
		t.Errorf("the guardian got %d messages, want 1", n)
	}
}
