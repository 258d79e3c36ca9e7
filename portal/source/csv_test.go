package source

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
)

var importNow = time.Date(2026, 11, 16, 10, 0, 0, 0, firmware.KST)

const header = "아동ID,이름,카드UID,보호자이름,보호자연락처,문자수신,이용유형,이용상태,시작일,종료일,요일,시간,이용일\n"

// staffList is a centre's export: c01 on three rows (a booking with two
// guardians, then a temporary booking), c02 with a lower-case UID, c06
// with a new card, c07 new and with neither card nor booking; c03, c04 and
// c05 have left.
const staffList = header +
	"c01,김민준,04:A1:B2:C3,김지현,010-1234-5678,Y,정기,이용중,2026-08-24,2026-12-31,월화수목금,14:00-18:00,\n" +
	"c01,,,김도윤,010-9876-5432,N,정기,이용중,2026-08-24,2026-12-31,월화수목금,14:00-18:00,\n" +
	"c01,김민준,,,,,일시,이용예정,,,,15:00~19:00,2026-12-01; 2026-11-30\n" +
	"c02,이서연,04a1b2c4,이수진,01022223333,Y,정기,이용중,2026-08-24,2026-12-31,\"월,수,금\",13:00-17:00,\n" +
	"c06,남궁예린,11223344,남궁수빈,010-5555-0101,Y,아픈아이,신청,2026-11-01,2026-11-30,,9:00-18:00,2026-11-20\n" +
	"c07,한지우,,한상철,01077778888,y,,,,,,,\n"

func importList(t *testing.T, base *Source, list string) *Source {
	t.Helper()
	s, err := ImportCSV(strings.NewReader(list), base, testKey, importNow)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cardKey(uid string) string {
	raw, err := hex.DecodeString(uid)
	if err != nil {
		panic(err)
	}
	return firmware.CardKey(testKey, raw)
}

func TestImportCSV(t *testing.T) {
	base := loadMangwon(t)
	before, _ := json.Marshal(base)
	s := importList(t, base, staffList)
	if after, _ := json.Marshal(base); string(after) != string(before) {
		t.Error("ImportCSV changed its base")
	}
	r := s.Roster
	if r.Centre.Name != "망원1동" || len(r.Centre.Terms) != 4 || r.Revision != base.Roster.Revision {
		t.Errorf("the calendar is not base's: %+v, revision %d", r.Centre, r.Revision)
	}
	var children []string
	for _, c := range r.Children {
		children = append(children, c.ID+" "+c.Name)
	}
	if want := []string{"c01 김민준", "c02 이서연", "c06 남궁예린", "c07 한지우"}; !slices.Equal(children, want) {
		t.Errorf("children %q, want %q", children, want)
	}

	// Bookings: c01's regular booking is on two rows and is one booking.
	var bookings []string
	for _, b := range r.Bookings {
		bookings = append(bookings, fmt.Sprintf("%s %s %s %s-%s %v %v %s", b.ChildID, b.Type, b.Status, b.From, b.To, b.Weekdays, b.Dates, b.Window))
	}
	want := []string{
		"c01 regular in_use 2026-08-24-2026-12-31 [Monday Tuesday Wednesday Thursday Friday] [] 14:00–18:00",
		"c01 temporary scheduled 2026-11-30-2026-12-01 [] [2026-11-30 2026-12-01] 15:00–19:00",
		"c02 regular in_use 2026-08-24-2026-12-31 [Monday Wednesday Friday] [] 13:00–17:00",
		"c06 sick applied 2026-11-01-2026-11-30 [] [2026-11-20] 09:00–18:00",
	}
	if !slices.Equal(bookings, want) {
		t.Errorf("bookings\n%s\nwant\n%s", strings.Join(bookings, "\n"), strings.Join(want, "\n"))
	}

	// Guardians: merged per child; the directory is the list's.
	if got := s.Guardians["c01"]; len(got) != 2 || got[0] != (Guardian{"김지현", "01012345678", true}) || got[1] != (Guardian{"김도윤", "01098765432", false}) {
		t.Errorf("c01's guardians: %+v", got)
	}
	for child, phones := range map[string][]string{"c01": {"01012345678"}, "c02": {"01022223333"}, "c06": {"01055550101"}, "c07": {"01077778888"}, "c03": nil} {
		if got := s.Phones(child); !slices.Equal(got, phones) {
			t.Errorf("Phones(%s) = %q, want %q", child, got, phones)
		}
	}

	// Cards: the HMAC of the UID, never the UID.
	type card struct {
		key, child string
		state      firmware.CardState
		since      time.Time
	}
	var cards []card
	for _, c := range r.Cards {
		cards = append(cards, card{c.Key, c.ChildID, c.State, c.Since})
	}
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	wantCards := []card{
		{cardKey("04A1B2C3"), "c01", firmware.CardActive, at("2026-03-03T09:00:00+09:00")},   // unchanged: its Since stays
		{cardKey("04A1B2C4"), "c02", firmware.CardActive, at("2026-03-03T09:00:00+09:00")},   // the same UID in lower case
		{cardKey("04A1B2C8"), "c06", firmware.CardReplaced, at("2026-10-12T15:20:00+09:00")}, // replaced already
		{cardKey("04D5E6F7A8B9C0"), "c06", firmware.CardReplaced, importNow},                 // replaced by the new card now
		{cardKey("11223344"), "c06", firmware.CardActive, importNow},                         // the new card
	}
	if len(cards) != len(wantCards) {
		t.Fatalf("cards %+v\nwant %+v", cards, wantCards)
	}
	for i := range cards {
		if cards[i].key != wantCards[i].key || cards[i].child != wantCards[i].child || cards[i].state != wantCards[i].state || !cards[i].since.Equal(wantCards[i].since) {
			t.Errorf("cards[%d] = %+v, want %+v", i, cards[i], wantCards[i])
		}
	}
	raw, _ := json.Marshal(s)
	for _, uid := range []string{"04A1B2C3", "04:A1:B2:C3", "04A1B2C4", "11223344"} {
		if strings.Contains(strings.ToUpper(string(raw)), uid) {
			t.Errorf("the raw UID %s is in the source", uid)
		}
	}
	if _, err := Parse(raw); err != nil {
		t.Errorf("the imported source does not read back: %v", err)
	}
}

// Booking IDs come from the child and the booking's fields, not its
// status nor the row's place: the same list gives the same IDs, and a
// booking moved from 이용예정 to 이용중 keeps its ID.
func TestImportCSVStableIDs(t *testing.T) {
	base := loadMangwon(t)
	ids := func(s *Source) []string {
		var out []string
		for _, b := range s.Roster.Bookings {
			out = append(out, b.ID)
		}
		return out
	}
	first := ids(importList(t, base, staffList))
	if again := ids(importList(t, base, staffList)); !slices.Equal(first, again) {
		t.Errorf("IDs changed between imports: %q, %q", first, again)
	}
	moved := strings.Replace(staffList, "일시,이용예정", "일시,이용중", 1)
	if got := ids(importList(t, base, moved)); !slices.Equal(first, got) {
		t.Errorf("IDs changed with a status: %q, %q", first, got)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(first)))) != len(first) {
		t.Errorf("IDs not unique: %q", first)
	}
	other := strings.Replace(staffList, "13:00-17:00", "13:00-17:30", 1)
	if got := ids(importList(t, base, other)); got[2] == first[2] {
		t.Errorf("another window, the same ID %s", got[2])
	}
}

