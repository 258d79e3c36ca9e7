package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"kiumtap/firmware"
)

// MaxCSV is the largest staff list ImportCSV accepts, in bytes.
const MaxCSV = 8 << 20

// maxCSVErrors bounds the errors one import reports.
const maxCSVErrors = 50

// The columns of a staff list, by their header names.
const (
	ColChild    = "아동ID"   // child ID: required on every row
	ColName     = "이름"     // child's name: required on the child's first row
	ColCard     = "카드UID"  // card UID in hex; may be empty
	ColGuardian = "보호자이름"  // guardian's name
	ColPhone    = "보호자연락처" // guardian's mobile number
	ColTexts    = "문자수신"   // Y or N: the guardian wants arrival/departure texts
	ColType     = "이용유형"   // 정기, 일시 or 아픈아이; empty: the row books nothing
	ColStatus   = "이용상태"   // 신청, 이용예정 (or 승인), 이용중, 미승인, 이용취소, 종료
	ColFrom     = "시작일"    // YYYY-MM-DD
	ColTo       = "종료일"    // YYYY-MM-DD, inclusive
	ColWeekdays = "요일"     // 정기 only: e.g. 월화수목금
	ColHours    = "시간"     // e.g. 14:00-18:00
	ColDates    = "이용일"    // 일시 and 아픈아이 only: dates separated by ';'
)

// Columns are the header names ImportCSV requires, in the order a
// template lists them.
var Columns = []string{ColChild, ColName, ColCard, ColGuardian, ColPhone, ColTexts, ColType, ColStatus, ColFrom, ColTo, ColWeekdays, ColHours, ColDates}

// CSVError is an error of one line of a staff list, and of one column of
// it when Column is not empty.
type CSVError struct {
	Line   int    // 1-based line of the file
	Column string // the column's header name, or empty
	Err    error
}

func (e *CSVError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d, column %s: %v", e.Line, e.Column, e.Err)
}

func (e *CSVError) Unwrap() error { return e.Err }

