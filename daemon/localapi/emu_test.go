package localapi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
)

func TestParseUID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // hex; "" for an error
	}{
		{"DEADBEEF", "deadbeef"},
		{"de ad be ef", "deadbeef"},
		{"DE:AD:BE:EF", "deadbeef"},
		{" 04-6A-2B-5C-1D-80-41 ", "046a2b5c1d8041"},
		{"05102030405060708090", "05102030405060708090"},
		{"", ""},
		{"DEADBEE", ""},            // odd digits
		{"DEADBEEF00", ""},         // 5 bytes
		{"88AABBCC", ""},           // the cascade tag
		{"ZZADBEEF", ""},           // not hex
		{"04A1B2C3D4E5F6A7B8", ""}, // 9 bytes
	} {
		got, err := ParseUID(tc.in)
		switch {
		case tc.want == "" && (err == nil || !errors.Is(err, ErrBadUID)):
			t.Errorf("ParseUID(%q) = % X, %v; want ErrBadUID", tc.in, got, err)
		case tc.want != "" && (err != nil || hex.EncodeToString(got) != tc.want):
			t.Errorf("ParseUID(%q) = % X, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// With a real MFRC522 the emulator's endpoints refuse, say why, and leave
// the store as it was.
func TestEmuRefusedWithARealReader(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "k.db"), DeviceID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before, err := st.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(st, time.Now, nil)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, "/emu/place", `{"card": "DEADBEEF"}`},
		{http.MethodPost, "/emu/tap", `{"card": "김민준"}`},
		{http.MethodPost, "/emu/remove", `{}`},
		{http.MethodGet, "/emu/cards", ``},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "the reader is a real MFRC522: put a card on it") {
			t.Errorf("%s %s: %d %q, want 409 and the reader is a real one", tc.method, tc.path, rec.Code, rec.Body.String())
		}
	}
	if after, err := st.Outbox(); err != nil || after != before {
		t.Errorf("the store changed: %+v, then %+v (%v)", before, after, err)
	}
}

// fakeReader is the emulated reader's field and the terminal behind it:
// a card placed is seen and brings a screen naming it, at once; a card
// removed is seen gone at once. Silent: nothing is shown.
type fakeReader struct {
	e      *Emulator
	mu     sync.Mutex
	silent bool
	placed []string
}

func (f *fakeReader) Place(c *rc522emu.Card) {
	f.mu.Lock()
	f.placed = append(f.placed, fmt.Sprintf("% X", c.UID()))
	silent := f.silent
	f.mu.Unlock()
	f.e.Saw(rc522.Event{Kind: rc522.Presented, Card: rc522.Card{UID: c.UID()}})
	if !silent {
		f.e.Shown(firmware.Feedback{Pattern: firmware.PatternArrival, Lines: []string{fmt.Sprintf("% X", c.UID())}})
	}
}

func (f *fakeReader) Remove(c *rc522emu.Card) {
	f.e.Saw(rc522.Event{Kind: rc522.Removed, Card: rc522.Card{UID: c.UID()}})
}

type rosterOf struct{ r *firmware.Roster }

func (r rosterOf) Roster() (*firmware.Roster, time.Time, error) { return r.r, time.Time{}, nil }

var emuKey = []byte("kiumtap-test-centre-key!")

