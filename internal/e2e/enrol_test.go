package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
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
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/bridge"
	"kiumtap/portal/devices"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store/boltstore"
)

const (
	termPass   = "terminal-secret"
	portalPass = "portal-secret"
)

var portalKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// centre is a centre's roster source: children in use every day, each with
// a card; staff s1.
type centre struct {
	id    string
	key   []byte
	cards map[string][]byte // child ID (or "staff") -> UID
}

func (c centre) source(today firmware.Date) *source.Source {
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	from, to := today.AddDays(-30), today.AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	r := &firmware.Roster{Revision: 1, Centre: firmware.Centre{ID: c.id, Name: c.id + " 센터", Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}},
		Staff: []firmware.Staff{{ID: "s1", Name: "박선생", Key: firmware.CardKey(c.key, c.cards["staff"])}}}
	g := map[string][]source.Guardian{}
	for _, child := range []string{"k1", "k2", "k3"} {
		id := c.id + "-" + child
		r.Children = append(r.Children, firmware.Child{ID: id, Name: map[string]string{"k1": "김민준", "k2": "이서연", "k3": "박지호"}[child]})
		if uid := c.cards[child]; uid != nil {
			r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(c.key, uid), ChildID: id, State: firmware.CardActive})
		}
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b-" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: day})
		g[id] = []source.Guardian{{Name: "보호자", Phone: "01012345678", Texts: true}}
	}
	return &source.Source{Roster: r, Guardians: g}
}

// door is one terminal on the emulated reader, linked through a proxy the
// test can take down.
type door struct {
	t       testing.TB
	centre  centre
	id      string
	clk     *clocktest.Clock
	st      *store.Store
	up      *uplink.Uplink
	term    *terminal.Terminal
	chip    *rc522emu.Chip
	px      *chaosproxy.Proxy
	shown   chan firmware.Feedback
	removed chan struct{}
}

// startDoor starts a terminal; it stops when the test ends. mods change
// its uplink's options (by default quick to resend and reconnect).
func startDoor(t testing.TB, mq *mosqtest.Broker, c centre, id string, now time.Time, mods ...func(*uplink.Options)) *door {
	d := &door{t: t, centre: c, id: id, clk: clocktest.New(now), shown: make(chan firmware.Feedback, 64), removed: make(chan struct{}, 16)}
	// No cuts of its own: the test takes the link down with SetDown.
	d.px = chaosproxy.Start(t, chaosproxy.Options{Target: mq.Addr(), MinCut: time.Hour, MaxCut: time.Hour, Seed: 1})
	var err error
	d.st, err = store.Open(store.Options{Path: filepath.Join(t.TempDir(), id+".db"), DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.st.Close() })
	uo := uplink.Options{Broker: d.px.URL(), Centre: c.id, Device: id, Password: termPass,
		PortalKey: portalKey.Public().(ed25519.PublicKey), Store: d.st, Clock: d.clk, ResendAfter: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
		Enrol: func(child, by string) ([]string, error) { return d.term.EnrolFor(child, by) }}
	for _, m := range mods {
		m(&uo)
	}
	d.up, err = uplink.New(uo)
	if err != nil {
		t.Fatal(err)
	}
	d.term, err = terminal.New(terminal.Options{Store: d.st, Clock: d.clk, Key: c.key,
		Show:   func(f firmware.Feedback) { d.shown <- f },
		Tapped: func(store.Event, firmware.Decision) { d.up.Notify() },
		Bound:  func(store.Event, firmware.BindingChange) { d.up.Notify() }})
	if err != nil {
		t.Fatal(err)
	}
	d.chip = rc522emu.New(rc522emu.Options{})
	t.Cleanup(func() { d.chip.Close() })
	dev, err := rc522.New(d.chip, d.chip.RST(), d.chip.IRQ(), rc522.Options{})
	if err != nil {
		t.Fatal(err)
	}
	events, toTerm := make(chan rc522.Event, 16), make(chan rc522.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(4)
	go func() { defer wg.Done(); dev.Run(ctx, events) }()
	go func() { defer wg.Done(); d.term.Run(ctx, toTerm) }()
	go func() { defer wg.Done(); d.up.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				if ev.Kind == rc522.Removed {
					d.removed <- struct{}{}
				}
				toTerm <- ev
			}
		}
	}()
	return d
}