// ImportCSV reads a staff list exported by a centre and returns base with
// the list's children, cards, bookings and guardians. base's centre, its
// calendar, its roster revision, its staff and its applied_bindings are
// kept; base itself is not changed.
//
// # Format
//
// CSV, comma-separated, a header row then one row per child and booking,
// in UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"), or
// in CP949 (a plain "CSV" from Excel on a Korean Windows; EUC-KR is part
// of it): a list that is not valid UTF-8 is read as CP949. A list in
// neither, or in UTF-16 (Excel's "Unicode text"), is refused with the
// line that is neither. The header must name
// every column below, exactly, in any order; other columns are ignored.
// Cells are trimmed of surrounding spaces.
//
//	아동ID       child ID (required on every row)
//	이름         child's name (required on the child's first row; later rows
//	             may leave it empty but must not differ)
//	카드UID      the card's UID in hex, 4 to 10 bytes; ':', '-' and spaces
//	             between digits are allowed ("04:A1:B2:C3"); may be empty.
//	             A card the source already has for the child as replaced,
//	             revoked or conflict stays so (see Merging)
//	보호자이름   guardian's name
//	보호자연락처 guardian's mobile number, 010-1234-5678 or digits
//	문자수신     Y or N (either case): whether the guardian gets
//	             arrival/departure texts
//	이용유형     정기 (regular), 일시 (temporary) or 아픈아이 (sick-child);
//	             정기돌봄, 일시돌봄 and 아픈아이돌봄 are accepted too
//	이용상태     신청, 이용예정 (or 승인), 이용중, 미승인, 이용취소 or 종료
//	시작일       first day, YYYY-MM-DD
//	종료일       last day, YYYY-MM-DD, inclusive
//	요일         정기 only: the weekdays, e.g. 월화수목금 (일월화수목금토)
//	시간         the daily window, e.g. 14:00-18:00 (or 14:00~18:00)
//	이용일       일시 and 아픈아이 only: the dates, separated by ';'
//
// A row whose 이용유형 is empty books nothing, and its other booking cells
// must be empty too: it only adds a card or a guardian. A row whose
// 보호자연락처 is empty names no guardian, and its 보호자이름 and 문자수신
// must be empty too. For 정기, 시작일, 종료일 and 요일 are required and
// 이용일 must be empty; for 일시 and 아픈아이, 이용일 is required, 요일
// must be empty, and 시작일 and 종료일 default to the first and last date.
//
// # Merging
//
// A child may appear on several rows (several bookings, several
// guardians): the rows are merged. A booking repeated on several rows (the
// same type, period, weekdays, window and dates) is one booking and must
// have one status; a guardian repeated (the same number) is one guardian
// and must have one name and one 문자수신. A child has one card: every row
// that gives a UID must give the same one, and a card belongs to one
// child. A booking's ID is made from the child ID and the booking's fields
// (not its status), so it stays the same from one import to the next.
//
// The list is the centre's complete list of children, bookings and
// guardians: they replace base's. Cards are merged with base's so that a
// card taken away stops working (Q20): a UID in the list is an active card
// of its child (Since is now, unless base already had it active for the
// same child); a child whose row gives a new UID has its other active
// cards marked replaced; a child with no UID in the list keeps the cards
// base has for it; cards of children no longer listed leave the roster
// (and tap as unknown cards).
//
// A UID in the list that base has for the same child in another state
// than active (replaced, revoked or conflict) keeps that state, and the
// child's other cards keep theirs: the card was ended after the list was
// exported (a spare bound at a terminal, a revoke, a conflict lost), and
// re-importing the usual export must not turn a lost card back on. Such a
// card comes back only by binding it again (at a terminal, or kiumctl
// enrol), as the enrolment rules allow for a replaced or revoked card and
// refuse for one in conflict until it is freed.
// Cards are stored as firmware.CardKey(centreKey, uid); raw UIDs appear
// neither in the result nor in errors.
//
// Errors name the line and column (*CSVError, joined; at most 50 are
// reported), then the result is checked with Validate.
func ImportCSV(r io.Reader, base *Source, centreKey []byte, now time.Time) (*Source, error) {
	switch {
	case base == nil || base.Roster == nil:
		return nil, errors.New("source: importing a staff list: no base source: the list fills a centre's source, whose calendar it keeps")
	case len(centreKey) < 16:
		return nil, errors.New("source: importing a staff list: the centre's key is missing or shorter than 16 bytes: cards would not be named as the terminals name them")
	}
	raw, err := io.ReadAll(io.LimitReader(r, MaxCSV+1))
	if err != nil {
		return nil, fmt.Errorf("source: reading the staff list: %w", err)
	}
	if len(raw) > MaxCSV {
		return nil, fmt.Errorf("source: the staff list is larger than %d bytes: split it", MaxCSV)
	}
	raw, enc, firstBad, err := decodeList(raw)
	if err != nil {
		return nil, fmt.Errorf("source: importing the staff list: %w", err)
	}
	im := &importer{key: centreKey, children: map[string]*childRows{}, cards: map[string]cardRow{}}
	if err := im.read(raw); err != nil {
		if enc == EncodingCP949 {
			// A header not found in a list read as CP949 may be a UTF-8
			// list with a bad byte: say why it was read so.
			return nil, fmt.Errorf("source: importing the staff list (read as CP949, since line %d is not UTF-8): %w", firstBad, err)
		}
		return nil, fmt.Errorf("source: importing the staff list: %w", err)
	}
	if len(im.errs) > 0 {
		errs := im.errs
		if len(errs) > maxCSVErrors {
			errs = append(errs[:maxCSVErrors:maxCSVErrors], fmt.Errorf("and %d more errors", len(im.errs)-maxCSVErrors))
		}
		return nil, fmt.Errorf("source: importing the staff list: %w", errors.Join(errs...))
	}
	if len(im.order) == 0 {
		return nil, errors.New("source: importing the staff list: no children under the header: export the list again")
	}
	s := im.build(base, now)
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("source: the imported staff list makes an invalid source: %w", err)
	}
	return s, nil
}

