package attendance

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"kiumtap/firmware"
)

// SessionHeader is the header row of WriteCSV and of the 이용기록 sheet.
var SessionHeader = []string{"날짜", "아동ID", "이름", "입실", "퇴실", "이용시간(분)", "자동퇴실", "표시"}

// noDeparture is the 표시 of an open session.
const noDeparture = "퇴실 기록 없음"

// Marks returns the 표시 of a session: what staff should notice, in
// Korean: a missing departure first, then the events' flags.
func (s Session) Marks() []string {
	var out []string
	if s.Open() {
		out = append(out, noDeparture)
	}
	for _, f := range s.Flags {
		if f != string(firmware.FlagAuto) { // the 자동퇴실 column says it
			out = append(out, firmware.Flag(f).Label().Ko) // firmware's labels, as everywhere
		}
	}
	return out
}

// row is a session as the CSV writes it.
func (s Session) row(names map[string]string) []string {
	in := s.In.In(firmware.KST)
	r := []string{s.Day.String(), s.Child, names[s.Child], in.Format("15:04"), "", "", yesNo(s.Auto), strings.Join(s.Marks(), ", ")}
	if !s.Open() {
		r[4] = clockOf(s.Day, s.Out)
		r[5] = strconv.Itoa(s.Minutes())
	}
	return r
}

// clockOf writes t as 15:04 on day d, as 2006-01-02 15:04 on another day.
func clockOf(d firmware.Date, t time.Time) string {
	if firmware.DateOf(t) == d {
		return t.In(firmware.KST).Format("15:04")
	}
	return t.In(firmware.KST).Format("2006-01-02 15:04")
}

func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// WriteCSV writes sessions, in the order given, as CSV (UTF-8, with no
// byte-order mark: WriteReport, the file staff open in Excel, begins with
// one):
//
//	날짜         the KST day of the arrival, 2026-11-03
//	아동ID       the child's ID
//	이름         the child's name from names (empty if names lacks it)
//	입실         arrival, 14:30 (KST)
//	퇴실         departure, 16:10, or 2026-11-04 00:10 on a later day; empty
//	             if none was recorded
//	이용시간(분) whole minutes from arrival to departure; empty if none
//	자동퇴실     Y if an auto_check_out closed the session, else N
//	표시         what to notice, comma-separated: 퇴실 기록 없음 (no
//	             departure), 예약시간 전 입실 (early), 예약시간 후 입실
//	             (late), 명단 갱신 지연 (roster_stale), other flags as they
//	             are
func WriteCSV(w io.Writer, sessions []Session, names map[string]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(SessionHeader); err != nil {
		return fmt.Errorf("attendance: writing the sessions: %w", err)
	}
	for _, s := range sessions {
		if err := cw.Write(s.row(names)); err != nil {
			return fmt.Errorf("attendance: writing the sessions: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("attendance: writing the sessions: %w", err)
	}
	return nil
}

// BOM is the UTF-8 byte-order mark. Excel opens a CSV file that lacks it
// in the system's code page (CP949 on a Korean Windows), which garbles
// Korean; one that begins with it, as UTF-8.
const BOM = "\uFEFF"

// WriteReport writes a month's report as one CSV file (kiumbridge
// export): BOM, so that Excel shows the Korean, then the sessions as
// WriteCSV writes them, an empty line, and the occupancy as
// WriteOccupancyCSV writes it.
func WriteReport(w io.Writer, sessions []Session, occ []Occupancy, names map[string]string) error {
	if _, err := io.WriteString(w, BOM); err != nil {
		return fmt.Errorf("attendance: writing the report: %w", err)
	}
	if err := WriteCSV(w, sessions, names); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("attendance: writing the report: %w", err)
	}
	return WriteOccupancyCSV(w, occ)
}

// OccupancyHeader is the header row of WriteOccupancyCSV and of the
// 시간대별 인원 sheet: 센터, 날짜, 아동수, then 00시 to 23시.
var OccupancyHeader = func() []string {
	h := []string{"센터", "날짜", "아동수"}
	for i := range 24 {
		h = append(h, fmt.Sprintf("%02d시", i))
	}
	return h
}()

// Total is the 날짜 of the row that sums a centre's days.
const Total = "합계"

// totals sums occupancies per centre, in the order centres first appear:
// the monthly cumulative count per hour of Q24. Children sums the days'
// counts (child-days).
func totals(occ []Occupancy) []Occupancy {
	var out []Occupancy
	at := map[string]int{}
	for _, o := range occ {
		i, ok := at[o.Centre]
		if !ok {
			i = len(out)
			at[o.Centre] = i
			out = append(out, Occupancy{Centre: o.Centre})
		}
		out[i].Children += o.Children
		for h, n := range o.Hours {
			out[i].Hours[h] += n
		}
	}
	return out
}

func occupancyRow(o Occupancy, day string) []string {
	r := []string{o.Centre, day, strconv.Itoa(o.Children)}
	for _, n := range o.Hours {
		r = append(r, strconv.Itoa(n))
	}
	return r
}

// WriteOccupancyCSV writes occupancies, in the order given, as CSV: 센터,
// 날짜, 아동수 (distinct children that day), then 00시 to 23시 (children
// inside at some moment of that hour). After the days, one row per centre
// whose 날짜 is 합계 sums its days: per hour, the cumulative count of Q24's
// usage statistic; in 아동수, child-days.
func WriteOccupancyCSV(w io.Writer, occ []Occupancy) error {
	cw := csv.NewWriter(w)
	rows := [][]string{OccupancyHeader}
	for _, o := range occ {
		rows = append(rows, occupancyRow(o, o.Day.String()))
	}
	for _, t := range totals(occ) {
		rows = append(rows, occupancyRow(t, Total))
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("attendance: writing the occupancy: %w", err)
	}
	return nil
}

// Sheet names of WriteXLSX.
const (
	SessionSheet   = "이용기록"
	OccupancySheet = "시간대별 인원"
)

// WriteXLSX writes an Excel workbook of month ("2026-11"; sessions and
// occupancies of other months are left out, see Month) with two sheets:
// 이용기록, the sessions as WriteCSV writes them, and 시간대별 인원, the
// occupancies as WriteOccupancyCSV writes them. Days and times are Excel
// dates and times (KST wall clock, shown as 2026-11-03 and 14:30), counts
// and minutes are numbers; the header rows are frozen and filterable.
func WriteXLSX(w io.Writer, month string, sessions []Session, occ []Occupancy, names map[string]string) error {
	sessions, occ, err := Month(month, sessions, occ)
	if err != nil {
		return err
	}
	f := excelize.NewFile()
	defer f.Close()
	x := &xlsx{f: f}
	x.styles()
	if err := f.SetSheetName(f.GetSheetName(0), SessionSheet); err != nil {
		return fmt.Errorf("attendance: writing the workbook: %w", err)
	}
	if _, err := f.NewSheet(OccupancySheet); err != nil {
		return fmt.Errorf("attendance: writing the workbook: %w", err)
	}
	x.sessions(sessions, names)
	x.occupancy(occ)
	x.check(f.SetDocProps(&excelize.DocProperties{Title: "출결 기록 " + month, Language: "ko-KR", Creator: "kiumtap"}))
	if x.err != nil {
		return fmt.Errorf("attendance: writing the workbook: %w", x.err)
	}
	if _, err := f.WriteTo(w); err != nil {
		return fmt.Errorf("attendance: writing the workbook: %w", err)
	}
	return nil
}

// xlsx writes cells and keeps the first error.
type xlsx struct {
	f                             *excelize.File
	err                           error
	head, date, clock, stamp, num int
}

func (x *xlsx) check(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *xlsx) styles() {
	style := func(s *excelize.Style) int {
		id, err := x.f.NewStyle(s)
		x.check(err)
		return id
	}
	date, clock, stamp := "yyyy-mm-dd", "hh:mm", "yyyy-mm-dd hh:mm"
	x.head = style(&excelize.Style{Font: &excelize.Font{Bold: true}, Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}}})
	x.date = style(&excelize.Style{CustomNumFmt: &date})
	x.clock = style(&excelize.Style{CustomNumFmt: &clock})
	x.stamp = style(&excelize.Style{CustomNumFmt: &stamp})
	x.num = style(&excelize.Style{NumFmt: 1}) // 0
}

