package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/bridge"
	"kiumtap/portal/devices"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

const (
	termPass   = "terminal-secret"
	portalPass = "portal-secret"
)

var portalKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))

// cardSource: c1 and c2 in use, c3 scheduled (이용예정), each with a card.
func cardSource() *source.Source {
	today := firmware.DateOf(time.Now())
	from, to := today.AddDays(-30), today.AddDays(30)
	day := firmware.Window{Start: 0, End: 24 * 60}
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	book := func(id, child string, st firmware.BookingStatus) firmware.Booking {
		return firmware.Booking{ID: id, ChildID: child, Type: firmware.Regular, Status: st, From: from, To: to, Weekdays: all, Window: day}
	}
	return &source.Source{Roster: &firmware.Roster{Revision: 1,
		Centre:   firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{{Name: "연중", From: from, To: to, Hours: day, Weekdays: all}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}},
		Cards: []firmware.Card{{Key: firmware.CardKey(key, []byte{1}), ChildID: "c1", State: firmware.CardActive},
			{Key: firmware.CardKey(key, []byte{2}), ChildID: "c2", State: firmware.CardActive}, {Key: firmware.CardKey(key, []byte{3}), ChildID: "c3", State: firmware.CardActive}},
		Bookings: []firmware.Booking{book("b1", "c1", firmware.InUse), book("b2", "c2", firmware.InUse), book("b3", "c3", firmware.Scheduled)}}}
}

// runCardBridge runs a bridge of mangwon1 (cardSource) on the broker,
// with console texts and a control socket, until the test ends; o gives
// the rest of its options. It returns the sources' directory, the store
// and the control socket.
func runCardBridge(t *testing.T, broker string, o bridge.Options) (dir string, st *boltstore.Store, sock string) {
	t.Helper()
	dir = t.TempDir()
	if err := source.Write(filepath.Join(dir, "mangwon1.json"), cardSource()); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "kb.sock")
	o.Broker, o.Password, o.Key, o.Store, o.SourceDir, o.Provider, o.Control = broker, portalPass, portalKey, st, dir, sms.NewConsole(io.Discard), sock
	b, err := bridge.New(o)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return dir, st, sock
}

