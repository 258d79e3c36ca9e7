// Command kiumdemo is the whole product in one process tree on embedded
// defaults (make run): an MQTT broker (mochi-mqtt), the portal bridge with
// console texts, and a terminal on the timed MFRC522 emulator. It plays a
// scripted day (testdata/demo/day.json) at accelerated speed, prints every
// screen and every parent's text as they happen, checks each outcome
// against the script, ends with a summary and exits 0 when all went as
// scripted.
//
//	kiumdemo [-script testdata/demo/day.json] [-speed N] [-interactive] [-web HOST:PORT] [-v]
//	kiumdemo -version
//
// With -web (make run gives 127.0.0.1:8466), the staff page is served on
// the demo's bridge while the day plays, and after its summary until
// interrupted: log in as "demo" with the password printed at the start.
//
// With -interactive, type a card's name (as in the script's "cards") and
// Enter to tap it; next and choose press the enrolment buttons, help lists
// the commands, quit ends. The day runs at the script's speed (600× real
// time: the centre closes some 40 s after the start); -speed 60 slows it
// to a minute of the day a second, -speed 1 to real time.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"kiumtap/daemon/store"
	"kiumtap/daemon/terminal"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/cli"
	"kiumtap/internal/strictjson"
	"kiumtap/portal/bridge"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	portalstore "kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/portal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	if code := cli.ExitCode(err); code != 0 { // -h is no failure
		fmt.Fprintln(os.Stderr, "kiumdemo:", err)
		os.Exit(code)
	}
}

// Script is a scripted day.
type Script struct {
	Start string            `json:"start"` // HH:MM the day starts
	Speed float64           `json:"speed"` // demo seconds per real second
	Cards map[string]string `json:"cards"` // name -> UID in hex
	Steps []Step            `json:"steps"`
}

// Step is one moment of the day.
type Step struct {
	At      string `json:"at"`
	Say     string `json:"say"`
	Tap     string `json:"tap,omitempty"`    // a card's name
	Expect  string `json:"expect,omitempty"` // the outcome the tap must get
	Replace *struct {
		Child string `json:"child"`
		Card  string `json:"card"`
	} `json:"replace,omitempty"` // staff bind a spare card at the portal
	Enrol *struct {
		Staff string `json:"staff"` // the staff card's name
		Child string `json:"child"` // child ID
		Card  string `json:"card"`
	} `json:"enrol,omitempty"` // staff bind a card at the door: staff card, buttons, the card
	Drop       string `json:"drop,omitempty"`        // the network drops for this long (demo time)
	ExpectAuto string `json:"expect_auto,omitempty"` // a child checked out automatically by then
}

var centreKey = []byte("kiumtap-demo-centre-key!")

func run(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	const synopsis = "kiumdemo [-script FILE] [-speed N] [-interactive] [-web HOST:PORT] [-v] | kiumdemo -version"
	fs := cli.NewFlagSet("kiumdemo", synopsis, os.Stderr)
	scriptPath := fs.String("script", "testdata/demo/day.json", "the scripted day")
	speed := fs.Float64("speed", 0, "demo seconds per real second (default: the script's, 600); 60 is a minute of the day a second, 1 real time")
	interactive := fs.Bool("interactive", false, "tap cards from the keyboard instead of the script (help lists the commands)")
	verbose := fs.Bool("v", false, "log what the daemons log")
	webAddr := fs.String("web", "", "serve the staff page on this host:port (make run: 127.0.0.1:8466) during the day, and after it until interrupted; a user \"demo\" is made with a password printed")
	version := fs.Bool("version", false, "print the version and exit")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *version {
		cli.PrintVersion(out, "kiumdemo")
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected %q: %s", cli.ErrUsage, fs.Args(), synopsis)
	}
	raw, err := os.ReadFile(*scriptPath)
	if err != nil {
		return fmt.Errorf("the script: %w (run from the repository root, or give -script)", err)
	}
	var sc Script
	if err := strictjson.Decode(raw, 0, "script "+*scriptPath, &sc); err != nil {
		return err
	}
	if *speed > 0 {
		sc.Speed = *speed
	}
	if sc.Speed <= 0 {
		sc.Speed = 600
	}
	d, err := setUp(ctx, &sc, out, *verbose, *webAddr)
	if err != nil {
		return err
	}
	defer d.close()
	if *interactive {
		return d.interactive(ctx, stdin)
	}
	if err := d.play(ctx); err != nil {
		return err
	}
	if err := d.summary(); err != nil {
		return err
	}
	if d.web != nil {
		d.clock.slowDown()
		d.println("\nthe staff page stays up at %s (user demo, password %s); Ctrl-C ends the demo", d.webURL, d.webPassword)
		<-ctx.Done()
	}
	return nil
}