// importer collects the rows of one staff list.
type importer struct {
	key      []byte
	col      map[string]int
	children map[string]*childRows
	order    []string           // child IDs in order of first appearance
	cards    map[string]cardRow // card key -> where it was listed
	errs     []error
}

type childRows struct {
	id, name  string
	line      int    // first line
	card      string // card key, "" if none
	cardLine  int
	guardians []guardianRow
	bookings  []bookingRow
}

type guardianRow struct {
	Guardian
	line int
}

type bookingRow struct {
	firmware.Booking
	line int
}

type cardRow struct {
	child string
	line  int
}

// read parses the CSV and collects its rows; it returns an error only
// when the file cannot be read on; errors of lines go to im.errs.
func (im *importer) read(raw []byte) error {
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return errors.New("empty: want a header row naming " + strings.Join(Columns, ", "))
	}
	if err != nil {
		return csvReadError(err)
	}
	im.col = map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := im.col[h]; dup && slices.Contains(Columns, h) {
			return &CSVError{Line: 1, Column: h, Err: errors.New("named twice in the header: keep one")}
		}
		im.col[h] = i
	}
	var missing []string
	for _, c := range Columns {
		if _, ok := im.col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return &CSVError{Line: 1, Err: fmt.Errorf("the header lacks %s: it must name %s (exactly, in any order)", strings.Join(missing, ", "), strings.Join(Columns, ", "))}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				im.errs = append(im.errs, &CSVError{Line: pe.Line, Err: fmt.Errorf("%d cells where the header has %d: check for a stray comma or an unquoted cell", len(rec), len(header))})
				continue
			}
			return csvReadError(err)
		}
		line, _ := cr.FieldPos(0)
		im.row(line, rec)
	}
}

func csvReadError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &CSVError{Line: pe.Line, Err: fmt.Errorf("%w (column %d): check the quotes", pe.Err, pe.Column)}
	}
	return err
}

// row takes one line.
func (im *importer) row(line int, rec []string) {
	cell := func(c string) string { return strings.TrimSpace(rec[im.col[c]]) }
	bad := func(c string, format string, args ...any) {
		im.errs = append(im.errs, &CSVError{Line: line, Column: c, Err: fmt.Errorf(format, args...)})
	}
	id := cell(ColChild)
	if id == "" {
		bad(ColChild, "missing: every row names its child")
		return
	}
	if len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		bad(ColChild, "%q: want at most 64 characters, no spaces", id)
		return
	}
	c := im.children[id]
	name := cell(ColName)
	if c == nil {
		if name == "" {
			bad(ColName, "missing on child %s's first row", id)
		}
		c = &childRows{id: id, name: name, line: line}
		im.children[id] = c
		im.order = append(im.order, id)
	} else if name != "" && c.name == "" {
		c.name = name
	} else if name != "" && name != c.name {
		bad(ColName, "%q, but line %d names child %s %q: one child, one name", name, c.line, id, c.name)
	}
	im.card(c, line, cell(ColCard), bad)
	im.guardian(c, line, cell(ColGuardian), cell(ColPhone), cell(ColTexts), bad)
	im.booking(c, line, cell, bad)
}