func emuRoster(t *testing.T) *firmware.Roster {
	t.Helper()
	key := func(h string) string { b, _ := hex.DecodeString(h); return firmware.CardKey(emuKey, b) }
	r := &firmware.Roster{
		Revision: 3,
		Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{
			{Name: "연중", From: firmware.DateOf(time.Date(2026, 1, 1, 0, 0, 0, 0, firmware.KST)), To: firmware.DateOf(time.Date(2026, 12, 31, 0, 0, 0, 0, firmware.KST)),
				Hours: firmware.Window{Start: 0, End: 24 * 60}, Weekdays: []time.Weekday{1, 2, 3, 4, 5}},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}, {ID: "c3", Name: "박지호"}, {ID: "c4", Name: "김민준"}, {ID: "c5", Name: "최하은"}},
		Staff:    []firmware.Staff{{ID: "s1", Name: "박선생", Key: key("5A5A0001")}},
		Cards: []firmware.Card{
			{Key: key("DEADBEEF"), ChildID: "c1", State: firmware.CardActive},
			{Key: key("046A2B5C1D8041"), ChildID: "c2", State: firmware.CardActive},
			{Key: key("05102030405060708090"), ChildID: "c3", State: firmware.CardActive},
			{Key: key("04112233"), ChildID: "c5", State: firmware.CardReplaced},
		},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

// The emulator's endpoints: a card named by UID, label, a child's or staff
// member's name or ID, or a card learnt from an earlier place; each
// mistake told with its own status and what to do.
func TestEmulatorEndpoints(t *testing.T) {
	f := &fakeReader{}
	e, err := NewEmulator(EmulatorOptions{Field: f, Roster: rosterOf{emuRoster(t)}, Key: emuKey, Wait: 200 * time.Millisecond,
		Cards: map[string]string{"민준이 카드": "DE:AD:BE:EF", "teacher": "5A 5A 00 01", "stranger": "0BADF00D"}})
	if err != nil {
		t.Fatal(err)
	}
	f.e = e
	h := NewHandler(Options{Emulator: e})
	do := func(path, card string) (int, string, EmuResult) {
		body, _ := json.Marshal(EmuRequest{Card: card})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		var res EmuResult
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("%s %q: %v", path, card, err)
			}
		}
		return rec.Code, rec.Body.String(), res
	}
	for _, tc := range []struct {
		path, card string
		code       int
		uid        string // the card acted on; for errors, in the message
		child      string
		msg        string // in the error
		silent     bool
	}{
		{path: "/emu/tap", card: "DEADBEEF", code: 200, uid: "DE AD BE EF", child: "c1"},
		{path: "/emu/tap", card: "민준이 카드", code: 200, uid: "DE AD BE EF", child: "c1"},
		{path: "/emu/tap", card: "c1", code: 200, uid: "DE AD BE EF", child: "c1"},
		{path: "/emu/tap", card: "박선생", code: 200, uid: "5A 5A 00 01"},
		{path: "/emu/tap", card: "stranger", code: 200, uid: "0B AD F0 0D"},
		{path: "/emu/tap", card: "04 6a 2b 5c 1d 80 41", code: 200, uid: "04 6A 2B 5C 1D 80 41", child: "c2"},
		{path: "/emu/tap", card: "이서연", code: 200, uid: "04 6A 2B 5C 1D 80 41", child: "c2"}, // learnt above
		{path: "/emu/tap", card: "04A1B", code: 400, msg: "not hex digits in pairs"},
		{path: "/emu/tap", card: "DEADBEEF01", code: 400, msg: "5 bytes"},
		{path: "/emu/tap", card: "정서준", code: 404, msg: `"정서준" is not a UID, a label of reader.cards, or the name or ID of a child or staff member in roster revision 3`},
		{path: "/emu/tap", card: "박지호", code: 404, msg: "place the card once by UID"},
		{path: "/emu/tap", card: "김민준", code: 404, msg: "2 people are called \"김민준\" (c1, c4): name one by ID"},
		{path: "/emu/tap", card: "c5", code: 404, msg: "no active card"},
		{path: "/emu/tap", card: "", code: 404, msg: "give a UID in hex"},
		{path: "/emu/remove", card: "", code: 409, msg: "no card is on the reader"},
		{path: "/emu/remove", card: "DEADBEEF", code: 409, msg: "card DE AD BE EF is not on the reader"},
		{path: "/emu/place", card: "DEADBEEF", code: 200, uid: "DE AD BE EF", child: "c1"},
		{path: "/emu/place", card: "c1", code: 409, msg: "card DE AD BE EF is on the reader already"},
		{path: "/emu/place", card: "stranger", code: 504, msg: "the terminal showed nothing", silent: true},
		{path: "/emu/remove", card: "", code: 200, uid: "0B AD F0 0D"}, // both, by UID
	} {
		f.mu.Lock()
		f.silent = tc.silent
		f.mu.Unlock()
		code, body, res := do(tc.path, tc.card)
		name := fmt.Sprintf("%s %q", tc.path, tc.card)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", name, code, body, tc.code)
			continue
		}
		if code != http.StatusOK {
			if !strings.Contains(body, tc.msg) {
				t.Errorf("%s: %q, want it to say %q", name, body, tc.msg)
			}
			continue
		}
		if len(res.Cards) == 0 || res.Cards[0].UID != tc.uid || res.Cards[0].Child != tc.child {
			t.Errorf("%s: cards %+v, want %s of %q", name, res.Cards, tc.uid, tc.child)
		}
		switch tc.path {
		case "/emu/tap", "/emu/place":
			if res.Screen == nil || res.Screen.Pattern != firmware.PatternArrival || strings.Join(res.Screen.Lines, "") != tc.uid {
				t.Errorf("%s: screen %+v, want the one the card brought", name, res.Screen)
			}
		}
		switch on := len(res.OnReader); {
		case tc.path == "/emu/place" && (on != 1 || res.OnReader[0].UID != tc.uid):
			t.Errorf("%s: on the reader %+v, want the card", name, res.OnReader)
		case tc.path != "/emu/place" && on != 0:
			t.Errorf("%s: on the reader %+v, want nothing", name, res.OnReader)
		}
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/emu/cards", nil))
	var cards []VirtualCard
	if err := json.Unmarshal(rec.Body.Bytes(), &cards); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cards {
		got = append(got, fmt.Sprintf("%s %q %s%s %s", c.UID, c.Label, c.Child, c.Staff, c.State))
	}
	want := []string{
		`0B AD F0 0D "stranger"  `,
		`5A 5A 00 01 "teacher" s1 `,
		`DE AD BE EF "민준이 카드" c1 active`,
		`04 6A 2B 5C 1D 80 41 "" c2 active`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cards:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, bad := range []map[string]string{{"x": "DEADBEE"}, {"": "DEADBEEF"}} {
		if _, err := NewEmulator(EmulatorOptions{Field: f, Roster: rosterOf{}, Key: emuKey, Cards: bad}); err == nil || !strings.Contains(err.Error(), "reader.cards") {
			t.Errorf("cards %q: %v, want an error naming reader.cards", bad, err)
		}
	}
}
