package bridge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/binder"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

// rosterWatch keeps the latest signed snapshot of each centre and the
// deltas, as a terminal would read them off the broker.
type rosterWatch struct {
	mu     sync.Mutex
	snaps  map[string]*firmware.Roster
	deltas map[string][]*protocol.Delta
}

func watchRosters(t *testing.T, broker string) *rosterWatch {
	w := &rosterWatch{snaps: map[string]*firmware.Roster{}, deltas: map[string][]*protocol.Delta{}}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("watcher").SetUsername("portal").SetPassword(portalPass).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	pub := portalKey.Public().(ed25519.PublicKey)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		p := strings.Split(m.Topic(), "/") // kium/v1/c/C/roster[/delta]
		payload, err := protocol.Open(pub, m.Payload(), protocol.MaxRoster)
		if err != nil {
			t.Errorf("%s: %v", m.Topic(), err)
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(p) == 5 {
			r, err := protocol.DecodeSnapshot(payload, p[3])
			if err != nil {
				t.Errorf("%s: %v", m.Topic(), err)
				return
			}
			if old := w.snaps[p[3]]; old == nil || r.Revision > old.Revision {
				w.snaps[p[3]] = r
			}
			return
		}
		d, err := protocol.DecodeDelta(payload, p[3])
		if err != nil {
			t.Errorf("%s: %v", m.Topic(), err)
			return
		}
		w.deltas[p[3]] = append(w.deltas[p[3]], d)
	}
	for _, topic := range []string{"kium/v1/c/+/roster", "kium/v1/c/+/roster/delta"} {
		if tok := c.Subscribe(topic, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("watcher: %v", tok.Error())
		}
	}
	return w
}

func (w *rosterWatch) latest(centre string) *firmware.Roster {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snaps[centre]
}

// cardIn returns a card's child and state in a roster.
func cardIn(r *firmware.Roster, key string) (string, firmware.CardState) {
	if r == nil {
		return "", ""
	}
	for _, c := range r.Cards {
		if c.Key == key {
			return c.ChildID, c.State
		}
	}
	return "", ""
}

// boundEvent is a terminal's card_bound event.
func boundEvent(centre, device, log string, seq uint64, child string, uid, key []byte, old string, at time.Time) protocol.Event {
	return protocol.Event{V: 1, ID: fmt.Sprintf("%s-%d", device, seq), Centre: centre, Device: device, Log: log, Seq: seq, Time: at, ClockSynced: true,
		BootID: "boot", MonoNS: 1, Card: firmware.CardKey(key, uid), UID: strings.ToUpper(hex.EncodeToString(uid)), Child: child,
		Outcome: protocol.OutcomeCardBound, Reason: "device", OldCard: old, By: "s1", RosterRev: 1}
}

func publishEvents(t *testing.T, c mqtt.Client, evs ...protocol.Event) {
	t.Helper()
	raw, _ := json.Marshal(protocol.Batch{V: 1, Events: evs})
	publishAll(t, c, []string{protocol.Topics{Centre: evs[0].Centre, Device: evs[0].Device}.Events()}, [][]byte{raw})
}