func (im *importer) card(c *childRows, line int, uid string, bad func(string, string, ...any)) {
	if uid == "" {
		return
	}
	b, err := ParseUID(uid)
	if err != nil {
		bad(ColCard, "%w", err)
		return
	}
	key := firmware.CardKey(im.key, b)
	if prev, ok := im.cards[key]; ok && prev.child != c.id {
		bad(ColCard, "this card is already listed for child %s on line %d: a card belongs to one child", prev.child, prev.line)
		return
	}
	if c.card != "" && c.card != key {
		bad(ColCard, "child %s has another card on line %d: a child has one card; list it on every row or on one", c.id, c.cardLine)
		return
	}
	if c.card == "" {
		c.card, c.cardLine = key, line
		im.cards[key] = cardRow{child: c.id, line: line}
	}
}

func (im *importer) guardian(c *childRows, line int, name, phone, texts string, bad func(string, string, ...any)) {
	if phone == "" {
		if name != "" || texts != "" {
			bad(ColPhone, "missing for guardian %q: give the number, or leave %s and %s empty too", name, ColGuardian, ColTexts)
		}
		return
	}
	p, err := NormalizePhone(phone)
	if err != nil {
		bad(ColPhone, "%w: correct it", err)
		return
	}
	var wants bool
	switch strings.ToUpper(texts) {
	case "Y":
		wants = true
	case "N":
	case "":
		bad(ColTexts, "missing: Y if the guardian gets arrival and departure texts, else N")
		return
	default:
		bad(ColTexts, "%q: want Y or N", texts)
		return
	}
	g := Guardian{Name: name, Phone: p, Texts: wants}
	for _, prev := range c.guardians {
		if prev.Phone != p {
			continue
		}
		switch {
		case prev.Name != g.Name:
			bad(ColGuardian, "%q, but line %d names the guardian at %s %q: one number, one guardian", name, prev.line, phone, prev.Name)
		case prev.Texts != g.Texts:
			bad(ColTexts, "%q, but line %d says otherwise for the guardian at %s: one guardian, one choice", texts, prev.line, phone)
		}
		return
	}
	c.guardians = append(c.guardians, guardianRow{g, line})
}

