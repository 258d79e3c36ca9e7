package bridge_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/sms/smstest"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// Parents' texts through the bridge by AlimTalk (Solapi, faked on
// loopback): c1's arrival goes to its first guardian by AlimTalk, to its
// second, not on KakaoTalk, by the SMS fallback; each text is recorded
// with its channel and the fallback's reason, and counted by channel.
func TestAlimTalkThroughTheBridge(t *testing.T) {
	k := smstest.NewKakao()
	k.SolapiKey, k.SolapiSecret, k.PfID = "key", "secret", "KA01PF-kiumtap"
	k.Templates["TP-ARRIVAL"] = smstest.Template{Content: "[#{센터명}] #{아동명} 어린이가 #{시각}에 입실했습니다.", Approved: true}
	k.NotOnKakao["01098765432"] = true
	srv := httptest.NewServer(k)
	defer srv.Close()
	p := sms.NewSolapi(sms.SolapiOptions{APIKey: "key", APISecret: "secret", BaseURL: srv.URL, PfID: "KA01PF-kiumtap", Templates: sms.Templates{sms.Arrival: "TP-ARRIVAL"}})
	if err := p.(sms.TemplateChecker).CheckTemplates(context.Background()); err != nil {
		t.Fatal(err)
	}
	mq := startTestBroker(t)
	dir := t.TempDir()
	raw, _ := json.Marshal(testSource(firmware.DateOf(time.Now())))
	os.WriteFile(filepath.Join(dir, "mangwon1.json"), raw, 0o600)
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, stop := runBridge(t, bridge.Options{Broker: mq.URL(), Password: portalPass, ClientID: "kakao", Key: portalKey, DB: st.Contract(), SourceDir: dir,
		Provider: p, From: "0212345678", ReportEvery: 50 * time.Millisecond})
	defer stop()
	c := publisher(t, mq.URL())
	arrival := protocol.Event{V: 1, ID: "door-1", Centre: "mangwon1", Device: "door", Log: "L", Seq: 1, Time: time.Now(), ClockSynced: true, BootID: "b",
		Card: firmware.CardKey(centreKey, uids["c1"]), Child: "c1", Outcome: string(firmware.CheckIn), Reason: string(firmware.ReasonArrival), RosterRev: 1}
	var sentAt time.Time
	var jobs map[string]store.Job
	wait.For(t, 20*time.Second, "c1's two arrival texts recorded with their channels", func() bool {
		if time.Since(sentAt) > 2*time.Second {
			publishEvents(t, c, arrival)
			sentAt = time.Now()
		}
		jobs = map[string]store.Job{}
		st.Contract().Jobs(context.Background(), true, func(j store.Job) bool { jobs[j.To] = j; return true })
		return len(jobs) == 2 && jobs["01012345678"].State == store.JobSent && jobs["01098765432"].State == store.JobSent
	})
	if j := jobs["01012345678"]; j.Channel != sms.ChannelAlimTalk || j.Fallback != "" {
		t.Errorf("the guardian on KakaoTalk: %s %q", j.Channel, j.Fallback)
	}
	if j := jobs["01098765432"]; j.Channel != sms.ChannelSMS || j.Fallback != "카카오톡 미사용자 (3104)" {
		t.Errorf("the guardian not on KakaoTalk: %s %q", j.Channel, j.Fallback)
	}
	sent := k.Sent()
	if len(sent) != 2 || !strings.Contains(sent[0].Text+sent[1].Text, "김민준 어린이가") {
		t.Errorf("the provider delivered %+v", sent)
	}
	// The texter counts a text once its outcome is committed: a moment
	// after the store has it.
	wait.For(t, 10*time.Second, "the counts by channel: alimtalk 1, sms 1, 1 fell back", func() bool {
		s := b.Stats()
		return s.TextsBy[sms.ChannelAlimTalk] == 1 && s.TextsBy[sms.ChannelSMS] == 1 && s.TextsFellBack == 1
	})
	v, err := bridge.Texts(st.Contract(), "")
	month := time.Now().In(firmware.KST).Format("2006-01")
	if err != nil || v.Months[month][sms.ChannelAlimTalk] != 1 || v.Months[month][sms.ChannelSMS] != 1 || v.Months[month]["fallback"] != 1 {
		t.Errorf("the month's counts: %+v %v", v.Months, err)
	}
	if p := k.Problems(); len(p) > 0 {
		t.Errorf("requests not of the documented shape: %v", p)
	}
}