// demo is the running product.
type demo struct {
	sc    *Script
	out   io.Writer
	mu    sync.Mutex // serialises output lines
	clock *demoClock

	dir     string
	broker  *mochi.Server
	link    *link
	bridge  *bridge.Bridge
	bstore  *boltstore.Store
	st      *store.Store
	up      *uplink.Uplink
	term    *terminal.Terminal
	chip    *rc522emu.Chip
	dev     *rc522.Dev
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	taps    chan store.Event
	bound   chan store.Event
	removed chan struct{}
	screen  []string // the last screen shown
	shown   int      // screens shown so far
	cards   map[string]*rc522emu.Card
	srcPath string

	texts    int
	outcomes map[firmware.Outcome]int

	web                 *http.Server // the staff page, nil without -web
	webURL, webPassword string
}

func (d *demo) println(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format+"\n", a...)
}

func setUp(ctx context.Context, sc *Script, out io.Writer, verbose bool, webAddr string) (*demo, error) {
	start, err := time.ParseInLocation("15:04", sc.Start, firmware.KST)
	if err != nil {
		return nil, fmt.Errorf("script start %q: want HH:MM", sc.Start)
	}
	today := firmware.DateOf(time.Now())
	dayStart := time.Date(today.Year, today.Month, today.Day, start.Hour(), start.Minute(), 0, 0, firmware.KST)
	d := &demo{sc: sc, out: out, clock: &demoClock{start: dayStart, real: time.Now(), speed: sc.Speed},
		taps: make(chan store.Event, 16), removed: make(chan struct{}, 16), bound: make(chan store.Event, 4), cards: map[string]*rc522emu.Card{}, outcomes: map[firmware.Outcome]int{}}
	for name, h := range sc.Cards {
		uid, err := hex.DecodeString(h)
		if err != nil || len(uid) < 4 {
			return nil, fmt.Errorf("script card %q: UID %q is not 4, 7 or 10 bytes of hex", name, h)
		}
		d.cards[name] = rc522emu.NewCard(uid, rc522emu.CardOptions{})
	}
	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if d.dir, err = os.MkdirTemp("", "kiumdemo"); err != nil {
		return nil, err
	}
	ctx, d.cancel = context.WithCancel(ctx)

	// The broker, embedded.
	d.broker = mochi.New(&mochi.Options{Logger: logger, InlineClient: false})
	d.broker.AddHook(new(auth.AllowHook), nil)
	tcp := listeners.NewTCP(listeners.Config{ID: "demo", Address: "127.0.0.1:0"})
	if err := d.broker.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	go d.broker.Serve()
	brokerAddr := tcp.Address()
	d.link, err = newLink(brokerAddr)
	if err != nil {
		return nil, err
	}

	// The portal: a roster source for today, the bridge with console texts.
	src := demoSource(today, d.uid)
	srcDir := filepath.Join(d.dir, "sources")
	os.MkdirAll(srcDir, 0o700)
	d.srcPath = filepath.Join(srcDir, "mangwon1.json")
	if err := writeSource(d.srcPath, src); err != nil {
		return nil, err
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	if d.bstore, err = boltstore.Open(filepath.Join(d.dir, "bridge.db")); err != nil {
		return nil, err
	}
	page, err := d.staffPage(ctx, webAddr)
	if err != nil {
		return nil, err
	}
	d.bridge, err = bridge.New(bridge.Options{
		Broker: "tcp://" + brokerAddr, Key: priv, Store: d.bstore, SourceDir: srcDir,
		Provider: demoProvider(d), From: "0212345678", Logger: logger, Now: d.clock.Now,
		// A minute of the day between looks at the not-arrived alerts and
		// at the AlimTalk deliveries, whatever the speed.
		NotArrivedEvery: max(20*time.Millisecond, time.Duration(float64(time.Minute)/sc.Speed)),
		ReportEvery:     max(20*time.Millisecond, time.Duration(float64(time.Minute)/sc.Speed)),
		RetryMin:        200 * time.Millisecond, RetryMax: 2 * time.Second, Stored: page.Notify,
	})
	if err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.bridge.Run(ctx) }()

	// The terminal: the store, the timed emulator, the tap loop, the uplink.
	if d.st, err = store.Open(store.Options{Path: filepath.Join(d.dir, "kiumtap.db"), DeviceID: "mangwon1-door", Logger: logger}); err != nil {
		return nil, err
	}
	d.chip = rc522emu.New(rc522emu.Options{Timed: true})
	if d.dev, err = rc522.New(d.chip, d.chip.RST(), d.chip.IRQ(), rc522.Options{Logger: logger}); err != nil {
		return nil, err
	}
	d.up, err = uplink.New(uplink.Options{Broker: "tcp://" + d.link.addr(), Centre: "mangwon1", Device: "mangwon1-door",
		PortalKey: priv.Public().(ed25519.PublicKey), Store: d.st, Clock: d.clock, Version: "demo", Logger: logger,
		ResendAfter: 2 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second, Heartbeat: 5 * time.Second,
		RosterApplied: func(r *firmware.Roster) { d.println("    [terminal] roster revision %d applied", r.Revision) },
		Reader:        func() (bool, int) { s := d.dev.Stats(); return s.ResetFailures == 0, int(s.Recoveries) }})
	if err != nil {
		return nil, err
	}
	d.term, err = terminal.New(terminal.Options{Store: d.st, Clock: d.clock, Key: centreKey, Language: firmware.Korean,
		Every: 100 * time.Millisecond, Logger: logger,
		// A tap takes some 0.1–0.3 s of real time, minutes of the
		// accelerated day: a wider window than a real centre's 60 s.
		Settings: firmware.Settings{DuplicateWindow: max(5*time.Minute, time.Duration(sc.Speed*float64(500*time.Millisecond)))},
		// Enrolment waits for staff a minute of real time, not of the
		// accelerated day.
		Enrol: struct{ Timeout, PortalTimeout time.Duration }{time.Duration(sc.Speed * float64(time.Minute)), time.Duration(sc.Speed * float64(5*time.Minute))},
		Show: func(f firmware.Feedback) {
			d.mu.Lock()
			d.screen = f.Lines
			d.shown++
			d.mu.Unlock()
			d.println("    %s  screen: %-44s [%s]", d.clock.Now().Format("15:04"), strings.Join(f.Lines, " / "), f.Pattern)
		},
		Bound: func(ev store.Event, _ firmware.BindingChange) {
			d.up.Notify()
			select {
			case d.bound <- ev:
			default:
			}
		},
		Tapped: func(ev store.Event, dec firmware.Decision) {
			d.up.Notify()
			d.mu.Lock()
			d.outcomes[dec.Outcome]++
			d.mu.Unlock()
			select {
			case d.taps <- ev:
			default:
			}
		}})
	if err != nil {
		return nil, err
	}
	events := make(chan rc522.Event, 16)
	toTerm := make(chan rc522.Event, 16)
	d.wg.Add(4)
	go func() { defer d.wg.Done(); d.dev.Run(ctx, events) }()
	go func() { defer d.wg.Done(); d.term.Run(ctx, toTerm) }()
	go func() { defer d.wg.Done(); d.up.Run(ctx) }()
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				if ev.Kind == rc522.Removed {
					select {
					case d.removed <- struct{}{}:
					default:
					}
				}
				toTerm <- ev
			}
		}
	}()
	d.println("kiumdemo: broker %s, bridge with console texts, terminal mangwon1-door on the timed MFRC522 emulator", brokerAddr)
	d.println("the day runs %g× faster than real time; store files in %s", sc.Speed, d.dir)
	if d.web != nil {
		d.println("the staff page: %s — log in as demo, password %s", d.webURL, d.webPassword)
	}
	d.println("")
	if err := d.waitFor(ctx, 15*time.Second, "the terminal to get its roster over MQTT", func() bool { _, _, err := d.st.Roster(); return err == nil }); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *demo) uid(name string) []byte { return d.cards[name].UID() }

