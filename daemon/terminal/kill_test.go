package terminal

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/killtest"
)

const killChildEnv = "KIUMTAP_ENROL_KILL_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(killChildEnv); path != "" {
		enrolChild(path)
		return
	}
	os.Exit(m.Run())
}

// spares are the cards the kill test binds to c1 in turn.
var spares = [][]byte{{0xC0, 0, 0, 1}, {0xC0, 0, 0, 2}, {0xC0, 0, 0, 3}}

func spareIndex(r *firmware.Roster) int {
	for i, uid := range spares {
		if c := r.CardByKey(firmware.CardKey(key, uid)); c != nil && c.State == firmware.CardActive {
			return i
		}
	}
	return -1
}

// enrolChild runs whole enrolments on a terminal as fast as it can — staff
// card, Next until c1, Choose, the next spare — with a tap of c1's card
// between them, and says "bound SEQ INDEX" when each confirmation shows.
func enrolChild(path string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "child:", err); os.Exit(3) }
	st, err := store.Open(store.Options{Path: path, DeviceID: "T-KILL", LockTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	clk := &fixedClock{time.Date(2026, 11, 23, 14, 0, 0, 0, firmware.KST)}
	if _, _, err := st.Roster(); err != nil {
		if err := st.ApplyRoster(enrolRoster(), clk.t); err != nil {
			fail(err)
		}
	}
	var shown firmware.Feedback
	term, err := New(Options{Store: st, Clock: clk, Key: key, Show: func(f firmware.Feedback) { shown = f }})
	if err != nil {
		fail(err)
	}
	for {
		r, _, _ := st.Roster()
		next := (spareIndex(r) + 1) % len(spares)
		clk.t = clk.t.Add(time.Second)
		term.Tap(staffUID)
		for i := 0; shown.Lines[1] != firmware.MaskName("김민준"); i++ {
			if i > 5 {
				fail(fmt.Errorf("c1 not in the list: %q", shown.Lines))
			}
			term.Press(firmware.ButtonNext)
		}
		term.Press(firmware.ButtonChoose)
		ev, dec, err := term.Tap(spares[next])
		if err != nil || dec.Outcome != firmware.CardBound {
			fail(fmt.Errorf("binding spare %d: %+v %v", next, dec, err))
		}
		fmt.Printf("bound %d %d\n", ev.Seq, next)
		clk.t = clk.t.Add(time.Minute)
		term.Tap(spares[next])
	}
}

// A terminal enrolling cards as fast as it can is killed with SIGKILL at
// random moments. After each kill c1 has exactly one active card: the one
// last confirmed, or the one being bound when it died — never neither,
// never both — and it agrees with the last card_bound event in the log.
func TestEnrolKill9(t *testing.T) {
	kills := 100
	if testing.Short() {
		kills = 10
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	rng := rand.New(rand.NewPCG(6, 6))
	last := -1 // spare index last confirmed
	confirmed, newer, replayed := 0, 0, 0
	for k := range kills {
		killtest.Run(t, killtest.Options{Env: []string{killChildEnv + "=" + path}, Rand: rng, MaxDelay: 20 * time.Millisecond}, func(l string) {
			f := strings.Fields(l)
			if len(f) != 3 || f[0] != "bound" {
				t.Fatalf("child said %q", l)
			}
			last, _ = strconv.Atoi(f[2])
		})
		got, fromJournal := verifyEnrolment(t, path, k)
		replayed += fromJournal
		switch got {
		case last:
			confirmed++
		case (last + 1) % len(spares):
			newer++ // bound and recorded, killed before the confirmation
		default:
			t.Fatalf("kill %d: active spare %d, last confirmed %d", k, got, last)
		}
	}
	t.Logf("%d kills: %d left the binding last confirmed, %d the one in flight; %d reopenings applied the journal", kills, confirmed, newer, replayed)
	if replayed == 0 && !testing.Short() {
		t.Error("no kill left a record in the journal only: the replay was not tested")
	}
}

// verifyEnrolment opens the store as kiumtapd would after the kill and
// returns the index of c1's active spare, and 1 if the journal held
// records bbolt did not.
func verifyEnrolment(t *testing.T, path string, k int) (int, int) {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatalf("kill %d: reopening: %v", k, err)
	}
	defer st.Close()
	r, _, err := st.Roster()
	if err != nil {
		t.Fatal(err)
	}
	var active []string
	for _, c := range r.Cards {
		if c.ChildID == "c1" && c.State == firmware.CardActive {
			active = append(active, c.Key)
		}
	}
	if len(active) != 1 {
		t.Fatalf("kill %d: c1 has %d active cards", k, len(active))
	}
	var lastBound store.Event
	bound := 0
	st.Events(0, func(ev store.Event) bool {
		if ev.Outcome == firmware.CardBound {
			lastBound = ev
			bound++
		}
		return true
	})
	seqs, _ := st.Bindings()
	if bound == 0 || lastBound.CardKey != active[0] || len(seqs) != bound || seqs[len(seqs)-1] != lastBound.Seq {
		t.Fatalf("kill %d: the log (%d card_bound, last %+v) and the roster (active %s, %d changes) disagree", k, bound, lastBound, active[0], len(seqs))
	}
	return spareIndex(r), min(st.Replayed(), 1)
}