func TestImportCSVBOM(t *testing.T) {
	base := loadMangwon(t)
	plain, _ := json.Marshal(importList(t, base, staffList))
	bom, _ := json.Marshal(importList(t, base, "\uFEFF"+staffList))
	if string(plain) != string(bom) {
		t.Error("a byte-order mark changes the import")
	}
	// Extra columns, another order and a CRLF file read the same.
	reordered := "비고,이름,아동ID,카드UID,보호자이름,보호자연락처,문자수신,이용유형,이용상태,시작일,종료일,요일,시간,이용일\r\n" +
		"new,김민준,c01,04A1B2C3,김지현,01012345678,Y,정기,이용중,2026-08-24,2026-12-31,월화수목금,14:00-18:00,\r\n"
	s := importList(t, base, reordered)
	if len(s.Roster.Children) != 1 || s.Roster.Children[0].Name != "김민준" || len(s.Roster.Bookings) != 1 {
		t.Errorf("reordered columns: %+v", s.Roster)
	}
}

// csvErrors lists the *CSVError in an error tree.
func csvErrors(err error) []*CSVError {
	var out []*CSVError
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*CSVError); ok {
			out = append(out, ce)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func TestImportCSVErrors(t *testing.T) {
	const good = "c01,김민준,04A1B2C3,김지현,010-1234-5678,Y,정기,이용중,2026-08-24,2026-12-31,월화수목금,14:00-18:00,\n"
	// row is line 3 of a list: header, the good row, then cells.
	row := func(cells ...string) string { return header + good + strings.Join(cells, ",") + "\n" }
	// reg is a regular booking row of child c02 with one cell changed.
	reg := func(col, v string) string {
		cells := []string{"c02", "이서연", "04A1B2C4", "이수진", "01022223333", "Y", "정기", "이용중", "2026-08-24", "2026-12-31", "월수금", "13:00-17:00", ""}
		cells[slices.Index(Columns, col)] = v
		return row(cells...)
	}
	// tmp is a temporary booking row of c02 with one cell changed.
	tmp := func(col, v string) string {
		cells := []string{"c02", "이서연", "", "", "", "", "일시", "이용중", "", "", "", "15:00-19:00", "2026-11-10;2026-11-12"}
		cells[slices.Index(Columns, col)] = v
		return row(cells...)
	}
	for _, tc := range []struct {
		name   string
		list   string
		line   int
		column string
		want   string
	}{
		{"child ID missing", reg(ColChild, ""), 3, ColChild, "every row names its child"},
		{"child ID with a space", reg(ColChild, "c 2"), 3, ColChild, "no spaces"},
		{"name missing", reg(ColName, ""), 3, ColName, "missing on child c02's first row"},
		{"two names", row("c01,김민수,,,,,,,,,,,"), 3, ColName, `line 2 names child c01 "김민준"`},
		{"UID not hex", reg(ColCard, "04A1B2CZ"), 3, ColCard, "not a UID in hex"},
		{"UID too short", reg(ColCard, "04A1B2"), 3, ColCard, "3 bytes"},
		{"a card for two children", reg(ColCard, "04-a1-b2-c3"), 3, ColCard, "already listed for child c01 on line 2"},
		{"two cards for a child", row("c01,,04A1B2C9,,,,,,,,,,"), 3, ColCard, "child c01 has another card on line 2"},
		{"bad phone", reg(ColPhone, "02-123-4567"), 3, ColPhone, "not a Korean mobile number"},
		{"guardian without a phone", reg(ColPhone, ""), 3, ColPhone, `missing for guardian "이수진"`},
		{"texts neither Y nor N", reg(ColTexts, "예"), 3, ColTexts, `"예": want Y or N`},
		{"texts missing", reg(ColTexts, ""), 3, ColTexts, "missing: Y if"},
		{"one number, two names", row("c01,,,김지훈,01012345678,Y,,,,,,,"), 3, ColGuardian, "line 2 names the guardian at 01012345678"},
		{"one guardian, two choices", row("c01,,,김지현,01012345678,N,,,,,,,"), 3, ColTexts, "one guardian, one choice"},
		{"bad type", reg(ColType, "방과후"), 3, ColType, "want 정기, 일시 or 아픈아이"},
		{"status missing", reg(ColStatus, ""), 3, ColStatus, "missing: want 신청"},
		{"bad status", reg(ColStatus, "대기"), 3, ColStatus, `"대기": want 신청`},
		{"one booking, two statuses", row("c01,,,,,,정기,종료,2026-08-24,2026-12-31,월화수목금,14:00-18:00,"), 3, ColStatus, "line 2 gives the same booking another status"},
		{"bad start", reg(ColFrom, "2026-02-30"), 3, ColFrom, `"2026-02-30" is not a date`},
		{"regular without a start", reg(ColFrom, ""), 3, ColFrom, "a 정기 booking needs its period"},
		{"regular without an end", reg(ColTo, ""), 3, ColTo, "a 정기 booking needs its period"},
		{"end before start", reg(ColTo, "2026-08-01"), 3, ColTo, "2026-08-01 is before 시작일 2026-08-24"},
		{"bad weekday", reg(ColWeekdays, "월수금요일"), 3, ColWeekdays, `'요' is not a weekday`},
		{"regular without weekdays", reg(ColWeekdays, ""), 3, ColWeekdays, "needs its weekdays"},
		{"weekdays of a temporary booking", tmp(ColWeekdays, "화목"), 3, ColWeekdays, "leave it empty"},
		{"bad hours", reg(ColHours, "오후 2시-6시"), 3, ColHours, "want the daily window as 14:00-18:00"},
		{"hours backwards", reg(ColHours, "18:00-14:00"), 3, ColHours, "ends no later than it starts"},
		{"hours missing", reg(ColHours, ""), 3, ColHours, "missing: the daily window"},
		{"dates of a regular booking", reg(ColDates, "2026-11-10"), 3, ColDates, "given for a 정기 booking"},
		{"temporary without dates", tmp(ColDates, ""), 3, ColDates, "needs its dates"},
		{"bad date", tmp(ColDates, "2026-11-10;11/12"), 3, ColDates, `"11/12" is not a date`},
		{"date before the period", tmp(ColFrom, "2026-11-11"), 3, ColDates, "2026-11-10 is before 시작일 2026-11-11"},
		{"date after the period", tmp(ColTo, "2026-11-11"), 3, ColDates, "2026-11-12 is after 종료일 2026-11-11"},
		{"booking cells without a type", tmp(ColType, ""), 3, ColType, "empty, but the row gives 이용상태, 시간, 이용일"},
		{"too few cells", row("c02,이서연"), 3, "", "2 cells where the header has 13"},
		{"bad quotes", header + good + "c02,\"이서연,,,\n", 3, "", "check the quotes"},
		{"header lacks a column", strings.Replace(header, ",이용일", "", 1) + strings.TrimSuffix(good, ",\n") + "\n", 1, "", "the header lacks 이용일"},
		{"header misspelt", strings.Replace(header, "보호자연락처", "보호자 연락처", 1) + good, 1, "", "the header lacks 보호자연락처"},
		{"header names a column twice", strings.Replace(header, "이용일", "이름", 1) + good, 1, ColName, "named twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportCSV(strings.NewReader(tc.list), loadMangwon(t), testKey, importNow)
			if err == nil {
				t.Fatal("no error")
			}
			errs := csvErrors(err)
			if len(errs) != 1 {
				t.Fatalf("%d line errors, want 1: %v", len(errs), err)
			}
			e := errs[0]
			if e.Line != tc.line || e.Column != tc.column || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant line %d, column %q, saying %q", err, tc.line, tc.column, tc.want)
			}
			where := fmt.Sprintf("line %d", tc.line)
			if tc.column != "" {
				where += ", column " + tc.column
			}
			if !strings.Contains(err.Error(), where) {
				t.Errorf("error %q does not say %q", err, where)
			}
			for _, uid := range []string{"04A1B2C3", "04A1B2C4", "04A1B2C9", "04-a1-b2-c3"} {
				if strings.Contains(err.Error(), uid) {
					t.Errorf("the error shows the raw UID %s", uid)
				}
			}
		})
	}
}

