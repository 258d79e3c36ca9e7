package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/killtest"
)

const crashChildEnv = "KIUMTAP_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild taps as fast as it can and says "fed SEQ OUTCOME CHILD" after
// each tap is committed: the moment the terminal would give feedback.
func crashChild(path string) {
	s, err := Open(Options{Path: path, DeviceID: "T-CRASH", LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	if _, _, err := s.Roster(); errors.Is(err, ErrNoRoster) {
		if err := s.ApplyRoster(testRoster(1), kst("2026-11-23 08:00:00")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
	}
	o, err := s.Outbox()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	base := kst("2026-11-23 13:00:00")
	for i := o.LastSeq; ; i++ {
		now := base.Add(time.Duration(i) * 37 * time.Second) // days go by, midnight included
		ev, dec, err := s.Tap(TapRequest{At: stamp(now), CardKey: ck(byte(1 + rng.IntN(4)))})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stdout, "fed %d %s %s\n", ev.Seq, dec.Outcome, dec.ChildID)
		if i%50 == 0 {
			s.CloseDay(stamp(now), firmware.Settings{})
		}
	}
}

// A child process tapping as fast as it can is killed with SIGKILL at
// random moments, 200 times. After each kill: every tap that reached
// feedback is in the log exactly once with what was fed back, sequences run
// 1, 2, 3… with no reuse and no gap, and presence agrees with the events.
func TestCrashKill9(t *testing.T) {
	kills := 200
	if testing.Short() {
		kills = 20
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(42, 42))
	fed := map[uint64]string{}
	replayed := 0
	for k := range kills {
		// Let it tap for a while: from its first feedback on, 0 to 30 ms.
		killtest.Run(t, killtest.Options{Env: []string{crashChildEnv + "=" + path}, Rand: rng, MaxDelay: 30 * time.Millisecond}, func(l string) {
			f := strings.Fields(l)
			if len(f) < 3 {
				t.Fatalf("child said %q", l)
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("child said %q", l)
			}
			if prev, dup := fed[seq]; dup {
				t.Fatalf("kill %d: sequence %d fed back twice (%q, then %q)", k, seq, prev, l)
			}
			fed[seq] = strings.Join(f[2:], " ")
		})
		replayed += verifyAfterCrash(t, path, fed, k)
	}
	t.Logf("%d kills, %d taps fed back, %d found in the journal only", kills, len(fed), replayed)
	if replayed == 0 {
		t.Error("no kill left a tap in the journal only: the replay was not tested")
	}
}

func verifyAfterCrash(t *testing.T, path string, fed map[uint64]string, k int) (replayed int) {
	t.Helper()
	s, err := Open(Options{Path: path, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("kill %d: reopening: %v", k, err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("kill %d: consistency: %v", k, err)
	}
	stored := map[uint64]string{}
	var last uint64
	s.Events(0, func(ev Event) bool {
		if ev.Seq != last+1 {
			t.Fatalf("kill %d: sequence %d follows %d", k, ev.Seq, last)
		}
		last = ev.Seq
		stored[ev.Seq] = strings.TrimSpace(fmt.Sprintf("%s %s", ev.Outcome, ev.ChildID))
		return true
	})
	for seq, what := range fed {
		if got, ok := stored[seq]; !ok || got != what {
			t.Fatalf("kill %d: fed back %d %q, the log has %q", k, seq, what, got)
		}
	}
	got, err := s.Presence()
	if err != nil {
		t.Fatal(err)
	}
	if want := replay(t, s); !samePresence(got, want) {
		t.Fatalf("kill %d: presence %+v disagrees with the log %+v", k, got, want)
	}
	return s.Replayed()
}