// set writes v at (col, row), 1-based, with style (0: none).
func (x *xlsx) set(sheet string, col, row int, v any, style int) {
	cell, err := excelize.CoordinatesToCellName(col, row)
	x.check(err)
	if t, ok := v.(time.Time); ok {
		v = excelTime(t)
	}
	x.check(x.f.SetCellValue(sheet, cell, v))
	if style != 0 {
		x.check(x.f.SetCellStyle(sheet, cell, cell, style))
	}
}

// excelTime is t's KST wall clock as a time excelize writes unchanged:
// Excel times have no zone.
func excelTime(t time.Time) time.Time {
	k := t.In(firmware.KST)
	return time.Date(k.Year(), k.Month(), k.Day(), k.Hour(), k.Minute(), k.Second(), 0, time.UTC)
}

func (x *xlsx) header(sheet string, h []string, widths map[int]float64) {
	for i, v := range h {
		x.set(sheet, i+1, 1, v, x.head)
	}
	x.check(x.f.SetPanes(sheet, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}))
	last, err := excelize.CoordinatesToCellName(len(h), 1)
	x.check(err)
	x.check(x.f.AutoFilter(sheet, "A1:"+last, nil))
	for col, wd := range widths {
		name, err := excelize.ColumnNumberToName(col)
		x.check(err)
		x.check(x.f.SetColWidth(sheet, name, name, wd))
	}
}

func (x *xlsx) sessions(sessions []Session, names map[string]string) {
	const sh = SessionSheet
	x.header(sh, SessionHeader, map[int]float64{1: 12, 2: 10, 3: 10, 4: 8, 5: 17, 6: 12, 7: 9, 8: 30})
	for i, s := range sessions {
		r := i + 2
		x.set(sh, 1, r, s.Day.At(0), x.date)
		x.set(sh, 2, r, s.Child, 0)
		x.set(sh, 3, r, names[s.Child], 0)
		x.set(sh, 4, r, s.In, x.clock)
		if !s.Open() {
			st := x.clock
			if firmware.DateOf(s.Out) != s.Day {
				st = x.stamp
			}
			x.set(sh, 5, r, s.Out, st)
			x.set(sh, 6, r, s.Minutes(), x.num)
		}
		x.set(sh, 7, r, yesNo(s.Auto), 0)
		x.set(sh, 8, r, strings.Join(s.Marks(), ", "), 0)
	}
}

func (x *xlsx) occupancy(occ []Occupancy) {
	const sh = OccupancySheet
	x.header(sh, OccupancyHeader, map[int]float64{1: 12, 2: 12, 3: 8})
	r := 2
	row := func(o Occupancy, day any, style int) {
		x.set(sh, 1, r, o.Centre, 0)
		x.set(sh, 2, r, day, style)
		x.set(sh, 3, r, o.Children, x.num)
		for h, n := range o.Hours {
			x.set(sh, 4+h, r, n, x.num)
		}
		r++
	}
	for _, o := range occ {
		row(o, o.Day.At(0), x.date)
	}
	for _, t := range totals(occ) {
		row(t, Total, x.head)
	}
}
