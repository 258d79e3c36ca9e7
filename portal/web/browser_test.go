package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/xuri/excelize/v2"

	"kiumtap/firmware"
	"kiumtap/internal/browsertest"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/protocol"
)

// In real headless Chromium: staff log in, see the day, and a tap stored
// afterwards appears on 오늘 without a reload; a 노데이터 tap shows its
// reason and fix. The pages are saved as PNG screenshots
// (docs/screenshots, shown in the README) when KIUMTAP_SCREENSHOTS names
// a directory.
func TestBrowserToday(t *testing.T) {
	s := newSite(t)
	s.tap("mangwon1", "c2", "no_data", "not_a_usage_day")
	ctx := browsertest.New(t, 30*time.Second)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		dir := os.Getenv("KIUMTAP_SCREENSHOTS")
		if dir == "" {
			return
		}
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("a screenshot of %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("the login page", chromedp.Navigate(s.ts.URL+"/c/mangwon1/today"), chromedp.WaitVisible(`input[name=user]`))
	shot("login")
	run("a wrong password",
		chromedp.SendKeys(`input[name=user]`, "mangwon.kim"),
		chromedp.SendKeys(`input[name=password]`, "not-the-password"),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`.error`))
	msg := text("the refusal", chromedp.Text(`.error`))
	if !strings.Contains(msg, "비밀번호가 맞지 않습니다") {
		t.Errorf("a wrong password says %q", msg)
	}
	run("logging in",
		chromedp.SendKeys(`input[name=user]`, "mangwon.kim"),
		chromedp.SendKeys(`input[name=password]`, "password-of-kim"),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#board`))
	refused := text("the refused taps", chromedp.Text(`#refused`))
	for _, want := range []string{"노데이터", "이용일 아님", "FAQ Q21"} {
		if !strings.Contains(refused, want) {
			t.Errorf("the refused taps lack %q: %s", want, refused)
		}
	}
	loaded := text("the page loaded", chromedp.Evaluate[string](`String(performance.timeOrigin)`))
	s.tap("mangwon1", "c1", "check_in", "arrival")
	run("c1's arrival without a reload", chromedp.WaitVisible(`#inside tr[data-child="c1"]`))
	inside := text("the row", chromedp.Text(`#inside tr[data-child="c1"]`))
	after := text("the page's start", chromedp.Evaluate[string](`String(performance.timeOrigin)`))
	if !strings.Contains(inside, "김민준") || !strings.Contains(inside, "15:00") {
		t.Errorf("c1's row: %q", inside)
	}
	if after != loaded {
		t.Error("the page was reloaded")
	}
	shot("today")
	s.terminals = map[string][]api.TerminalView{"mangwon1": {{Centre: "mangwon1", Device: "door", Received: s.clock(),
		Status: &protocol.Status{V: 1, State: "online", Time: s.clock(), RosterRev: 3, RosterAgeS: 60, ClockSynced: true, ReaderHealthy: true, Version: "1.4.0"}}}}
	run("단말기", chromedp.Click(`a[href="/c/mangwon1/terminals"]`), chromedp.WaitVisible(`#terminals tr[data-device="door"]`))
	shot("terminals")
	run("통계", chromedp.Click(`a[href="/c/mangwon1/stats"]`), chromedp.WaitVisible(`#children tr[data-child="c1"]`))
	if got := text("the month's children", chromedp.Text(`#summary`)); !strings.Contains(got, "이용 아동 1명 (정기 1명, 일시 0명)") {
		t.Errorf("통계: %q", got)
	}
	shot("stats")
	// The Excel download: clicked, saved by the browser, opened.
	dir := t.TempDir()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	progress := chromedp.Events(c, browser.DownloadProgress)
	run("the Excel download", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)})
		return err
	}), chromedp.Click(`#xlsx`))
	var saved string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the Excel download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the browser cancelled the Excel download")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			saved = filepath.Join(dir, ev.GUID)
			break
		}
	}
	checkWorkbook(t, saved, s.clock())
	run("아동·카드", chromedp.Click(`a[href="/c/mangwon1/cards"]`), chromedp.WaitVisible(`#cardtable tr[data-child="c2"]`))
	run("a revoke Q18 refuses", chromedp.Click(`tr[data-child="c2"] button.revoke`), chromedp.WaitVisible(`#message`))
	if got := text("the refusal", chromedp.Text(`#message`)); !strings.Contains(got, "이용예정 예약 있음") || !strings.Contains(got, "FAQ Q18") {
		t.Errorf("a revoke refused: %q", got)
	}
	shot("cards")
	id := s.failedText("mangwon1", "c2")
	run("문자", chromedp.Click(`a[href="/c/mangwon1/texts"]`), chromedp.WaitVisible(`tr[data-text="`+id+`"]`))
	run("a text sent again to a corrected number",
		chromedp.SendKeys(`tr[data-text="`+id+`"] input[name=phone]`, "010-9999-8888"),
		chromedp.Click(`tr[data-text="`+id+`"] button.resend`),
		chromedp.WaitVisible(`#message`))
	if got := text("the text's state", chromedp.Text(`tr[data-text="`+id+`"] .state`)); got != "보낼 차례" {
		t.Errorf("the text sent again is %q", got)
	}
	shot("texts")
}

// checkWorkbook opens the workbook the browser saved and finds the
// month's numbers: c1's session of the day, and one child on the day's
// occupancy row.
func checkWorkbook(t *testing.T, path string, day time.Time) {
	t.Helper()
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatalf("the downloaded workbook does not open: %v", err)
	}
	defer f.Close()
	rows, err := f.GetRows(attendance.SessionSheet)
	if err != nil || len(rows) != 2 {
		t.Fatalf("the workbook's sessions: %q, %v", rows, err)
	}
	date := day.In(firmware.KST).Format("2006-01-02")
	if got := rows[1][:4]; got[1] != "c1" || got[2] != "김민준" || got[3] != "15:00" {
		t.Errorf("the workbook's session: %q", got)
	}
	occ, err := f.GetRows(attendance.OccupancySheet)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range occ {
		if len(r) > 2 && r[0] == "mangwon1" && r[1] == date {
			found = true
			if r[2] != "1" || r[4+15-1] != "1" {
				t.Errorf("the workbook's day: %q", r)
			}
		}
	}
	if !found {
		t.Errorf("the workbook has no row of %s: %q", date, occ)
	}
}