// staffPage makes the staff page on the bridge's store, and serves it on
// addr ("": made, not served), with a user "demo" of the centre.
func (d *demo) staffPage(ctx context.Context, addr string) (*web.Server, error) {
	db := d.bstore.Contract()
	acc := &web.Accounts{Reg: db, Now: d.clock.Now}
	page, err := web.New(web.Options{Accounts: acc, Events: db, Texts: db, Now: d.clock.Now}.ServedBy(func() web.Bridge { return d.bridge }))
	if err != nil || addr == "" {
		return page, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("the staff page: listening on %s: %w (another program on that port? give -web another host:port)", addr, err)
	}
	d.webPassword = rand.Text()[:12]
	if err := acc.Add(ctx, "demo", d.webPassword, []string{"mangwon1"}, "kiumdemo"); err != nil {
		l.Close()
		return nil, err
	}
	d.webURL = "http://" + l.Addr().String() + "/"
	d.web = &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second}
	go d.web.Serve(l)
	return page, nil
}

func (d *demo) close() {
	if d.web != nil {
		d.web.Close() // live boards end with their connections
	}
	d.cancel()
	d.wg.Wait()
	d.chip.Close()
	d.st.Close()
	d.bstore.Close()
	d.link.close()
	d.broker.Close()
	os.RemoveAll(d.dir)
}

