package sms

import "testing"

// Each delivery a provider reports, as recorded: delivered by AlimTalk,
// fallen back to SMS or LMS (with Kakao's reason), failed with and
// without a fallback, and still on its way.
func TestDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name, provider, body string
		want                 Delivery
	}{
		{"solapi delivered", "solapi", `{"statusCode":"4000","type":"ATA","replacement":false}`, Delivery{Final: true, Channel: ChannelAlimTalk}},
		{"solapi on its way", "solapi", `{"statusCode":"3000","type":"ATA"}`, Delivery{}},
		{"solapi fell back to LMS", "solapi", `{"statusCode":"3107","type":"ATA","replacement":true,"replacements":[{"type":"LMS"}]}`,
			Delivery{Final: true, Channel: ChannelLMS, Fallback: "72시간 이내 카카오톡 미사용자 또는 알림톡 차단 (3107)"}},
		{"solapi failed, no fallback (disableSms)", "solapi", `{"statusCode":"3104","type":"ATA","replacement":false}`, Delivery{Final: true, Failed: "카카오톡 미사용자 (3104)"}},
		{"nhn delivered", "nhn", `{"messageStatus":"COMPLETED","resultCode":"1000","resendStatus":"RSC01"}`, Delivery{Final: true, Channel: ChannelAlimTalk}},
		{"nhn falling back", "nhn", `{"messageStatus":"FAILED","resultCode":"3019","resendStatus":"RSC03"}`, Delivery{}},
		{"nhn fell back to LMS", "nhn", `{"messageStatus":"FAILED","resultCode":"3020","resendStatus":"RSC04"}`, Delivery{Final: true, Channel: ChannelLMS, Fallback: "알림톡 수신 차단 (3020)"}},
		{"nhn fallback failed", "nhn", `{"messageStatus":"FAILED","resultCode":"3019","resendStatus":"RSC05","resendResultCode":"-2019"}`,
			Delivery{Final: true, Failed: "알림톡 실패: 카카오톡 미사용자 (3019), 문자 대체 발송도 실패 (-2019)"}},
		{"nhn failed, no fallback", "nhn", `{"messageStatus":"FAILED","resultCode":"3008","resendStatus":"RSC01"}`, Delivery{Final: true, Failed: "전화번호 오류 (3008)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := parseObject([]byte(tc.body))
			var got Delivery
			if tc.provider == "solapi" {
				got = solapiDelivery(o)
			} else {
				got = nhnDelivery(o, TypeLMS)
			}
			if got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
}