func TestImportCSVRefuses(t *testing.T) {
	base := loadMangwon(t)
	for _, tc := range []struct {
		name string
		list string
		base *Source
		key  []byte
		want string
	}{
		{"empty", "", base, testKey, "empty: want a header row"},
		{"header only", header, base, testKey, "no children under the header"},
		{"no base", staffList, nil, testKey, "no base source"},
		{"no roster", staffList, &Source{}, testKey, "no base source"},
		{"short key", staffList, base, testKey[:8], "shorter than 16 bytes"},
		{"too large", header + strings.Repeat("x", MaxCSV), base, testKey, "larger than"},
		{"many errors", header + manyNameless(60), base, testKey, "and 10 more errors"},
		// Every line is right, but the roster made is not: its base has
		// no centre.
		{"invalid result", header + "c01,김민준,,,,,,,,,,,\n", &Source{Roster: &firmware.Roster{}}, testKey, "centre.id: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportCSV(strings.NewReader(tc.list), tc.base, tc.key, importNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A card listed for another child than base's moves to that child, and a
// child with no UID in the list keeps base's cards.
func TestImportCSVCardMoves(t *testing.T) {
	base := loadMangwon(t)
	list := header +
		"c01,김민준,,,,,,,,,,,\n" + // no UID: keeps 04A1B2C3
		"c02,이서연,04A1B2C7,,,,,,,,,,\n" // c05's card, now c02's
	s := importList(t, base, list)
	got := map[string]firmware.Card{}
	for _, c := range s.Roster.Cards {
		got[c.Key] = c
	}
	if c := got[cardKey("04A1B2C3")]; c.ChildID != "c01" || c.State != firmware.CardActive {
		t.Errorf("c01's card: %+v", c)
	}
	if c := got[cardKey("04A1B2C7")]; c.ChildID != "c02" || c.State != firmware.CardActive || !c.Since.Equal(importNow) {
		t.Errorf("the moved card: %+v", c)
	}
	if c, ok := got[cardKey("04A1B2C4")]; !ok || c.State != firmware.CardReplaced {
		t.Errorf("c02's old card: %+v, want replaced", c)
	}
	if len(s.Roster.Cards) != 3 {
		t.Errorf("%d cards, want 3: %+v", len(s.Roster.Cards), s.Roster.Cards)
	}
}

// manyNameless is n rows of children without a name.
func manyNameless(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "c%03d,,,,,,,,,,,,\n", i)
	}
	return b.String()
}

// A list exported before a card of a child was ended (a spare bound at a
// terminal replaced it, it was revoked, it lost a conflict) still lists
// it: importing it keeps the card's state and the child's other cards',
// so a lost card does not come back on and the spare is not replaced. A
// card new to the source, or active, is taken as before.
func TestImportCSVKeepsEndedCards(t *testing.T) {
	since := time.Date(2026, 11, 10, 9, 0, 0, 0, firmware.KST)
	lost, spare, other := cardKey("04A1B2C3"), cardKey("0A0B0C0D"), cardKey("04A1B2C4")
	type card struct {
		child string
		state firmware.CardState
		since time.Time // zero: importNow
	}
	for _, tc := range []struct {
		name string
		base []firmware.Card // c01's and c02's cards
		list string          // c01's UID, c02's
		want map[string]card
	}{
		{
			name: "replaced by a spare bound at a terminal",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardReplaced, Since: since}, {Key: spare, ChildID: "c01", State: firmware.CardActive, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{lost: {"c01", firmware.CardReplaced, since}, spare: {"c01", firmware.CardActive, since}},
		},
		{
			name: "revoked",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardRevoked, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{lost: {"c01", firmware.CardRevoked, since}},
		},
		{
			name: "lost a conflict, the previous card replaced",
			base: []firmware.Card{{Key: other, ChildID: "c01", State: firmware.CardReplaced, Since: since}, {Key: lost, ChildID: "c01", State: firmware.CardConflict, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{other: {"c01", firmware.CardReplaced, since}, lost: {"c01", firmware.CardConflict, since}},
		},
		{
			name: "lost a conflict, with an active card bound since",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardConflict, Since: since}, {Key: spare, ChildID: "c01", State: firmware.CardActive, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{lost: {"c01", firmware.CardConflict, since}, spare: {"c01", firmware.CardActive, since}},
		},
		{
			name: "active: unchanged",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardActive, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{lost: {"c01", firmware.CardActive, since}},
		},
		{
			name: "new to the source: replaces the active card",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardReplaced, Since: since}, {Key: spare, ChildID: "c01", State: firmware.CardActive, Since: since}},
			list: "04A1B2C5,",
			want: map[string]card{lost: {"c01", firmware.CardReplaced, since}, spare: {"c01", firmware.CardReplaced, time.Time{}}, cardKey("04A1B2C5"): {"c01", firmware.CardActive, time.Time{}}},
		},
		{
			name: "replaced for another child: moves and is active",
			base: []firmware.Card{{Key: lost, ChildID: "c02", State: firmware.CardReplaced, Since: since}, {Key: spare, ChildID: "c01", State: firmware.CardActive, Since: since}},
			list: "04A1B2C3,",
			want: map[string]card{lost: {"c01", firmware.CardActive, time.Time{}}, spare: {"c01", firmware.CardReplaced, time.Time{}}},
		},
		{
			name: "ended for one child, another child's new card replaces as before",
			base: []firmware.Card{{Key: lost, ChildID: "c01", State: firmware.CardReplaced, Since: since}, {Key: spare, ChildID: "c01", State: firmware.CardActive, Since: since}, {Key: other, ChildID: "c02", State: firmware.CardActive, Since: since}},
			list: "04A1B2C3,04A1B2C5",
			want: map[string]card{lost: {"c01", firmware.CardReplaced, since}, spare: {"c01", firmware.CardActive, since}, other: {"c02", firmware.CardReplaced, time.Time{}}, cardKey("04A1B2C5"): {"c02", firmware.CardActive, time.Time{}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := loadMangwon(t)
			base.Roster.Cards = tc.base
			uids := strings.Split(tc.list, ",")
			list := header +
				"c01,김민준," + uids[0] + ",,,,,,,,,,\n" +
				"c02,이서연," + uids[1] + ",,,,,,,,,,\n"
			s := importList(t, base, list)
			got := map[string]card{}
			for _, c := range s.Roster.Cards {
				got[c.Key] = card{c.ChildID, c.State, c.Since}
			}
			if len(got) != len(tc.want) {
				t.Errorf("cards %+v, want %+v", got, tc.want)
			}
			for key, w := range tc.want {
				if w.since.IsZero() {
					w.since = importNow
				}
				if g, ok := got[key]; !ok || g.child != w.child || g.state != w.state || !g.since.Equal(w.since) {
					t.Errorf("card %s… = %+v, want %+v", key[:6], g, w)
				}
			}
		})
	}
}
