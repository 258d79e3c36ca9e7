package bridge_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/browsertest"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/web"
)

// BenchmarkTapToBoard: from the first REQA that finds a card on the timed
// emulator to the child's row changing on the staff page's 오늘 in
// headless Chromium, through the terminal, Mosquitto, the bridge (ingest,
// store) and the page's live stream. Each op is one check-in or
// check-out; the page stamps each update with its own clock (the same
// machine's), so the wait for it adds nothing.
// boardRig is a bridge on Mosquitto with the staff page, a terminal of
// mangwon1 on the timed emulator, and headless Chromium logged in on 오늘.
type boardRig struct {
	door *timedDoor
	tab  context.Context
}

func startBoardRig(t testing.TB) *boardRig {
	t.Helper()
	mq := startTestBroker(t)
	dir := t.TempDir()
	writeTestSource(t, dir)
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db := st.Contract()
	acc := &web.Accounts{Reg: db}
	if err := acc.Add(context.Background(), "mangwon.kim", "password-of-kim", []string{"mangwon1"}, "bench"); err != nil {
		t.Fatal(err)
	}
	var br *bridge.Bridge
	page, err := web.New(web.Options{Accounts: acc, Events: db, Texts: db}.ServedBy(func() web.Bridge { return br }))
	if err != nil {
		t.Fatal(err)
	}
	br, err = bridge.New(bridge.Options{Broker: mq.URL(), Password: portalPass, ClientID: "board", Key: portalKey, DB: db, SourceDir: dir,
		Provider: sms.NewConsole(discard{}), From: "0212345678", Stored: page.Notify})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); br.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	ts := httptest.NewServer(page)
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() }) // the live stream never ends by itself

	door := startTimedDoor(t, mq.URL(), dir)
	tab := browsertest.New(t, 30*time.Second)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("logging in", chromedp.Navigate(ts.URL+"/login"), chromedp.SendKeys(`input[name=user]`, "mangwon.kim"),
		chromedp.SendKeys(`input[name=password]`, "password-of-kim"), chromedp.Submit(`input[name=password]`), chromedp.WaitVisible(`#board`))
	return &boardRig{door: door, tab: tab}
}

// rowChanged waits, in the page, for an update newer than after that has
// c2 inside (or not), and returns the page's stamp of it (ms since the
// epoch, the page's clock).
func (r *boardRig) rowChanged(after float64, inside bool) (float64, error) {
	c, stop := context.WithTimeout(r.tab, 10*time.Second)
	defer stop()
	return chromedp.Run(c, chromedp.Poll[float64](fmt.Sprintf(`(function () {
		var part = document.querySelector("[data-live]");
		var at = +(part.getAttribute("data-updated") || 0);
		var in_ = !!document.querySelector('#inside tr[data-child="c2"]');
		return at > %f && in_ === %t ? at : false;
	})()`, after, inside), chromedp.WithPollingTimeout(10*time.Second)))
}

func BenchmarkTapToBoard(b *testing.B) {
	rig := startBoardRig(b)
	door := rig.door
	card := rc522emu.NewCard(uids["c2"], rc522emu.CardOptions{})
	var last float64
	var lat []float64
	b.ResetTimer()
	for i := range b.N {
		door.clk.Add(3 * time.Minute) // beyond the duplicate window: in, out, in…
		time.Sleep(time.Duration(i*7919%45) * time.Millisecond)
		inside := i%2 == 0
		door.probe.Placed()
		door.chip.Place(card)
		at, err := rig.rowChanged(last, inside)
		if err != nil {
			b.Fatalf("tap %d: the row did not change on the page: %v", i, err)
		}
		first := door.probe.First()
		if first.IsZero() {
			b.Fatal("the page changed before the card's first REQA")
		}
		last = at
		lat = append(lat, at-float64(first.UnixNano())/1e6)
		door.chip.Remove(card)
		time.Sleep(300 * time.Millisecond) // until it is seen leaving
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[min(len(lat)-1, len(lat)*99/100)], "p99-ms")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// In real headless Chromium: a card tapped on an emulated terminal goes
// through Mosquitto and the bridge and appears on 오늘 without a reload,
// and leaves it at the next tap (a departure).
func TestBrowserTapThroughTerminal(t *testing.T) {
	rig := startBoardRig(t)
	card := rc522emu.NewCard(uids["c2"], rc522emu.CardOptions{})
	var last float64
	for i, inside := range []bool{true, false} {
		rig.door.clk.Add(3 * time.Minute)
		rig.door.chip.Place(card)
		at, err := rig.rowChanged(last, inside)
		if err != nil {
			t.Fatalf("tap %d (inside %t): the page did not show it: %v", i, inside, err)
		}
		last = at
		rig.door.chip.Remove(card)
		time.Sleep(300 * time.Millisecond) // until the reader sees it leave: the next presence is a new tap
	}
}

// In real headless Chromium: an enrolment started on 아동·카드 for c1 at
// the terminal completes when a new card is presented there: the table
// shows c1's new card without a reload, and a tap of the new card is an
// arrival on 오늘.
func TestBrowserEnrolAtTerminal(t *testing.T) {
	rig := startBoardRig(t)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(rig.tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("아동·카드", chromedp.Click(`a[href="/c/mangwon1/cards"]`), chromedp.WaitVisible(`#cardtable tr[data-child="c1"]`))
	// The terminal is offered once the bridge has its status: the table
	// is live.
	c, cancel := context.WithTimeout(rig.tab, 20*time.Second)
	_, err := chromedp.Run(c, chromedp.Poll[bool](`!!document.querySelector('#cardtable tr[data-child="c1"] option[value="door"], #cardtable tr[data-child="c1"] option:not([value])')`,
		chromedp.WithPollingTimeout(20*time.Second)))
	cancel()
	if err != nil {
		t.Fatalf("the terminal door never offered: %v", err)
	}
	c, cancel = context.WithTimeout(rig.tab, 10*time.Second)
	before, err := chromedp.Run(c, chromedp.Text(`#cardtable tr[data-child="c1"] td:nth-child(3)`))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	do("starting the enrolment at door", chromedp.Click(`#cardtable tr[data-child="c1"] button.enrol`), chromedp.WaitVisible(`#message`))
	c, cancel = context.WithTimeout(rig.tab, 10*time.Second)
	msg, err := chromedp.Run(c, chromedp.Text(`#message`))
	cancel()
	if err != nil || !strings.Contains(msg, "단말기 door이(가)") {
		t.Fatalf("the enrolment's message: %q %v", msg, err)
	}
	fresh := rc522emu.NewCard([]byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, rc522emu.CardOptions{})
	rig.door.clk.Add(time.Minute)
	rig.door.chip.Place(fresh)
	c, cancel = context.WithTimeout(rig.tab, 20*time.Second)
	_, err = chromedp.Run(c, chromedp.Poll[bool](fmt.Sprintf(`(function () {
		var td = document.querySelector('#cardtable tr[data-child="c1"] td:nth-child(3)');
		return !!td && td.textContent !== %q;
	})()`, before), chromedp.WithPollingTimeout(20*time.Second)))
	cancel()
	if err != nil {
		t.Fatalf("c1's new card never showed on the page: %v", err)
	}
}