// waitFor polls cond until it holds or the deadline passes.
func (d *demo) waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// tap puts a card on the reader until the terminal has decided, then
// takes it away.
func (d *demo) tap(ctx context.Context, name string) (store.Event, error) {
	c := d.cards[name]
	if c == nil {
		return store.Event{}, fmt.Errorf("no card %q in the script", name)
	}
	if r, _, err := d.st.Roster(); err == nil && r.StaffByKey(firmware.CardKey(centreKey, c.UID())) != nil {
		// A staff card opens or closes enrolment: no event.
		was := d.term.Enrolling()
		return store.Event{}, d.present(ctx, name, "the staff card to open or close enrolment", func() bool { return d.term.Enrolling() != was })
	}
	for len(d.taps) > 0 {
		<-d.taps
	}
	for len(d.bound) > 0 {
		<-d.bound
	}
	// While enrolment is open a card is an enrolment step: bound to the
	// child chosen (an event), or a screen only (no child chosen yet, a
	// binding the rules refuse).
	enrolling := d.term.Enrolling()
	shown := d.shownCount()
	d.chip.Place(c)
	defer func() {
		d.chip.Remove(c)
		select {
		case <-d.removed:
		case <-time.After(2 * time.Second):
		}
	}()
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case ev := <-d.taps:
			return ev, nil
		case ev := <-d.bound:
			return ev, nil
		case <-poll.C:
			if !enrolling || d.shownCount() == shown {
				continue
			}
			// The terminal holds its lock while it handles a card and
			// tells of what it recorded: once Enrolling answers, a
			// binding is in d.bound.
			d.term.Enrolling()
			select {
			case ev := <-d.bound:
				return ev, nil
			case ev := <-d.taps:
				return ev, nil
			default:
				return store.Event{}, nil // the screen says what happened
			}
		case <-timeout.C:
			return store.Event{}, fmt.Errorf("the terminal did not decide on card %q in 5 s", name)
		case <-ctx.Done():
			return store.Event{}, ctx.Err()
		}
	}
}

func (d *demo) shownCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.shown
}