func (im *importer) booking(c *childRows, line int, cell func(string) string, bad func(string, string, ...any)) {
	kind := cell(ColType)
	if kind == "" {
		var given []string
		for _, col := range []string{ColStatus, ColFrom, ColTo, ColWeekdays, ColHours, ColDates} {
			if cell(col) != "" {
				given = append(given, col)
			}
		}
		if len(given) > 0 {
			bad(ColType, "empty, but the row gives %s: fill in %s, or empty those cells", strings.Join(given, ", "), ColType)
		}
		return
	}
	b := firmware.Booking{ChildID: c.id}
	n := len(im.errs)
	switch kind {
	case "정기", "정기돌봄":
		b.Type = firmware.Regular
	case "일시", "일시돌봄":
		b.Type = firmware.Temporary
	case "아픈아이", "아픈아이돌봄", "아픈아이 돌봄":
		b.Type = firmware.SickChild
	default:
		bad(ColType, "%q: want 정기, 일시 or 아픈아이", kind)
		return
	}
	status := cell(ColStatus)
	if st, ok := statuses[status]; ok {
		b.Status = st
	} else if status == "" {
		bad(ColStatus, "missing: want 신청, 이용예정, 이용중, 미승인, 이용취소 or 종료")
	} else {
		bad(ColStatus, "%q: want 신청, 이용예정, 이용중, 미승인, 이용취소 or 종료", status)
	}
	date := func(col string) firmware.Date {
		v := cell(col)
		if v == "" {
			if b.Type == firmware.Regular {
				bad(col, "missing: a 정기 booking needs its period, YYYY-MM-DD")
			}
			return firmware.Date{}
		}
		d, err := firmware.ParseDate(v)
		if err != nil {
			bad(col, "%w", err)
		}
		return d
	}
	b.From, b.To = date(ColFrom), date(ColTo)
	if !b.From.IsZero() && !b.To.IsZero() && b.To.Before(b.From) {
		bad(ColTo, "%s is before %s %s", b.To, ColFrom, b.From)
	}
	if h := cell(ColHours); h == "" {
		bad(ColHours, "missing: the daily window, e.g. 14:00-18:00")
	} else if w, err := parseWindow(h); err != nil {
		bad(ColHours, "%w", err)
	} else {
		b.Window = w
	}
	wd, dates := cell(ColWeekdays), cell(ColDates)
	if b.Type == firmware.Regular {
		if dates != "" {
			bad(ColDates, "given for a 정기 booking, which uses %s: leave it empty", ColWeekdays)
		}
		if wd == "" {
			bad(ColWeekdays, "missing: a 정기 booking needs its weekdays, e.g. 월화수목금")
		} else if days, err := parseWeekdays(wd); err != nil {
			bad(ColWeekdays, "%w", err)
		} else {
			b.Weekdays = days
		}
	} else {
		if wd != "" {
			bad(ColWeekdays, "given for a %s booking, which uses %s: leave it empty", kind, ColDates)
		}
		if dates == "" {
			bad(ColDates, "missing: a %s booking needs its dates, e.g. 2026-11-10;2026-11-12", kind)
		}
		for _, part := range strings.Split(dates, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			d, err := firmware.ParseDate(part)
			if err != nil {
				bad(ColDates, "%w", err)
				continue
			}
			if !b.From.IsZero() && d.Before(b.From) {
				bad(ColDates, "%s is before %s %s: correct the date or the period", d, ColFrom, b.From)
				continue
			}
			if !b.To.IsZero() && b.To.Before(d) {
				bad(ColDates, "%s is after %s %s: correct the date or the period", d, ColTo, b.To)
				continue
			}
			if !slices.Contains(b.Dates, d) {
				b.Dates = append(b.Dates, d)
			}
		}
		slices.SortFunc(b.Dates, compareDates)
		if len(b.Dates) > 0 {
			if b.From.IsZero() {
				b.From = b.Dates[0]
			}
			if b.To.IsZero() {
				b.To = b.Dates[len(b.Dates)-1]
			}
		}
	}
	if len(im.errs) > n {
		return
	}
	b.ID = bookingID(b)
	for _, prev := range c.bookings {
		if prev.ID == b.ID {
			if prev.Status != b.Status {
				bad(ColStatus, "%q, but line %d gives the same booking another status: one booking, one status", status, prev.line)
			}
			return
		}
	}
	c.bookings = append(c.bookings, bookingRow{b, line})
}

var statuses = map[string]firmware.BookingStatus{
	"신청": firmware.Applied, "승인": firmware.Scheduled, "이용예정": firmware.Scheduled,
	"이용중": firmware.InUse, "미승인": firmware.Rejected, "이용취소": firmware.Cancelled, "종료": firmware.Ended,
}

var weekdays = map[rune]time.Weekday{
	'일': time.Sunday, '월': time.Monday, '화': time.Tuesday, '수': time.Wednesday,
	'목': time.Thursday, '금': time.Friday, '토': time.Saturday,
}

// parseWeekdays reads days such as 월화수목금 (separators , / · and spaces
// allowed), in week order.
func parseWeekdays(s string) ([]time.Weekday, error) {
	var out []time.Weekday
	for _, r := range s {
		if d, ok := weekdays[r]; ok {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
			continue
		}
		if r == ',' || r == '/' || r == '·' || unicode.IsSpace(r) {
			continue
		}
		return nil, fmt.Errorf("%q: %q is not a weekday: use 일월화수목금토, e.g. 월화수목금", s, r)
	}
	slices.Sort(out)
	return out, nil
}

