package source

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kiumtap/firmware"
)

// testKey is the centre key the cards of testdata/mangwon1.json were made
// with; testUIDs are the raw UIDs of its cards, in order.
var (
	testKey  = []byte("mangwon1-test-key-0123456789abcdef")
	testUIDs = []string{"04A1B2C3", "04A1B2C4", "04A1B2C5", "04A1B2C6", "04A1B2C7", "04A1B2C8", "04D5E6F7A8B9C0"}
)

func loadMangwon(t testing.TB) *Source {
	t.Helper()
	s, err := Load(filepath.Join("testdata", "mangwon1.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadMangwon(t *testing.T) {
	s := loadMangwon(t)
	r := s.Roster
	if r.Centre.Name != "망원1동" || len(r.Centre.Terms) != 4 || len(r.Children) != 6 {
		t.Fatalf("centre %q, %d terms, %d children", r.Centre.Name, len(r.Centre.Terms), len(r.Children))
	}
	for i, uid := range testUIDs {
		raw, _ := hex.DecodeString(uid)
		if got, want := r.Cards[i].Key, firmware.CardKey(testKey, raw); got != want {
			t.Errorf("cards[%d].key = %s, want CardKey of %s = %s", i, got, uid, want)
		}
	}
	// Phones are stored as digits whatever way the file wrote them.
	for id, gs := range s.Guardians {
		for i, g := range gs {
			if strings.Trim(g.Phone, "0123456789") != "" {
				t.Errorf("guardians[%q][%d].phone = %q, want digits", id, i, g.Phone)
			}
		}
	}
	// The calendar reads as the centre keeps it.
	for _, tc := range []struct {
		day   string
		open  bool
		disc  bool
		hours string
	}{
		{"2026-11-19", true, false, "13:00–19:00"}, // a Thursday of 2학기
		{"2026-11-20", true, true, "09:00–18:00"},  // 재량휴교일: 여름방학's hours
		{"2026-10-09", false, false, ""},           // 한글날
		{"2026-11-21", false, false, ""},           // a Saturday
		{"2026-08-03", true, false, "09:00–18:00"}, // 여름방학
	} {
		d, _ := firmware.ParseDate(tc.day)
		got := r.Centre.DayOf(d)
		if got.Open != tc.open || got.Discretionary != tc.disc || (tc.open && got.Hours.String() != tc.hours) {
			t.Errorf("DayOf(%s) = %+v, want open %v, discretionary %v, hours %s", tc.day, got, tc.open, tc.disc, tc.hours)
		}
	}
	if b := r.BookingsOf("c04"); len(b) != 1 || b[0].Type != firmware.Temporary || b[0].Status != firmware.InUse {
		t.Errorf("c04's bookings: %+v", b)
	}
}

func TestPhones(t *testing.T) {
	s := loadMangwon(t)
	for _, tc := range []struct {
		child string
		want  []string
	}{
		{"c01", []string{"01012345678", "01098765432"}}, // both want texts; the first was written with hyphens
		{"c03", []string{"0114445555"}},                 // an 011 number of 10 digits
		{"c04", nil},                                    // the only guardian wants no texts
		{"c05", []string{"01088889999"}},                // one of two
		{"c06", []string{"01055550101"}},                // written with spaces
		{"c99", nil},                                    // no such child
	} {
		if got := s.Phones(tc.child); !slices.Equal(got, tc.want) {
			t.Errorf("Phones(%s) = %q, want %q", tc.child, got, tc.want)
		}
	}
	dup := &Source{Guardians: map[string][]Guardian{"c1": {{Phone: "01011112222", Texts: true}, {Name: "again", Phone: "01011112222", Texts: true}}}}
	if got := dup.Phones("c1"); !slices.Equal(got, []string{"01011112222"}) {
		t.Errorf("a number listed twice: Phones = %q, want it once", got)
	}
	var none *Source
	if got := none.Phones("c1"); got != nil {
		t.Errorf("nil source: Phones = %q", got)
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"01012345678", "01012345678"},
		{"010-1234-5678", "01012345678"},
		{" 010 1234 5678 ", "01012345678"},
		{"011-123-4567", "0111234567"},
		{"0161234567", "0161234567"},
		{"019-1234-5678", "01912345678"},
		{"010-123-4567", ""},  // 010 numbers have 8 digits after the prefix
		{"02-123-4567", ""},   // Seoul landline
		{"012-1234-5678", ""}, // no such prefix
		{"+82-10-1234-5678", ""},
		{"010-1234-567８", ""}, // a full-width digit
		{"010.1234.5678", ""},
		{"", ""},
		{"010123456789", ""},
	} {
		got, err := NormalizePhone(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrNotMobile) {
			t.Errorf("NormalizePhone(%q): %v does not wrap ErrNotMobile", tc.in, err)
		}
	}
}

// minimal is a valid source the error cases below spoil one thing of.
const minimal = `{
  "roster": {
    "revision": 1,
    "issued": "2026-11-02T08:00:00+09:00",
    "centre": {"id": "m1", "name": "망원1동", "terms": [{"name": "2학기", "from": "2026-08-24", "to": "2026-12-31", "vacation": false, "hours": {"start": "13:00", "end": "19:00"}}]},
    "children": [{"id": "c1", "name": "김민준"}, {"id": "c2", "name": "이서연"}],
    "cards": [],
    "bookings": [{"id": "b1", "child": "c1", "type": "regular", "status": "in_use", "from": "2026-08-24", "to": "2026-12-31", "weekdays": [1, 2, 3, 4, 5], "window": {"start": "14:00", "end": "18:00"}}]
  },
  "guardians": {"c1": [{"name": "김지현", "phone": "010-1234-5678", "texts": true}], "c2": [{"name": "이수진", "phone": "01022223333", "texts": false}]}
}`

func TestParseErrors(t *testing.T) {
	if s, err := Parse([]byte(minimal)); err != nil {
		t.Fatalf("the minimal source: %v", err)
	} else if s.Guardians["c1"][0].Phone != "01012345678" {
		t.Fatalf("phone not normalised: %q", s.Guardians["c1"][0].Phone)
	}
	spoil := func(old, new string) string {
		if !strings.Contains(minimal, old) {
			t.Fatalf("the minimal source has no %q", old)
		}
		return strings.Replace(minimal, old, new, 1)
	}
	for _, tc := range []struct {
		name string
		raw  string
		want []string // each must appear in the error
	}{
		{"unknown top-level field", spoil(`"guardians": {`, `"guardian": {}, "guardians": {`),
			[]string{`guardian (line`, `unknown field`, "roster, guardians"}},
		{"unknown field deep down", spoil(`"window": {"start": "14:00"`, `"windw": {}, "window": {"start": "14:00"`),
			[]string{`roster.bookings[0].windw (line`, `unknown field`, "correct its spelling"}},
		{"unknown guardian field", spoil(`"texts": true`, `"texts": true, "mobile": "010"`),
			[]string{`guardians["c1"][0].mobile (line`, "name, phone, texts"}},
		{"bad phone", spoil(`"01022223333"`, `"02-123-4567"`),
			[]string{`guardians["c2"][0].phone`, "child c2, number 1 of 1", `"02-123-4567"`, "not a Korean mobile number", "correct it"}},
		{"guardian of an unknown child", spoil(`"c2": [`, `"c9": [`),
			[]string{`guardians["c9"]`, `no child "c9" in roster.children`, "add the child"}},
		{"invalid roster", spoil(`"id": "m1"`, `"id": ""`),
			[]string{"centre.id: missing"}},
		{"booking of an unknown child", spoil(`"child": "c1"`, `"child": "c7"`),
			[]string{`bookings[0].child: no child "c7"`}},
		{"impossible date", spoil(`"to": "2026-12-31", "weekdays"`, `"to": "2026-13-01", "weekdays"`),
			[]string{"roster.bookings[0].to", `"2026-13-01" is not a date`}},
		{"bad clock", spoil(`"start": "14:00"`, `"start": "2pm"`),
			[]string{"roster.bookings[0].window.start", "not a time of day"}},
		{"wrong type", spoil(`"revision": 1`, `"revision": "one"`),
			[]string{"roster.revision (line", "want a whole number, 0 or more, got string"}},
		{"texts not a boolean", spoil(`"texts": true`, `"texts": "Y"`),
			[]string{`guardians["c1"][0].texts (line`, "want true or false"}},
		{"syntax error", spoil(`"cards": [],`, `"cards": [],,`),
			[]string{"(line 7)", "column 17", "not valid JSON"}},
		{"data after the value", minimal + "{}", []string{"data after the JSON value"}},
		{"no roster", `{"guardians": {}}`, []string{"roster: missing"}},
		{"empty", ``, []string{"empty"}},
		{"too large", `"` + strings.Repeat("x", MaxSource) + `"`, []string{"more than the"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"roster": {"centre": {"id": 3}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "roster.centre.id (line 1): want a string in quotes") {
		t.Errorf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("Load of a missing file: no error")
	}
}

// The source written back is read back the same.
func TestRoundTrip(t *testing.T) {
	s := loadMangwon(t)
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := json.Marshal(again)
	if string(raw) != string(raw2) {
		t.Errorf("not stable:\n%s\n%s", raw, raw2)
	}
}