// waitRosters waits until every door has a roster from the portal.
func waitRosters(t testing.TB, doors ...*door) {
	t.Helper()
	wait.For(t, 20*time.Second, "the roster at the terminals", func() bool {
		for _, d := range doors {
			if d.portalRoster() == nil {
				return false
			}
		}
		return true
	})
}

// tap presents a card on the emulated reader and returns what the terminal
// showed.
func (d *door) tap(uid []byte) firmware.Feedback {
	d.t.Helper()
	f, err := d.tryTap(uid)
	if err != nil {
		d.t.Fatal(err)
	}
	return f
}

// tryTap is tap for any goroutine: it returns what went wrong rather than
// failing the test.
func (d *door) tryTap(uid []byte) (firmware.Feedback, error) {
	d.clk.Add(10 * time.Second)
	c := rc522emu.NewCard(uid, rc522emu.CardOptions{})
	d.chip.Place(c)
	var f firmware.Feedback
	select {
	case f = <-d.shown:
	case <-time.After(5 * time.Second):
		return f, fmt.Errorf("%s: nothing shown for card % X", d.id, uid)
	}
	d.chip.Remove(c)
	select {
	case <-d.removed:
	case <-time.After(5 * time.Second):
		return f, fmt.Errorf("%s: card % X not seen leaving", d.id, uid)
	}
	return f, nil
}

// press presses an enrolment button and returns the screen.
func (d *door) press(b firmware.Button) firmware.Feedback {
	d.t.Helper()
	d.term.Press(b)
	select {
	case f := <-d.shown:
		return f
	case <-time.After(5 * time.Second):
		d.t.Fatalf("%s: nothing shown for a button", d.id)
	}
	return firmware.Feedback{}
}

func (d *door) offline(down bool) {
	d.px.SetDown(down)
	if down {
		d.px.CutNow()
	}
}

// enrolOnDevice runs the device flow: staff card, Next until the child,
// Choose, the card. It returns the confirmation (or refusal) screen.
func (d *door) enrolOnDevice(child string, uid []byte) firmware.Feedback {
	d.t.Helper()
	f := d.tap(d.centre.cards["staff"])
	for i := 0; f.Lines[1] != firmware.MaskName(child); i++ {
		if i > 5 {
			d.t.Fatalf("%s: %s not in the list", d.id, child)
		}
		f = d.press(firmware.ButtonNext)
	}
	if f = d.press(firmware.ButtonChoose); f.Lines[1] != "카드를 대주세요" {
		d.t.Fatalf("%s: after Choose %q", d.id, f.Lines)
	}
	return d.tap(uid)
}

// portalRev is the terminal's revision of the portal's roster.
func (d *door) portalRoster() *firmware.Roster {
	r, _, _ := d.st.PortalRoster()
	return r
}

type system struct {
	mq      *mosqtest.Broker
	br      *bridge.Bridge
	bst     *boltstore.Store
	srcDir  string
	cancel  context.CancelFunc
	wg      *sync.WaitGroup
	control string
	dir     string
}