// parseWindow reads 14:00-18:00 (or with ~ or –; 9:00 is 09:00).
func parseWindow(s string) (firmware.Window, error) {
	bad := fmt.Errorf("%q: want the daily window as 14:00-18:00", s)
	i := strings.IndexAny(s, "-~–")
	if i < 0 {
		return firmware.Window{}, bad
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	clock := func(v string) (firmware.Clock, error) {
		v = strings.TrimSpace(v)
		if len(v) == 4 && v[1] == ':' {
			v = "0" + v
		}
		return firmware.ParseClock(v)
	}
	start, err1 := clock(s[:i])
	end, err2 := clock(s[i+size:])
	if err1 != nil || err2 != nil {
		return firmware.Window{}, bad
	}
	if end <= start {
		return firmware.Window{}, fmt.Errorf("%q ends no later than it starts", s)
	}
	return firmware.Window{Start: start, End: end}, nil
}

func compareDates(a, b firmware.Date) int {
	switch {
	case a.Before(b):
		return -1
	case b.Before(a):
		return 1
	}
	return 0
}

// bookingID names a booking by its child and fields, not its status, so
// the same booking keeps its ID from one import to the next.
func bookingID(b firmware.Booking) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", b.ChildID, b.Type, b.From, b.To, b.Window)
	for _, d := range b.Weekdays {
		fmt.Fprintf(h, "%d,", d)
	}
	h.Write([]byte{0})
	for _, d := range b.Dates {
		fmt.Fprintf(h, "%s,", d)
	}
	return "b-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// build makes the source: base's calendar, the list's children, bookings
// and guardians, and the cards merged as ImportCSV says.
func (im *importer) build(base *Source, now time.Time) *Source {
	r := &firmware.Roster{
		Revision: base.Roster.Revision,
		Issued:   base.Roster.Issued,
		Centre:   base.Roster.Centre,
	}
	r.Centre.Terms = slices.Clone(r.Centre.Terms)
	r.Centre.Closed = slices.Clone(r.Centre.Closed)
	r.Centre.Discretionary = slices.Clone(r.Centre.Discretionary)
	// The staff list and the bindings the portal took in are not in a
	// staff list's columns: they stay as the current source has them (a
	// CSV merged into a source is never behind on terminals' bindings).
	r.Staff = slices.Clone(base.Roster.Staff)
	r.Applied = maps.Clone(base.Roster.Applied)
	guardians := map[string][]Guardian{}
	for _, id := range im.order {
		c := im.children[id]
		r.Children = append(r.Children, firmware.Child{ID: id, Name: c.name})
		for _, b := range c.bookings {
			r.Bookings = append(r.Bookings, b.Booking)
		}
		for _, g := range c.guardians {
			guardians[id] = append(guardians[id], g.Guardian)
		}
	}
	// A listed card base has for the same child in another state than
	// active was ended after the list's export (replaced by a card bound
	// at a terminal, revoked, or lost a conflict): the list is older than
	// that, and does not undo it nor replace the child's other cards.
	ended := map[string]bool{} // child IDs whose listed card base has ended
	for _, card := range base.Roster.Cards {
		if row, ok := im.cards[card.Key]; ok && row.child == card.ChildID && card.State != firmware.CardActive {
			ended[card.ChildID] = true
		}
	}
	listed := make(map[string]bool, len(im.cards))
	for _, card := range base.Roster.Cards {
		c := im.children[card.ChildID]
		if row, ok := im.cards[card.Key]; ok {
			listed[card.Key] = true
			if row.child != card.ChildID {
				card = firmware.Card{Key: card.Key, ChildID: row.child, State: firmware.CardActive, Since: now}
			}
			r.Cards = append(r.Cards, card)
			continue
		}
		switch {
		case c == nil: // the child left the centre; so does the card
			continue
		case c.card != "" && !ended[c.id] && card.State == firmware.CardActive:
			card.State, card.Since = firmware.CardReplaced, now
		}
		r.Cards = append(r.Cards, card)
	}
	for _, id := range im.order {
		if k := im.children[id].card; k != "" && !listed[k] {
			r.Cards = append(r.Cards, firmware.Card{Key: k, ChildID: id, State: firmware.CardActive, Since: now})
		}
	}
	return &Source{Roster: r, Guardians: guardians}
}