func (d *demo) play(ctx context.Context) error {
	var failures []string
	for _, s := range d.sc.Steps {
		at, err := d.clock.at(s.At)
		if err != nil {
			return err
		}
		if err := d.clock.sleepUntil(ctx, at); err != nil {
			return err
		}
		if s.Say != "" {
			d.println("\n%s — %s", s.At, s.Say)
		}
		switch {
		case s.Tap != "":
			ev, err := d.tap(ctx, s.Tap)
			if err != nil {
				return err
			}
			if s.Expect != "" && string(ev.Outcome) != s.Expect {
				failures = append(failures, fmt.Sprintf("%s: %s got %s (%s), the script expects %s", s.At, s.Tap, ev.Outcome, ev.Reason, s.Expect))
			}
		case s.Replace != nil:
			rev := d.rosterRev()
			if err := d.replaceCard(s.Replace.Child, s.Replace.Card); err != nil {
				return err
			}
			if err := d.waitFor(ctx, 15*time.Second, "the new roster at the terminal", func() bool { return d.rosterRev() > rev }); err != nil {
				return err
			}
		case s.Enrol != nil:
			if err := d.enrol(ctx, s.Enrol.Staff, s.Enrol.Child, s.Enrol.Card); err != nil {
				return err
			}
		case s.Drop != "":
			dur, err := time.ParseDuration(s.Drop)
			if err != nil {
				return fmt.Errorf("step %s: drop %q: %w", s.At, s.Drop, err)
			}
			d.link.drop(time.Duration(float64(dur) / d.sc.Speed))
		case s.ExpectAuto != "":
			if err := d.waitFor(ctx, 10*time.Second, "the automatic check-out of "+s.ExpectAuto, func() bool { return d.autoOut(s.ExpectAuto) }); err != nil {
				failures = append(failures, err.Error())
			}
		}
	}
	d.println("\nend of the day: waiting for every event to be acknowledged and every text sent")
	if err := d.waitFor(ctx, 30*time.Second, "the outbox to empty and the texts to go", func() bool {
		f, _, _ := d.st.Waiting()
		return f == 0 && d.pendingTexts() == 0
	}); err != nil {
		failures = append(failures, err.Error())
	}
	if len(failures) > 0 {
		return fmt.Errorf("the day did not go as scripted:\n  %s", strings.Join(failures, "\n  "))
	}
	return nil
}

func (d *demo) rosterRev() uint64 {
	r, _, err := d.st.Roster()
	if err != nil {
		return 0
	}
	return r.Revision
}

func (d *demo) autoOut(child string) bool {
	found := false
	d.bstore.Events("mangwon1", func(e protocolEvent) bool {
		if e.Child == child && e.Outcome == string(firmware.AutoCheckOut) {
			found = true
		}
		return !found
	})
	return found
}

func (d *demo) pendingTexts() int {
	n := 0
	d.bstore.Jobs(func(j portalstore.Job) bool {
		if j.State == portalstore.JobPending || j.State == portalstore.JobSending {
			n++
		}
		return true
	})
	return n
}

// present puts a card on the reader until cond holds, then takes it away.
func (d *demo) present(ctx context.Context, name, what string, cond func() bool) error {
	c := d.cards[name]
	if c == nil {
		return fmt.Errorf("no card %q in the script", name)
	}
	d.chip.Place(c)
	err := d.waitFor(ctx, 5*time.Second, what, cond)
	d.chip.Remove(c)
	select {
	case <-d.removed:
	case <-time.After(2 * time.Second):
	}
	return err
}

