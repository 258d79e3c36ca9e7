package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiumtap/internal/cli"
	"kiumtap/internal/logbuf"
	"kiumtap/internal/wait"
)

// make run's day, faster: every scripted outcome, a card bound at the door
// and taken into the portal's roster, every text, every event acknowledged.
func TestScriptedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a whole day")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-script", "../../testdata/demo/day.json", "-speed", "1500"}, strings.NewReader(""), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// (At 1500× a loaded machine may tap 이서연 after 13:45 too: her alert
	// would add a message; the counts are not pinned.)
	for _, want := range []string{"(failed 0); events acknowledged", "events acknowledged by the portal: 13 of 13",
		"알림톡 → 010-****-5678: [우리동네키움센터 망원1동] 김민준 어린이가 ", "알림톡 실패 (카카오톡 미사용자) → SMS 대체 발송 → 010-****-5432",
		"parents' messages by channel: alimtalk ", ", sms 3 (2 fell back from AlimTalk to SMS: not on KakaoTalk)",
		"not-arrived alerts (미등원): ", "정*준 (booked 13:00–18:00, no arrival by 13:45, guardians told 1; arrived 14:",
		"정서준 어린이가 13:00 이용 예약인데 아직 입실하지 않았습니다.", "자동 퇴실", "roster revision 2 applied",
		"카드 등록 완료 / 이*연", "takes in the binding", "cards bound at the door: 1", "등록 취소"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the day's output lacks %q:\n%s", want, out.String())
		}
	}
}

// The interactive demo: help lists the commands and says how to slow the
// day; a card bound during enrolment is reported as bound (it makes no
// tap: the old demo waited 5 s for one and said the terminal "did not
// decide"); an unknown word says so.
func TestInteractive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := strings.Join([]string{"help", "minjun", "nosuch", "teacher", "choose", "seoyeon-new", "quit"}, "\n") + "\n"
	var out logbuf.Buffer
	if err := run(ctx, []string{"-script", "../../testdata/demo/day.json", "-speed", "60", "-interactive"}, strings.NewReader(in), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	if n := strings.Count(got, "commands (then Enter):"); n != 2 {
		t.Errorf("the commands are listed %d times, want at the start and on help:\n%s", n, got)
	}
	for _, want := range []string{"  next ", "  choose ", "  help ", "  quit ", "minjun, minjun-spare, seojun", "-speed 60", "60× faster than real time",
		`no card or command "nosuch": help lists them`, "card seoyeon-new bound to c", "cards bound at the door: 1", "카드 등록 완료"} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "did not decide") {
		t.Errorf("a card bound was reported as not decided:\n%s", got)
	}
}

func TestFlags(t *testing.T) {
	var out logbuf.Buffer
	if err := run(context.Background(), []string{"-version"}, strings.NewReader(""), &out); err != nil || !strings.HasPrefix(out.String(), "kiumdemo "+cli.BuildVersion()) {
		t.Errorf("-version: %v, %q", err, out.String())
	}
	for _, args := range [][]string{{"-h"}, {"-help"}, {"-speed", "60", "-h"}} {
		if err := run(context.Background(), args, strings.NewReader(""), &out); cli.ExitCode(err) != 0 {
			t.Errorf("%q: %v, exit %d", args, err, cli.ExitCode(err))
		}
	}
	for _, args := range [][]string{{"day.json"}, {"-speed"}, {"-nosuch"}, {"-interactive", "extra"}} {
		if err := run(context.Background(), args, strings.NewReader(""), &out); cli.ExitCode(err) != 2 {
			t.Errorf("%q: %v, exit %d, want a usage error", args, err, cli.ExitCode(err))
		}
	}
}

// make run's staff page: served on the demo's bridge during the day, and
// after the summary until interrupted; the user "demo" logs in with the
// password printed and sees the day's refused taps with their fixes.
func TestStaffPage(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a whole day")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out logbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-script", "../../testdata/demo/day.json", "-speed", "1500", "-web", "127.0.0.1:0"}, strings.NewReader(""), &out)
	}()
	stays := regexp.MustCompile(`the staff page stays up at (http://127\.0\.0\.1:\d+/) \(user demo, password (\S+)\); Ctrl-C ends the demo`)
	var m []string
	wait.For(t, 100*time.Second, "the day's end with the staff page up", func() bool {
		m = stays.FindStringSubmatch(out.String())
		return m != nil
	})
	if !strings.Contains(out.String(), "the staff page: "+m[1]+" — log in as demo, password "+m[2]) {
		t.Errorf("the start does not say where the staff page is:\n%s", out.String())
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	res, err := browser.PostForm(m[1]+"login", url.Values{"user": {"demo"}, "password": {m[2]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"오늘", "노데이터", "FAQ Q21", "이용예정", "등록되지 않은 카드입니다"} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("the demo's 오늘 lacks %q: %d\n%s", want, res.StatusCode, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kiumdemo interrupted: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("kiumdemo did not end when interrupted")
	}
}
