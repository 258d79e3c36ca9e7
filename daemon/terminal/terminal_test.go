package terminal

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) Stamp() store.Stamp { return store.Stamp{Time: c.t, Synced: true} }

var key = []byte("0123456789abcdef")

func roster() *firmware.Roster {
	d := func(s string) firmware.Date { v, _ := firmware.ParseDate(s); return v }
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	return &firmware.Roster{
		Revision: 1,
		Centre: firmware.Centre{ID: "c", Name: "망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: d("2026-09-01"), To: d("2026-12-31"), Hours: firmware.Window{Start: 13 * 60, End: 19 * 60}, Weekdays: all},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}},
		Cards:    []firmware.Card{{Key: firmware.CardKey(key, []byte{1, 2, 3, 4}), ChildID: "c1", State: firmware.CardActive}},
		Bookings: []firmware.Booking{{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse,
			From: d("2026-09-01"), To: d("2026-12-31"), Weekdays: all, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}}},
	}
}

// Feedback comes only after the tap is in the store.
func TestFeedbackAfterCommit(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "t.db"), DeviceID: "T"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 15, 2, 0, 0, firmware.KST)
	if err := st.ApplyRoster(roster(), now); err != nil {
		t.Fatal(err)
	}
	clk := &fixedClock{now}
	var shown []firmware.Feedback
	var term *Terminal
	term, err = New(Options{Store: st, Clock: clk, Key: key, Show: func(f firmware.Feedback) {
		o, _ := st.Outbox()
		if f.Pattern != firmware.PatternError && o.LastSeq != uint64(len(shown)+1) {
			t.Errorf("feedback %q shown with %d events stored", f.Lines, o.LastSeq)
		}
		shown = append(shown, f)
	}})
	if err != nil {
		t.Fatal(err)
	}
	term.Tap([]byte{1, 2, 3, 4})
	clk.t = now.Add(2 * time.Hour)
	term.Tap([]byte{1, 2, 3, 4})
	term.Tap([]byte{9, 9, 9, 9})
	want := [][2]string{{"김*준", "입실 15:02"}, {"김*준", "퇴실 17:02"}, {"등록되지 않은", "카드입니다"}}
	for i, w := range want {
		if shown[i].Lines[0] != w[0] || shown[i].Lines[1] != w[1] {
			t.Errorf("screen %d: %q, want %q", i, shown[i].Lines, w)
		}
	}
	// A store that cannot record: error feedback, nothing claimed.
	st.Close()
	shown = nil
	if _, _, err := term.Tap([]byte{1, 2, 3, 4}); err == nil {
		t.Fatal("tap on a closed store: no error")
	}
	if len(shown) != 1 || shown[0].Pattern != firmware.PatternError {
		t.Errorf("feedback on a failed tap: %+v", shown)
	}
}

// Free space below a configured level is warned about once per level.
func TestDiskWarnings(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "t.db"), DeviceID: "T"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs bytes.Buffer
	term, err := New(Options{Store: st, Clock: &fixedClock{time.Now()}, Key: key, Show: func(firmware.Feedback) {},
		DiskWarnFree: []int64{1 << 61, 1 << 60}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	term.checkDisk()
	term.checkDisk()
	if n := strings.Count(logs.String(), "disk space low"); n != 1 {
		t.Errorf("%d warnings, want one for the lowest level crossed:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "below=1073741824") && !strings.Contains(logs.String(), "below=") {
		t.Errorf("warning does not say the level:\n%s", logs.String())
	}
}