func connect(t *testing.T, broker, user, pass, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetUsername(user).SetPassword(pass).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// tapFrom publishes one tap event of a terminal, so the bridge knows it,
// until the bridge has stored it (sent again every 2 s, as a terminal
// does while no ack comes).
func tapFrom(t *testing.T, c mqtt.Client, st *boltstore.Store, device string) {
	t.Helper()
	e := protocol.Event{V: 1, ID: device + "-1", Centre: "mangwon1", Device: device, Log: "L" + device, Seq: 1, Time: time.Now(), ClockSynced: true,
		BootID: "b", Card: firmware.CardKey(key, []byte{9}), Outcome: string(firmware.UnknownCard), Reason: "unknown_card", RosterRev: 1}
	raw, _ := json.Marshal(protocol.Batch{V: 1, Events: []protocol.Event{e}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tok := c.Publish(protocol.Topics{Centre: "mangwon1", Device: device}.Events(), 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		resend := time.Now().Add(2 * time.Second)
		for time.Now().Before(resend) {
			if d, _ := st.Devices("mangwon1"); slices.Contains(d, device) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's event not stored in 30 s", device)
		}
	}
}

// kiumctl's portal-side commands against a running bridge on a real
// broker, with a test client playing terminal T-1: list, history, revoke
// (refused on a scheduled booking, allowed otherwise), enrol (a signed
// command on T-1's topic, answered), and the errors of a terminal that
// does not answer, an unknown one, and a centre of several.
func TestCardCommands(t *testing.T) {
	// The broker's ACL as kiumbridge device acl writes it, one password per
	// terminal (the shipped configuration uses certificates instead).
	acl, err := devices.ACL("portal", []devices.Device{{Centre: "mangwon1", ID: "T-1"}, {Centre: "mangwon1", ID: "T-9"}})
	if err != nil {
		t.Fatal(err)
	}
	mq := mosqtest.Start(t, mosqtest.Options{Users: map[string]string{"T-1": termPass, "T-9": termPass, "portal": portalPass}, ACL: acl})
	dir, st, sock := runCardBridge(t, mq.URL(), bridge.Options{CommandWait: time.Second})
	if fi, err := waitSocket(t, sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi.Mode(), err)
	}

	kiumctl := func(args ...string) (string, error) {
		var out, errs bytes.Buffer
		err := run(context.Background(), args, &out, &errs)
		return out.String() + errs.String(), err
	}
	out, err := kiumctl("cards", "list", "-bridge", sock, "-centre", "mangwon1")
	t.Logf("kiumctl cards list -centre mangwon1:\n%s", out)
	if err != nil || !strings.Contains(out, "김*준") || strings.Contains(out, "김민준") || strings.Count(out, "active") != 3 {
		t.Fatalf("cards list: %v\n%s", err, out)
	}
	out, err = kiumctl("cards", "list", "-bridge", sock, "-centre", "mangwon1", "-json")
	var view api.CardsView
	if err != nil || json.Unmarshal([]byte(out), &view) != nil || len(view.Children) != 3 || view.Children[1].State != firmware.CardActive {
		t.Fatalf("cards list -json: %v\n%s", err, out)
	}
	if _, err := kiumctl("cards", "list", "-bridge", sock); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("no -centre: %v", err)
	}
	if _, err := kiumctl("cards", "list", "-bridge", sock, "-centre", "nowhere"); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("an unknown centre: %v", err)
	}

	// Revoke: refused on a scheduled booking (Q18), allowed otherwise.
	_, err = kiumctl("revoke", "-bridge", sock, "-centre", "mangwon1", "-child", "c3", "-by", "op.kim")
	if err == nil || errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "scheduled_booking") || !strings.Contains(err.Error(), "Q18") {
		t.Fatalf("revoking c3: %v", err)
	}
	out, err = kiumctl("revoke", "-bridge", sock, "-centre", "mangwon1", "-child", "c2", "-by", "op.kim")
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoking c2: %v\n%s", err, out)
	}
	src, _ := source.Load(filepath.Join(dir, "mangwon1.json"))
	if c := src.Roster.CardByKey(firmware.CardKey(key, []byte{2})); c.State != firmware.CardRevoked {
		t.Fatalf("c2's card in the source: %s", c.State)
	}
	if _, err := kiumctl("revoke", "-bridge", sock, "-centre", "mangwon1", "-child", "c2", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "no_active_card") {
		t.Fatalf("revoking c2 again: %v", err)
	}
	out, err = kiumctl("cards", "history", "-bridge", sock, "-centre", "mangwon1", "c2")
	t.Logf("kiumctl cards history -centre mangwon1 c2:\n%s", out)
	if err != nil || !strings.Contains(out, "applied") || !strings.Contains(out, "refused (등록된 카드 없음)") || !strings.Contains(out, "op.kim") || !strings.Contains(out, "portal") {
		t.Fatalf("history of c2: %v\n%s", err, out)
	}
	out, err = kiumctl("cards", "history", "-bridge", sock, "-centre", "mangwon1", "-json", "c3")
	var hist []api.Change
	if err != nil || json.Unmarshal([]byte(out), &hist) != nil || len(hist) != 1 || hist[0].Reason != firmware.RefuseScheduledBooking {
		t.Fatalf("history of c3: %v\n%s", err, out)
	}

	// Terminal T-1: it checks each command's signature and answers.
	term := connect(t, mq.URL(), "T-1", termPass, "T-1")
	var mu sync.Mutex
	var got []protocol.Command
	pub := portalKey.Public().(ed25519.PublicKey)
	topics := protocol.Topics{Centre: "mangwon1", Device: "T-1"}
	sub := term.Subscribe(topics.Cmd(), 1, func(c mqtt.Client, m mqtt.Message) {
		payload, err := protocol.Open(pub, m.Payload(), protocol.MaxMessage)
		if err != nil {
			t.Errorf("the command's signature: %v", err)
			return
		}
		cmd, err := protocol.DecodeCommand(payload, "mangwon1", "T-1", time.Now())
		if err != nil {
			t.Errorf("the command: %v", err)
			return
		}
		args, err := protocol.DecodeEnrolArgs(cmd.Args)
		if err != nil || cmd.Name != protocol.CmdEnrol {
			t.Errorf("the command %s: %v", cmd.Name, err)
			return
		}
		mu.Lock()
		got = append(got, *cmd)
		mu.Unlock()
		rep := protocol.Reply{V: 1, ID: cmd.ID, OK: true}
		if args.Child == "c2" {
			rep.OK, rep.Error = false, "no child c2 in this terminal's roster"
		} else {
			rep.Result, _ = json.Marshal(map[string]any{"child": args.Child, "screen": []string{"김*준", "카드를 대주세요"}})
		}
		raw, _ := json.Marshal(rep)
		c.Publish(topics.Reply(), 1, false, raw)
	})
	if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
		t.Fatal(sub.Error())
	}
	if _, err := kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c1", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Fatalf("enrol before any terminal sent events: %v", err)
	}
	tapFrom(t, term, st, "T-1")

	before := time.Now()
	out, err = kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c1", "-by", "op.kim")
	t.Logf("kiumctl enrol -centre mangwon1 -child c1:\n%s", out)
	if err != nil || !strings.Contains(out, "T-1") || !strings.Contains(out, "카드를 대주세요") || !strings.Contains(out, "김*준") {
		t.Fatalf("enrol: %v\n%s", err, out)
	}
	mu.Lock()
	cmd := got[0]
	mu.Unlock()
	if cmd.Centre != "mangwon1" || cmd.Device != "T-1" || cmd.Expires.Before(before.Add(4*time.Minute)) || cmd.Expires.After(time.Now().Add(5*time.Minute)) {
		t.Fatalf("the command: %+v", cmd)
	}
	if !strings.Contains(string(cmd.Args), `"by":"op.kim"`) {
		t.Fatalf("args %s", cmd.Args)
	}
	if _, err := kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c2", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "terminal T-1 refused") {
		t.Fatalf("the terminal refusing: %v", err)
	}
	if _, err := kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c9", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "unknown_child") {
		t.Fatalf("a child not in the roster: %v", err)
	}
	if _, err := kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c1", "-device", "T-9", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "T-9") || !strings.Contains(err.Error(), "T-1") {
		t.Fatalf("an unknown terminal: %v", err)
	}

	// A second terminal, which never answers.
	tapFrom(t, connect(t, mq.URL(), "portal", portalPass, "terminals"), st, "T-2")
	if _, err := kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c1", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "T-1, T-2") {
		t.Fatalf("enrol at a centre of two terminals, none named: %v", err)
	}
	start := time.Now()
	_, err = kiumctl("enrol", "-bridge", sock, "-centre", "mangwon1", "-child", "c1", "-device", "T-2", "-by", "op.kim")
	if err == nil || !strings.Contains(err.Error(), "terminal T-2 did not answer") || !strings.Contains(err.Error(), "offline?") {
		t.Fatalf("a terminal that does not answer: %v", err)
	}
	t.Logf("no answer reported after %v; %s", time.Since(start).Round(time.Millisecond), err)

	// Terminals: a terminal's retained status, then its last will.
	t9 := connect(t, mq.URL(), "T-9", termPass, "T-9")
	status := func(payload string) {
		t.Helper()
		if tok := t9.Publish("kium/v1/c/mangwon1/d/T-9/status", 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	status(`{"v":1,"state":"online","time":"2026-11-23T06:00:00Z","outbox_depth":4,"oldest_unacked_age_s":95,"roster_revision":7,"roster_age_s":7200,"clock_synced":true,"reader_healthy":false,"reader_recoveries":2}`)
	wait.For(t, 10*time.Second, "T-9 in kiumctl terminals", func() bool {
		out, err = kiumctl("terminals", "-bridge", sock, "-centre", "mangwon1")
		return err == nil && strings.Contains(out, "T-9")
	})
	t.Logf("kiumctl terminals -centre mangwon1:\n%s", out)
	for _, want := range []string{"online", "rev 7, 2h old", "FAILED (2 resets)", "1m"} {
		if !strings.Contains(out, want) {
			t.Fatalf("terminals lacks %q:\n%s", want, out)
		}
	}
	// T-9 sends a batch with a hole, as a terminal of an older version
	// did: refused, T-9 told why, and the refusal on the operator's view.
	var evs []protocol.Event
	for _, seq := range []uint64{27, 32} {
		evs = append(evs, protocol.Event{V: 1, ID: fmt.Sprintf("T-9-%d", seq), Centre: "mangwon1", Device: "T-9", Log: "L9", Seq: seq, Time: time.Now(),
			ClockSynced: true, BootID: "b", Outcome: string(firmware.UnknownCard), Reason: "unknown_card", RosterRev: 1})
	}
	told := make(chan *protocol.Ack, 4)
	if tok := t9.Subscribe("kium/v1/c/mangwon1/d/T-9/ack", 1, func(_ mqtt.Client, m mqtt.Message) {
		if a, err := protocol.DecodeAck(m.Payload()); err == nil && a.Refused != nil {
			told <- a
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	holed, _ := json.Marshal(protocol.Batch{V: 1, Events: evs})
	if tok := t9.Publish("kium/v1/c/mangwon1/d/T-9/events", 1, false, holed); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case a := <-told:
		if a.Refused.Seq != 27 || !strings.Contains(a.Refused.Reason, "not the event after T-9-27") {
			t.Fatalf("T-9 told %+v", a.Refused)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("T-9 was not told of the refusal")
	}
	out, err = kiumctl("terminals", "-bridge", sock, "-centre", "mangwon1")
	if err != nil || !strings.Contains(out, "EVENTS REFUSED by the portal: terminal T-9, 1 message since") || !strings.Contains(out, "from event 27: events[1]: not the event after T-9-27") {
		t.Fatalf("the refusal in kiumctl terminals: %v\n%s", err, out)
	}
	t.Logf("kiumctl terminals after a refused batch:\n%s", out)

	status(`{"v":1,"state":"offline"}`)
	wait.For(t, 10*time.Second, "T-9 offline", func() bool {
		out, err = kiumctl("terminals", "-bridge", sock, "-centre", "mangwon1")
		return err == nil && strings.Contains(out, "offline")
	})

	// Gaps: none stalled here; accepting one that is not stalled is
	// refused, and the command needs the confirmed -through.
	out, err = kiumctl("gaps", "-bridge", sock, "-centre", "mangwon1")
	if err != nil || !strings.Contains(out, "no stalled terminal") {
		t.Fatalf("gaps: %v\n%s", err, out)
	}
	if _, err := kiumctl("gap", "accept", "-bridge", sock, "-centre", "mangwon1", "-device", "T-1", "-by", "op.kim"); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("gap accept without -through: %v", err)
	}
	if _, err := kiumctl("gap", "accept", "-bridge", sock, "-centre", "mangwon1", "-device", "T-1", "-through", "5", "-by", "op.kim"); err == nil || !strings.Contains(err.Error(), "no stalled event log") {
		t.Fatalf("gap accept with no stall: %v", err)
	}
}

// waitSocket waits for the control socket to answer.
func waitSocket(t *testing.T, path string) (os.FileInfo, error) {
	t.Helper()
	wait.For(t, 20*time.Second, "the control socket", func() bool {
		var v api.CardsView
		return askBridge(context.Background(), path, "GET", "/cards?centre=mangwon1", nil, &v) == nil
	})
	return os.Stat(path)
}