func loadSource(t *testing.T, dir, centre string) *firmware.Roster {
	t.Helper()
	s, err := source.Load(filepath.Join(dir, centre+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return s.Roster
}

// deliver publishes a terminal's binding event until its centre's source
// takes it in, sending it again every 2 s as a terminal does while no ack
// comes (the bridge may not have subscribed yet), and returns the source.
func deliver(t *testing.T, c mqtt.Client, dir string, e protocol.Event) *firmware.Roster {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		publishEvents(t, c, e)
		resend := time.Now().Add(2 * time.Second)
		for time.Now().Before(resend) {
			if s, err := source.Load(filepath.Join(dir, e.Centre+".json")); err == nil && s.Roster.Applied[e.Device+"/"+e.Log] >= e.Seq {
				return s.Roster
			}
			time.Sleep(10 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's source did not take in %s in 30 s", e.Centre, e.ID)
		}
	}
}

var newUID = []byte{0x04, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC}

// A card_bound event over MQTT: the source takes the binding in (the old
// card replaced) with the log's sequence, a new revision goes out as a
// signed snapshot and delta, and no text is queued. A binding to a child
// staff removed from the source meanwhile is recorded as refused, and
// changes nothing but applied_bindings.
func TestBindingEventOverMQTT(t *testing.T) {
	mq := startTestBroker(t)
	dir := t.TempDir()
	writeTestSource(t, dir)
	st, err := boltstore.Open(filepath.Join(dir, "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	texts := &countTexts{}
	watch := watchRosters(t, mq.URL())
	runBridges(t, mq.URL(), st, dir, 1, texts)
	wait.For(t, 20*time.Second, "revision 1", func() bool { r := watch.latest("mangwon1"); return r != nil && r.Revision == 1 })
	pub := publisher(t, mq.URL())

	const key = "T-1/9f2c4e1a7b3d5f60"
	oldKey, newKey := firmware.CardKey(centreKey, uids["c2"]), firmware.CardKey(centreKey, newUID)
	r := deliver(t, pub, dir, boundEvent("mangwon1", "T-1", "9f2c4e1a7b3d5f60", 1, "c2", newUID, centreKey, oldKey, time.Now()))
	if ch, s := cardIn(r, newKey); ch != "c2" || s != firmware.CardActive {
		t.Fatalf("the new card in the source: %s %s", ch, s)
	}
	if _, s := cardIn(r, oldKey); s != firmware.CardReplaced {
		t.Fatalf("the old card in the source: %s", s)
	}
	wait.For(t, 20*time.Second, "the revision with the binding", func() bool {
		r := watch.latest("mangwon1")
		_, s := cardIn(r, newKey)
		return r.Applied[key] == 1 && s == firmware.CardActive
	})
	if rev := watch.latest("mangwon1").Revision; rev != 2 {
		t.Fatalf("revision %d, want 2", rev)
	}
	wait.For(t, 20*time.Second, "the delta 1→2 with applied_bindings", func() bool {
		watch.mu.Lock()
		defer watch.mu.Unlock()
		ds := watch.deltas["mangwon1"]
		return len(ds) > 0 && ds[len(ds)-1].Base == 1 && ds[len(ds)-1].Revision == 2 && ds[len(ds)-1].Applied[key] == 1
	})
	hist, _ := binder.History(context.Background(), st.Contract(), "mangwon1", "c2")
	if len(hist) != 1 || hist[0].Outcome != api.ChangeApplied || hist[0].OldCard != oldKey || hist[0].NewCard != newKey {
		t.Fatalf("history %+v", hist)
	}

	// Staff remove c4 from the source.
	src := testSource(firmware.DateOf(time.Now()))
	src.Roster.Children = slices.DeleteFunc(src.Roster.Children, func(c firmware.Child) bool { return c.ID == "c4" })
	src.Roster.Cards = slices.DeleteFunc(src.Roster.Cards, func(c firmware.Card) bool { return c.ChildID == "c4" })
	src.Roster.Bookings = slices.DeleteFunc(src.Roster.Bookings, func(b firmware.Booking) bool { return b.ChildID == "c4" })
	delete(src.Guardians, "c4")
	src.Roster.Applied = map[string]uint64{key: 1}
	src.Roster.Cards = loadSource(t, dir, "mangwon1").Cards
	src.Roster.Cards = slices.DeleteFunc(src.Roster.Cards, func(c firmware.Card) bool { return c.ChildID == "c4" })
	f := filepath.Join(t.TempDir(), "mangwon1.json")
	raw, _ := json.Marshal(src)
	os.WriteFile(f, raw, 0o600)
	if _, err := source.Push(dir, "mangwon1", "", f, time.Now()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the revision without c4", func() bool { return len(watch.latest("mangwon1").Children) == 4 })
	before := loadSource(t, dir, "mangwon1")

	after := deliver(t, pub, dir, boundEvent("mangwon1", "T-1", "9f2c4e1a7b3d5f60", 2, "c4", []byte{0x04, 1, 2, 3, 4, 5, 6}, centreKey, "", time.Now()))
	hist, _ = binder.History(context.Background(), st.Contract(), "mangwon1", "c4")
	if len(hist) != 1 || hist[0].Outcome != api.ChangeRefused || hist[0].Reason != firmware.RefuseUnknownChild {
		t.Fatalf("c4's history %+v", hist)
	}
	after.Applied[key] = 1
	if protocol.Digest(after) != protocol.Digest(before) {
		t.Fatal("a refused binding changed the source beyond applied_bindings")
	}
	wait.For(t, 20*time.Second, "the revision taking in the refused binding", func() bool { return watch.latest("mangwon1").Applied[key] == 2 })

	// Bindings text nobody.
	n := 0
	st.Jobs(func(store.Job) bool { n++; return true })
	texts.mu.Lock()
	sent := len(texts.keys)
	texts.mu.Unlock()
	if n != 0 || sent != 0 {
		t.Fatalf("%d texts queued, %d sent for bindings", n, sent)
	}
}

// The same card bound offline at two centres: the binding made first
// wins whichever event arrives first. The loser's published roster has
// the card in conflict; the final sources are the same both ways; the
// store holds no raw UID.
func TestConflictAcrossCentres(t *testing.T) {
	hapKey := []byte("hapjeong1-centre-key-0123456789")
	uid := []byte{0x04, 0x5E, 0xC0, 0x11, 0xDE, 0xAD, 0x42}
	base := time.Now().Add(-time.Hour).UTC()
	// The loser at mangwon1 was bound 10 minutes after the winner at hapjeong1.
	loser := boundEvent("mangwon1", "T-1", "La", 1, "c1", uid, centreKey, firmware.CardKey(centreKey, uids["c1"]), base.Add(10*time.Minute))
	winner := boundEvent("hapjeong1", "H-1", "Lb", 1, "c5", uid, hapKey, "", base)
	finals := map[string][2]string{}
	for _, order := range [][]protocol.Event{{loser, winner}, {winner, loser}} {
		name := order[0].Centre + "-first"
		t.Run(name, func(t *testing.T) {
			mq := startTestBroker(t)
			dir := t.TempDir()
			writeTestSource(t, dir)
			hap := testSource(firmware.DateOf(time.Now()))
			hap.Roster.Centre.ID, hap.Roster.Centre.Name = "hapjeong1", "합정동"
			for i := range hap.Roster.Cards {
				hap.Roster.Cards[i].Key = firmware.CardKey(hapKey, []byte{byte(i), 0xAA, 0xBB, 0xCC})
			}
			raw, _ := json.Marshal(hap)
			os.WriteFile(filepath.Join(dir, "hapjeong1.json"), raw, 0o600)
			dbPath := filepath.Join(dir, "bridge.db")
			st, err := boltstore.Open(dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			watch := watchRosters(t, mq.URL())
			runBridges(t, mq.URL(), st, dir, 1, &countTexts{})
			pub := publisher(t, mq.URL())
			for _, e := range order {
				deliver(t, pub, dir, e)
			}
			wait.For(t, 20*time.Second, "the loser's roster with the card in conflict", func() bool {
				r := watch.latest("mangwon1")
				_, s := cardIn(r, loser.Card)
				return s == firmware.CardConflict && r.Applied["T-1/La"] == 1 // s is set: r is not nil
			})
			wait.For(t, 20*time.Second, "the winner's roster with the card active", func() bool {
				r := watch.latest("hapjeong1")
				ch, s := cardIn(r, winner.Card)
				return r != nil && ch == "c5" && s == firmware.CardActive && r.Applied["H-1/Lb"] == 1
			})
			m, h := loadSource(t, dir, "mangwon1"), loadSource(t, dir, "hapjeong1")
			if _, s := cardIn(m, firmware.CardKey(centreKey, uids["c1"])); s != firmware.CardReplaced {
				t.Fatalf("the loser's child's old card: %s, want replaced", s)
			}
			cm, _ := json.Marshal(sortedByKey(m.Cards))
			ch, _ := json.Marshal(sortedByKey(h.Cards))
			finals[name] = [2]string{string(cm), string(ch)}
			hist, _ := binder.History(context.Background(), st.Contract(), "mangwon1", "c1")
			if last := hist[len(hist)-1]; last.Outcome != api.ChangeConflict || last.Reason != firmware.RefuseBoundElsewhere {
				t.Fatalf("the loser's history %+v", hist)
			}
			db, err := os.ReadFile(dbPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, needle := range [][]byte{uid, []byte(hex.EncodeToString(uid)), []byte(strings.ToUpper(hex.EncodeToString(uid)))} {
				if bytes.Contains(db, needle) {
					t.Fatalf("the store holds the raw UID (%q)", needle)
				}
			}
		})
	}
	if f := finals["mangwon1-first"]; f != finals["hapjeong1-first"] {
		t.Fatalf("the order of arrival changed the result:\n%v\n%v", f, finals["hapjeong1-first"])
	}
}

func sortedByKey(cs []firmware.Card) []firmware.Card {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b firmware.Card) int { return strings.Compare(a.Key, b.Key) })
	return cs
}