// enrol binds a card at the door as staff do: the staff card opens
// enrolment, Next until the child shows, Choose, then the card. It waits
// for the portal to take the binding into its roster.
func (d *demo) enrol(ctx context.Context, staff, child, card string) error {
	r, _, err := d.st.Roster()
	if err != nil {
		return err
	}
	c := r.ChildByID(child)
	if c == nil {
		return fmt.Errorf("enrol: no child %q in the roster", child)
	}
	if err := d.present(ctx, staff, "enrolment to open", d.term.Enrolling); err != nil {
		return err
	}
	shows := func(line string) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.screen) > 1 && d.screen[1] == line
	}
	for i := 0; !shows(firmware.MaskName(c.Name)); i++ {
		if i > len(r.Children) {
			return fmt.Errorf("enrol: %s never showed", c.Name)
		}
		d.println("    [staff presses Next]")
		d.term.Press(firmware.ButtonNext)
	}
	d.println("    [staff presses Choose]")
	d.term.Press(firmware.ButtonChoose)
	for len(d.bound) > 0 {
		<-d.bound
	}
	var ev store.Event
	if err := d.present(ctx, card, "the card to be bound", func() bool {
		select {
		case ev = <-d.bound:
			return true
		default:
			return false
		}
	}); err != nil {
		return err
	}
	key := firmware.AppliedKey(d.st.DeviceID(), d.st.LogID())
	if err := d.waitFor(ctx, 15*time.Second, "the portal to take the binding in", func() bool {
		p, _, _ := d.st.PortalRoster()
		return p != nil && p.Applied[key] >= ev.Seq
	}); err != nil {
		return err
	}
	p, _, _ := d.st.PortalRoster()
	d.println("    [portal] roster revision %d takes in the binding (event #%d)", p.Revision, ev.Seq)
	return nil
}

// replaceCard binds a spare card to a child at the portal: the old card
// becomes replaced, the spare active, and the bridge publishes.
func (d *demo) replaceCard(child, card string) error {
	src, err := source.Load(d.srcPath)
	if err != nil {
		return err
	}
	now := d.clock.Now()
	for i := range src.Roster.Cards {
		if c := &src.Roster.Cards[i]; c.ChildID == child && c.State == firmware.CardActive {
			c.State, c.Since = firmware.CardReplaced, now
		}
	}
	src.Roster.Cards = append(src.Roster.Cards, firmware.Card{Key: firmware.CardKey(centreKey, d.uid(card)), ChildID: child, State: firmware.CardActive, Since: now})
	return writeSource(d.srcPath, src)
}

func (d *demo) summary() error {
	o, _ := d.st.Outbox()
	st := d.up.Stats()
	var keys []string
	for k, n := range d.outcomes {
		keys = append(keys, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(keys)
	bs := d.bridge.Stats()
	d.println("\nsummary: taps by outcome: %s", strings.Join(keys, ", "))
	d.println("         texts sent to parents: %d (failed %d); events acknowledged by the portal: %d of %d (outbox now %d)",
		bs.TextsSent, bs.TextsFailed, st.Acked, o.LastSeq, o.Depth)
	seqs, _ := d.st.Bindings()
	d.println("         cards bound at the door: %d", len(seqs))
	d.println("         parents' messages by channel: %s (%d fell back from AlimTalk to SMS: not on KakaoTalk)", channelCounts(bs.TextsBy), bs.TextsFellBack)
	if v, err := d.bridge.Alerts(context.Background(), "mangwon1", ""); err == nil {
		var alerts []string
		for _, a := range v.Alerts {
			what := "still not arrived"
			if !a.Arrived.IsZero() {
				what = "arrived " + a.Arrived.In(firmware.KST).Format("15:04")
			}
			alerts = append(alerts, fmt.Sprintf("%s (booked %s, no arrival by %s, guardians told %d; %s)", a.Name, a.Window, a.Due.In(firmware.KST).Format("15:04"), a.Told, what))
		}
		d.println("         not-arrived alerts (미등원): %d %s", len(v.Alerts), strings.Join(alerts, "; "))
	}
	d.println("         link: %d connections, %d times sent again; rosters published: %d", st.Connects, st.Resends, bs.Published)
	return nil
}

// interactiveHelp lists the interactive demo's commands.
func (d *demo) interactiveHelp() string {
	names := make([]string, 0, len(d.cards))
	for n := range d.cards {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprintf(`commands (then Enter):
  CARD     tap a card: %s
           (a staff card, such as teacher's, opens card enrolment; tapped again, it cancels)
  next     press the enrolment button Next: the next child
  choose   press the enrolment button Choose: the next card presented is bound to the child shown
  help     this list
  quit     the day's summary, and end
the day runs %g× faster than real time, from %s; to slow it, start again with -speed N (-speed 60: a minute of the day a second; -speed 1: real time)`,
		strings.Join(names, ", "), d.sc.Speed, d.sc.Start)
}

func (d *demo) interactive(ctx context.Context, stdin io.Reader) error {
	d.println("%s", d.interactiveHelp())
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		word := strings.TrimSpace(sc.Text())
		switch word {
		case "":
			continue
		case "help", "?", "h":
			d.println("%s", d.interactiveHelp())
			continue
		case "quit", "exit":
			return d.summary()
		case "next":
			d.term.Press(firmware.ButtonNext)
			continue
		case "choose":
			d.term.Press(firmware.ButtonChoose)
			continue
		}
		if d.cards[word] == nil {
			d.println("no card or command %q: help lists them", word)
			continue
		}
		ev, err := d.tap(ctx, word)
		switch {
		case err != nil:
			d.println("%v", err)
		case ev.Outcome == firmware.CardBound:
			d.println("    [terminal] card %s bound to %s (event #%d); the portal takes it into the roster's next revision", word, ev.ChildID, ev.Seq)
		}
	}
	return d.summary()
}

// demoProvider prints each parent's message as it is sent, the way a
// provider would send it: arrivals, departures and not-arrived alerts by
// KakaoTalk AlimTalk (their templates as kiumbridge's [alimtalk] names
// them), automatic check-outs by SMS; 김도윤 (c1's second guardian) is not
// on KakaoTalk, so his messages fall back to SMS.
func demoProvider(d *demo) sms.Provider {
	return sms.NewConsoleAlimTalk(demoLines{d}, sms.Templates{sms.Arrival: "KIUM-ARRIVAL", sms.Departure: "KIUM-DEPARTURE", sms.NotArrived: "KIUM-NOT-ARRIVED"},
		[]string{"01098765432"})
}

// demoLines prints what is written to it, a line at a time, at the
// day's time.
type demoLines struct{ d *demo }

func (w demoLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.d.println("    %s  %s", w.d.clock.Now().Format("15:04"), line)
	}
	return len(p), nil
}

// demoClock runs the scripted day faster than real time.
type demoClock struct {
	mu          sync.Mutex
	start, real time.Time
	speed       float64
}

func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(time.Duration(float64(time.Since(c.real)) * c.speed))
}

