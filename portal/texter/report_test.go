package texter_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"kiumtap/portal/sms"
	"kiumtap/portal/store"
	"kiumtap/portal/texter"
)

// kakaoish takes every text by AlimTalk and tells its delivery from a
// script per number: each Report takes the next answer.
type kakaoish struct {
	mu      sync.Mutex
	sends   map[string]int
	reports map[string][]sms.Delivery
	msgs    []sms.Message
}

func (*kakaoish) Name() string { return "kakaoish" }

func (k *kakaoish) Send(_ context.Context, m sms.Message) (sms.Receipt, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sends[m.Key]++
	k.msgs = append(k.msgs, m)
	return sms.Receipt{ID: "r-" + m.To, Channel: sms.ChannelAlimTalk}, nil
}

func (k *kakaoish) Report(_ context.Context, r sms.Receipt) (sms.Delivery, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	to := r.ID[2:]
	if len(k.reports[to]) == 0 {
		return sms.Delivery{}, errors.New("lookup refused")
	}
	d := k.reports[to][0]
	k.reports[to] = k.reports[to][1:]
	return d, nil
}

// A text taken by AlimTalk is recorded with how it went once the provider
// knows: delivered by AlimTalk; fallen back to SMS with Kakao's reason;
// failed; or, after ReportFor with no answer, sent with its channel
// unconfirmed. It is never handed to the provider twice; the message
// carries its kind and template variables.
func TestAlimTalkReported(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	q := queue(t, now, "01000000001", "01000000002", "01000000003", "01000000004")
	p := &kakaoish{sends: map[string]int{}, reports: map[string][]sms.Delivery{
		"01000000001": {{}, {Final: true, Channel: sms.ChannelAlimTalk}},
		"01000000002": {{Final: true, Channel: sms.ChannelSMS, Fallback: "카카오톡 미사용자 (3104)"}},
		"01000000003": {{Final: true, Failed: "알림톡 실패: 전화번호 오류 (3008), 문자 대체 발송도 실패 (-1)"}},
	}}
	tx, err := texter.New(texter.Options{Queue: q, Owner: "test", Provider: p, Now: func() time.Time { return now },
		ReportEvery: 10 * time.Second, ReportFor: time.Minute, Names: func(string, string) (string, string) { return "망원1동", "김민준" }})
	if err != nil {
		t.Fatal(err)
	}
	round := func() {
		t.Helper()
		jobs, err := q.Claim(context.Background(), "test", now, 10, texter.Lease)
		if err != nil {
			t.Fatal(err)
		}
		tx.SendClaimed(context.Background(), context.Background(), jobs)
	}
	round()
	for id, j := range states(t, q) {
		if j.State != store.JobPending || !j.Reporting || j.Channel != sms.ChannelAlimTalk || j.SentAt.IsZero() || !j.NextAt.Equal(now.Add(10*time.Second)) {
			t.Errorf("%s after the send: %+v", id, j)
		}
	}
	if m := p.msgs[0]; m.Kind != sms.Arrival || m.Vars[sms.VarChild] != "김민준" || m.Vars[sms.VarCentre] != "우리동네키움센터 망원1동" || m.Vars[sms.VarTime] != "09:00" {
		t.Errorf("the message: %+v", m)
	}
	for range 8 { // every 10 s for 80 s: past ReportFor
		now = now.Add(10 * time.Second)
		round()
	}
	got := states(t, q)
	for id, want := range map[string]store.Job{
		"d-0/0": {State: store.JobSent, Channel: sms.ChannelAlimTalk},
		"d-1/0": {State: store.JobSent, Channel: sms.ChannelSMS, Fallback: "카카오톡 미사용자 (3104)"},
		"d-2/0": {State: store.JobFailed, Channel: sms.ChannelAlimTalk, Reason: "알림톡 실패: 전화번호 오류 (3008), 문자 대체 발송도 실패 (-1)"},
		"d-3/0": {State: store.JobSent, Channel: sms.ChannelAlimTalk, Fallback: "전달 결과를 확인하지 못함"},
	} {
		j := got[id]
		if j.State != want.State || j.Channel != want.Channel || j.Fallback != want.Fallback || (want.Reason != "" && j.Reason != want.Reason) || j.Reporting {
			t.Errorf("%s: %s %s %q %q, want %+v", id, j.State, j.Channel, j.Fallback, j.Reason, want)
		}
	}
	for key, n := range p.sends {
		if n != 1 {
			t.Errorf("%s handed to the provider %d times", key, n)
		}
	}
}
