package bridge_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kiumtap/daemon/clock/clocktest"
	"kiumtap/daemon/store"
	"kiumtap/daemon/terminal"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/chaosproxy"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/pgtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/sms/smstest"
	"kiumtap/portal/source"
	"kiumtap/portal/store/boltstore"
)

const (
	termPass   = "terminal-secret"
	portalPass = "portal-secret"
	hookSecret = "webhook-secret"
	childEnv   = "KIUMTAP_BRIDGE_CHILD"
)

var (
	portalKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	centreKey = []byte("e2e-centre-key-0123456789")
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		bridgeChild()
		return
	}
	code := m.Run()
	pgtest.Cleanup()
	os.Exit(code)
}

// bridgeChild runs a bridge, configured by the environment, until killed.
func bridgeChild() {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "bridge child:", err); os.Exit(3) }
	st, err := boltstore.Open(os.Getenv("KB_STORE"))
	if err != nil {
		fail(err)
	}
	b, err := bridge.New(bridge.Options{Broker: os.Getenv("KB_BROKER"), Password: portalPass, Key: portalKey, Store: st,
		SourceDir: os.Getenv("KB_SOURCES"), Provider: sms.NewWebhook(sms.WebhookOptions{URL: os.Getenv("KB_HOOK"), Secret: hookSecret}),
		From: "0212345678", RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fail(err)
	}
	fail(b.Run(context.Background()))
}

var uids = map[string][]byte{
	"c1": {0xDE, 0xAD, 0xBE, 0xEF}, "c1-old": {0x04, 0x11, 0x22, 0x33}, "c2": {0x04, 0x6A, 0x2B, 0x5C, 0x1D, 0x80, 0x41},
	"c3": {0x05, 1, 2, 3}, "c4": {0xCA, 0xFE, 0xBA, 0xBE}, "c5": {0x04, 0x55, 0x66, 0x77}, "stranger": {0x0B, 0xAD, 0xF0, 0x0D},
}

// testSource: c1, c2, c5 in use every day; c3 only scheduled; c4 in use on
// every weekday but today's; c1's old card replaced. Guardians: c1 two,
// c2 one, c5 one who wants texts and one who does not.
func testSource(today firmware.Date) *source.Source {
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	var notToday []time.Weekday
	for _, d := range all {
		if d != today.Weekday() {
			notToday = append(notToday, d)
		}
	}
	from, to := today.AddDays(-30), today.AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	key := func(n string) string { return firmware.CardKey(centreKey, uids[n]) }
	book := func(id, child string, st firmware.BookingStatus, days []time.Weekday) firmware.Booking {
		return firmware.Booking{ID: id, ChildID: child, Type: firmware.Regular, Status: st, From: from, To: to, Weekdays: days, Window: day}
	}
	return &source.Source{
		Roster: &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}},
			Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}, {ID: "c4", Name: "최하은"}, {ID: "c5", Name: "정서준"}},
			Cards: []firmware.Card{
				{Key: key("c1"), ChildID: "c1", State: firmware.CardActive}, {Key: key("c1-old"), ChildID: "c1", State: firmware.CardReplaced},
				{Key: key("c2"), ChildID: "c2", State: firmware.CardActive}, {Key: key("c3"), ChildID: "c3", State: firmware.CardActive},
				{Key: key("c4"), ChildID: "c4", State: firmware.CardActive}, {Key: key("c5"), ChildID: "c5", State: firmware.CardActive},
			},
			Bookings: []firmware.Booking{book("b1", "c1", firmware.InUse, all), book("b2", "c2", firmware.InUse, all), book("b3", "c3", firmware.Scheduled, all),
				book("b4", "c4", firmware.InUse, notToday), book("b5", "c5", firmware.InUse, all)}},
		Guardians: map[string][]source.Guardian{
			"c1": {{Name: "김지현", Phone: "01012345678", Texts: true}, {Name: "김도윤", Phone: "01098765432", Texts: true}},
			"c2": {{Name: "이수진", Phone: "01022223333", Texts: true}},
			"c3": {{Name: "박미경", Phone: "01044445555", Texts: true}},
			"c4": {{Name: "최영호", Phone: "01066667777", Texts: true}},
			"c5": {{Name: "정은지", Phone: "01088889999", Texts: true}, {Name: "정우성", Phone: "01011112222", Texts: false}},
		}}
}

var guardiansTexted = map[string]int{"c1": 2, "c2": 1, "c3": 1, "c4": 1, "c5": 1}