// startSystem starts Mosquitto, with the ACL for the terminals doors (as
// kiumbridge device acl writes it; one password each), and the bridge on
// the centres' roster sources.
func startSystem(t *testing.T, doors []devices.Device, centres ...centre) *system {
	s := &system{mq: startBroker(t, doors), wg: &sync.WaitGroup{}}
	dir := t.TempDir()
	s.srcDir = filepath.Join(dir, "sources")
	os.MkdirAll(s.srcDir, 0o700)
	today := firmware.DateOf(time.Now().In(firmware.KST))
	for _, c := range centres {
		raw, _ := json.Marshal(c.source(today))
		if err := os.WriteFile(filepath.Join(s.srcDir, c.id+".json"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.dir, s.control = dir, filepath.Join(dir, "kiumbridge.sock")
	s.startBridge(t)
	t.Cleanup(s.stopBridge)
	return s
}

// startBroker starts Mosquitto with the ACL for doors and one password
// per terminal (the shipped configuration takes a terminal's identity from
// its certificate instead: portal/devices tests that one).
func startBroker(t testing.TB, doors []devices.Device) *mosqtest.Broker {
	acl, err := devices.ACL("portal", doors)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"portal": portalPass}
	for _, d := range doors {
		users[d.ID] = termPass
	}
	return mosqtest.Start(t, mosqtest.Options{Users: users, ACL: acl})
}

// startBridge runs the bridge on the system's store, until stopBridge.
func (s *system) startBridge(t *testing.T) {
	var err error
	s.bst, err = boltstore.Open(filepath.Join(s.dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.br, err = bridge.New(bridge.Options{Broker: s.mq.URL(), Password: portalPass, Key: portalKey, Store: s.bst,
		SourceDir: s.srcDir, Provider: sms.NewConsole(io.Discard), From: "0212345678", Control: s.control,
		StallAfter: 2 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.br.Run(ctx) }()
}

func (s *system) stopBridge() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	s.bst.Close()
	s.cancel = nil
}

// published is the centre's latest revision as the bridge published it.
func (s *system) published(t *testing.T, c string) *firmware.Roster {
	p, err := s.bst.Published(c)
	if err != nil || p == nil {
		return nil
	}
	return p.Snapshot.Roster
}

func cardOf(r *firmware.Roster, key string) *firmware.Card {
	if r == nil {
		return nil
	}
	for i := range r.Cards {
		if r.Cards[i].Key == key {
			return &r.Cards[i]
		}
	}
	return nil
}

var mangwon = centre{id: "mangwon1", key: []byte("mangwon1-centre-key-0123"), cards: map[string][]byte{
	"staff": {0x5A, 0x01, 0x01, 0x01}, "k1": {0x04, 0x11, 0x11, 0x11}, "k2": {0x04, 0x22, 0x22, 0x22}}}

var hapjeong = centre{id: "hapjeong", key: []byte("hapjeong-centre-key-4567"), cards: map[string][]byte{
	"staff": {0x5A, 0x02, 0x02, 0x02}, "k1": {0x04, 0x33, 0x33, 0x33}}}

// The device flow with the link down: the spare works and the lost card
// is replaced_card on the very next tap, offline; when the link comes back
// the portal's next revision holds the binding and says it took it in, and
// the terminal's binding no longer needs to sit on top.
func TestEnrolOfflineThenSync(t *testing.T) {
	s := startSystem(t, []devices.Device{{Centre: mangwon.id, ID: "door"}}, mangwon)
	d := startDoor(t, s.mq, mangwon, "door", time.Now().In(firmware.KST))
	waitRosters(t, d)
	rev := d.portalRoster().Revision

	d.offline(true)
	spare := []byte{0x04, 0x99, 0x99, 0x99, 0x01, 0x02, 0x03}
	if f := d.enrolOnDevice("김민준", spare); f.Pattern != firmware.PatternBound {
		t.Fatalf("confirmation %+v", f)
	}
	if f := d.tap(mangwon.cards["k1"]); f.Pattern != firmware.PatternReplaced {
		t.Fatalf("the lost card's next tap, offline: %+v", f)
	}
	if f := d.tap(spare); f.Pattern != firmware.PatternArrival {
		t.Fatalf("the spare, offline: %+v", f)
	}
	// A refusal: k2's card for k1.
	if f := d.enrolOnDevice("김민준", mangwon.cards["k2"]); f.Lines[1] != "다른 아이의 카드" {
		t.Fatalf("another child's card: %+v", f)
	}
	seqs, _ := d.st.Bindings()
	if len(seqs) != 1 {
		t.Fatalf("%d bindings recorded", len(seqs))
	}

	d.offline(false)
	spareKey := firmware.CardKey(mangwon.key, spare)
	applied := firmware.AppliedKey("door", d.st.LogID())
	wait.For(t, 30*time.Second, "the portal's revision with the binding at the terminal", func() bool {
		r := d.portalRoster()
		c := cardOf(r, spareKey)
		return r.Revision > rev && c != nil && c.State == firmware.CardActive && r.Applied[applied] >= seqs[0]
	})
	pub := s.published(t, mangwon.id)
	if c := cardOf(pub, firmware.CardKey(mangwon.key, mangwon.cards["k1"])); c == nil || c.State != firmware.CardReplaced {
		t.Fatalf("the old card in the portal's roster: %+v", c)
	}
	src, err := source.Load(filepath.Join(s.srcDir, mangwon.id+".json"))
	if err != nil || cardOf(src.Roster, spareKey) == nil {
		t.Fatalf("the source does not hold the binding: %v", err)
	}
	if f := d.tap(mangwon.cards["k1"]); f.Pattern != firmware.PatternReplaced {
		t.Fatalf("the lost card after the sync: %+v", f)
	}
	t.Logf("binding seq %d taken in by revision %d (was %d)", seqs[0], d.portalRoster().Revision, rev)
}

// The same card bound offline at two centres: the binding made first wins
// whichever reaches the portal first; the loser's terminal shows it on the
// card's next tap.
func TestEnrolConflictTwoCentres(t *testing.T) {
	for _, laterFirst := range []bool{true, false} {
		name := map[bool]string{true: "later binding arrives first", false: "earlier binding arrives first"}[laterFirst]
		t.Run(name, func(t *testing.T) { conflict(t, laterFirst) })
	}
}

func conflict(t *testing.T, laterFirst bool) {
	s := startSystem(t, []devices.Device{{Centre: mangwon.id, ID: "door-a"}, {Centre: hapjeong.id, ID: "door-b"}}, mangwon, hapjeong)
	now := time.Now().In(firmware.KST)
	a := startDoor(t, s.mq, mangwon, "door-a", now)
	b := startDoor(t, s.mq, hapjeong, "door-b", now.Add(time.Minute)) // b's binding is made later
	waitRosters(t, a, b)
	a.offline(true)
	b.offline(true)
	card := []byte{0x04, 0xAB, 0xCD, 0xEF, 0x10, 0x20, 0x30}
	if f := a.enrolOnDevice("이서연", card); f.Pattern != firmware.PatternBound {
		t.Fatalf("a: %+v", f)
	}
	if f := b.enrolOnDevice("이서연", card); f.Pattern != firmware.PatternBound {
		t.Fatalf("b: %+v", f)
	}
	aKey, bKey := firmware.CardKey(mangwon.key, card), firmware.CardKey(hapjeong.key, card)
	published := func(c centre, key string, state firmware.CardState) func() bool {
		return func() bool { x := cardOf(s.published(t, c.id), key); return x != nil && x.State == state }
	}
	if laterFirst {
		b.offline(false)
		wait.For(t, 30*time.Second, "b's binding published, alone so far", published(hapjeong, bKey, firmware.CardActive))
		a.offline(false)
	} else {
		a.offline(false)
		wait.For(t, 30*time.Second, "a's binding published", published(mangwon, aKey, firmware.CardActive))
		b.offline(false)
	}
	wait.For(t, 30*time.Second, "b's terminal told of the conflict", func() bool {
		c := cardOf(b.portalRoster(), bKey)
		return c != nil && c.State == firmware.CardConflict
	})
	if f := b.tap(card); f.Pattern != firmware.PatternReplaced || f.Lines[1] != "다른 곳에 등록된 카드" {
		t.Fatalf("the loser's next tap: %+v", f)
	}
	wait.For(t, 30*time.Second, "a's binding in a's roster", func() bool {
		c := cardOf(a.portalRoster(), aKey)
		return c != nil && c.State == firmware.CardActive
	})
	if f := a.tap(card); f.Pattern != firmware.PatternArrival {
		t.Fatalf("the winner's tap: %+v", f)
	}
}

// call calls the bridge's control socket as kiumctl does.
func (s *system) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://kiumbridge"+path, rd)
	resp, err := api.ControlClient(s.control).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// The portal's flow: kiumctl enrol (the control socket) sends the signed
// command; the terminal waits for a card for that child; the next card is
// bound with flow portal; the portal's revision holds it, and the history
// says who did it. kiumctl revoke then stops it on the next revision.
func TestEnrolFromPortal(t *testing.T) {
	s := startSystem(t, []devices.Device{{Centre: mangwon.id, ID: "door"}}, mangwon)
	d := startDoor(t, s.mq, mangwon, "door", time.Now().In(firmware.KST))
	waitRosters(t, d)
	// A terminal that has sent no event yet is known by its status.
	var ts []api.TerminalView
	wait.For(t, 20*time.Second, "the terminal's status at the bridge", func() bool {
		s.call(t, "GET", "/terminals?centre="+mangwon.id, nil, &ts)
		return len(ts) == 1 && ts[0].Device == "door" && ts[0].Status.State == "online" && ts[0].Status.RosterRev == d.portalRoster().Revision
	})

	var res api.EnrolResult
	if code := s.call(t, "POST", "/enrol", api.EnrolRequest{Centre: mangwon.id, Child: "mangwon1-k3", By: "op.kim"}, &res); code != http.StatusOK {
		t.Fatalf("enrol: HTTP %d", code)
	}
	if res.Device != "door" {
		t.Fatalf("enrol result %+v", res)
	}
	select {
	case f := <-d.shown:
		if f.Pattern != firmware.PatternEnrol || f.Lines[0] != firmware.MaskName("박지호") || f.Lines[1] != "카드를 대주세요" {
			t.Fatalf("the terminal shows %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal showed no enrolment screen")
	}
	card := []byte{0x04, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22}
	if f := d.tap(card); f.Pattern != firmware.PatternBound {
		t.Fatalf("binding: %+v", f)
	}
	key := firmware.CardKey(mangwon.key, card)
	wait.For(t, 30*time.Second, "the portal's revision with the binding", func() bool {
		c := cardOf(d.portalRoster(), key)
		return c != nil && c.State == firmware.CardActive && c.ChildID == "mangwon1-k3"
	})
	var hist []api.Change
	s.call(t, "GET", "/history?centre="+mangwon.id+"&child=mangwon1-k3", nil, &hist)
	if len(hist) != 1 || hist[0].Flow != firmware.FlowPortal || hist[0].By != "op.kim" || hist[0].Outcome != api.ChangeApplied || hist[0].NewCard != key {
		t.Fatalf("history %+v", hist)
	}
	if f := d.tap(card); f.Pattern != firmware.PatternArrival {
		t.Fatalf("the new card's tap: %+v", f)
	}

	var ch api.Change
	if code := s.call(t, "POST", "/revoke", map[string]string{"centre": mangwon.id, "child": "mangwon1-k3", "by": "op.kim"}, &ch); code != http.StatusOK || ch.OldCard != key {
		t.Fatalf("revoke: HTTP %d %+v", code, ch)
	}
	wait.For(t, 30*time.Second, "the revoke at the terminal", func() bool {
		c := cardOf(d.portalRoster(), key)
		return c != nil && c.State == firmware.CardRevoked
	})
	if f := d.tap(card); f.Pattern != firmware.PatternReplaced {
		t.Fatalf("a revoked card's tap: %+v", f)
	}
}

// Two terminals with one device ID (a cloned SD card): each connection
// takes the ID from the other. The bridge sees their instances come back
// in turn and reports the clash on the terminals' view, instead of the
// terminal flapping silently.
func TestClonedTerminal(t *testing.T) {
	s := startSystem(t, []devices.Device{{Centre: mangwon.id, ID: "door"}}, mangwon)
	now := time.Now().In(firmware.KST)
	startDoor(t, s.mq, mangwon, "door", now)
	startDoor(t, s.mq, mangwon, "door", now)
	var ts []api.TerminalView
	wait.For(t, 30*time.Second, "the clash on the terminals' view", func() bool {
		s.call(t, "GET", "/terminals?centre="+mangwon.id, nil, &ts)
		return len(ts) == 1 && ts[0].Clash != nil && len(ts[0].Clash.Instances) == 2
	})
	t.Logf("clash: %+v", *ts[0].Clash)
}