// slowDown makes the day go on at real time from now: the staff page
// kept up after the day shows that day, not one hours later.
func (c *demoClock) slowDown() {
	now := c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start, c.real, c.speed = now, time.Now(), 1
}

func (c *demoClock) Stamp() store.Stamp {
	return store.Stamp{Time: c.Now(), Synced: true, Mono: time.Since(boot)}
}

// boot is when the demo's terminal "booted": its monotonic zero.
var boot = time.Now()

func (c *demoClock) at(hhmm string) (time.Time, error) {
	t, err := time.ParseInLocation("15:04", hhmm, firmware.KST)
	if err != nil {
		return time.Time{}, fmt.Errorf("step at %q: want HH:MM", hhmm)
	}
	return time.Date(c.start.Year(), c.start.Month(), c.start.Day(), t.Hour(), t.Minute(), 0, 0, firmware.KST), nil
}

// sleepUntil waits for t, then sets the clock to it exactly, so that a
// step happens at its scripted minute however long real work took (the
// clock never goes back: a step already late runs at once).
func (c *demoClock) sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Duration(float64(t.Sub(c.Now())) / c.speed)
	if d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.start.Add(time.Duration(float64(time.Since(c.real)) * c.speed)); now.Before(t) {
		c.start, c.real = t, time.Now()
	}
	return nil
}

// link is the centre's network between the terminal and the broker: a
// TCP proxy that can drop.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	until  time.Time
}

func newLink(target string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{ln: ln, target: target}
	go l.serve()
	return l, nil
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down := time.Now().Before(l.until)
		l.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, u)
		l.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}

// drop cuts every connection and refuses new ones for d.
func (l *link) drop(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = time.Now().Add(d)
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *link) close() { l.ln.Close(); l.drop(0) }

func writeSource(path string, src *source.Source) error {
	raw, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// channelCounts writes counts by channel, "alimtalk 6, sms 3".
func channelCounts(by map[string]int) string {
	var parts []string
	for _, ch := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s %d", ch, by[ch]))
	}
	return strings.Join(parts, ", ")
}