// From an emulated tap to the fake provider's request, for each outcome;
// then a stream of taps through connection cuts, a broker restart and two
// SIGKILLs of the bridge: exactly one text per guardian per accepted tap,
// none for refused taps.
func TestEndToEnd(t *testing.T) {
	mq := mosqtest.Start(t, testBrokerOptions(t, ""))
	hook := smstest.NewWebhook(t, hookSecret)
	dir := t.TempDir()
	srcDir := filepath.Join(dir, "sources")
	os.MkdirAll(srcDir, 0o700)
	// The terminal's clock starts at 06:00 in Seoul today: its 300 taps, 2
	// minutes apart, stay within the day (past midnight the store would
	// add automatic check-outs, texted too, that this test does not count).
	now := time.Now().In(firmware.KST)
	clk := clocktest.New(time.Date(now.Year(), now.Month(), now.Day(), 6, 0, 0, 0, firmware.KST))
	raw, _ := json.Marshal(testSource(firmware.DateOf(clk.Now())))
	if err := os.WriteFile(filepath.Join(srcDir, "mangwon1.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	var child *exec.Cmd
	startBridge := func() {
		child = exec.Command(exe, "-test.run=^$")
		child.Env = append(os.Environ(), childEnv+"=1", "KB_STORE="+filepath.Join(dir, "bridge.db"), "KB_BROKER="+mq.URL(),
			"KB_SOURCES="+srcDir, "KB_HOOK="+hook.URL)
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	killBridge := func() { child.Process.Signal(syscall.SIGKILL); child.Wait() }
	startBridge()
	t.Cleanup(killBridge)

	// The terminal, through a flaky link.
	px := chaosproxy.Start(t, chaosproxy.Options{Target: mq.Addr(), MinCut: 500 * time.Millisecond, MaxCut: 5 * time.Second, Seed: 3})
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "kiumtap.db"), DeviceID: "door"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	up, err := uplink.New(uplink.Options{Broker: px.URL(), Centre: "mangwon1", Device: "door", Password: termPass,
		PortalKey: portalKey.Public().(ed25519.PublicKey), Store: st, Clock: clk, ResendAfter: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	outcome := map[string]firmware.Outcome{} // event ID -> outcome
	childOf := map[string]string{}           // event ID -> child
	decided := make(chan firmware.Outcome, 16)
	term, err := terminal.New(terminal.Options{Store: st, Clock: clk, Key: centreKey, Show: func(firmware.Feedback) {},
		Tapped: func(ev store.Event, dec firmware.Decision) {
			mu.Lock()
			outcome[ev.ID("door")] = dec.Outcome
			childOf[ev.ID("door")] = dec.ChildID
			mu.Unlock()
			up.Notify()
			select {
			case decided <- dec.Outcome:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	chip := rc522emu.New(rc522emu.Options{})
	defer chip.Close()
	dev, err := rc522.New(chip, chip.RST(), chip.IRQ(), rc522.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	events, toTerm, removed := make(chan rc522.Event, 16), make(chan rc522.Event, 16), make(chan struct{}, 16)
	wg.Add(4)
	go func() { defer wg.Done(); dev.Run(ctx, events) }()
	go func() { defer wg.Done(); term.Run(ctx, toTerm) }()
	go func() { defer wg.Done(); up.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				if ev.Kind == rc522.Removed {
					removed <- struct{}{}
				}
				toTerm <- ev
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	wait.For(t, 20*time.Second, "the roster at the terminal", func() bool { _, _, err := st.Roster(); return err == nil })

	// Each outcome from an emulated tap.
	tap := func(name string, want firmware.Outcome) {
		t.Helper()
		c := rc522emu.NewCard(uids[name], rc522emu.CardOptions{})
		chip.Place(c)
		select {
		case got := <-decided:
			if got != want {
				t.Fatalf("%s: %s, want %s", name, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no decision", name)
		}
		chip.Remove(c)
		select {
		case <-removed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not seen leaving", name)
		}
		clk.Add(10 * time.Second)
	}
	tap("c1", firmware.CheckIn)
	tap("c1", firmware.Duplicate)
	tap("c4", firmware.NoData)
	tap("c3", firmware.NotInUse)
	tap("stranger", firmware.UnknownCard)
	tap("c1-old", firmware.ReplacedCard)
	clk.Add(5 * time.Minute)
	tap("c1", firmware.CheckOut)

	// A stream of taps while the link is cut, the broker restarts and the
	// bridge is killed twice.
	children := []string{"c1", "c2", "c5"}
	for i := range 300 {
		clk.Add(2 * time.Minute)
		if _, _, err := term.Tap(uids[children[i%3]]); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 60, 180:
			killBridge()
			startBridge()
		case 120:
			mq.Restart()
		}
		time.Sleep(30 * time.Millisecond) // taps come at a pace: some 10 s of them
	}
	want := 0
	mu.Lock()
	for id, o := range outcome {
		if o == firmware.CheckIn || o == firmware.CheckOut {
			want += guardiansTexted[childOf[id]]
		}
	}
	mu.Unlock()
	wait.For(t, 90*time.Second, "every event acknowledged", func() bool { f, _, _ := st.Waiting(); return f == 0 })
	wait.For(t, 60*time.Second, fmt.Sprintf("%d texts at the provider", want), func() bool { return hook.Unique() >= want })
	// The texts: one per guardian per accepted tap, none for refused ones.
	keys := hook.Keys()
	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		p := strings.Split(k, "/") // device/log/seq/guardian
		id := p[0] + "-" + p[2]
		if o := outcome[id]; o != firmware.CheckIn && o != firmware.CheckOut && o != firmware.AutoCheckOut {
			t.Errorf("a text for %s, a %s tap", k, o)
		}
	}
	if len(keys) != want {
		t.Fatalf("%d texts, want %d", len(keys), want)
	}
	t.Logf("%d texts for %d taps; %d requests (repeats after a kill carry the same idempotency key); link cut %d times",
		len(keys), len(outcome), hook.Total(), px.Cuts())
	if px.Cuts() == 0 {
		t.Fatal("the link was never cut: the test proves less than it says")
	}
}
