package attendance

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"kiumtap/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// november is two days of centre m1 in November 2026 and one tap of
// October 31, with every kind of session.
func november() ([]Session, []Occupancy, map[string]string) {
	evs := []protocol.Event{
		ev("c5", "check_in", "10-31 14:00", 1),
		ev("c5", "check_out", "10-31 17:00", 2),
		ev("c1", "check_in", "11-03 14:30", 3),
		ev("c2", "check_in", "11-03 13:40", 4, "early"),
		ev("c3", "not_in_use", "11-03 14:35", 5),
		ev("c1", "check_out", "11-03 16:10", 6),
		ev("c4", "check_in", "11-03 18:20", 7, "late", "roster_stale"),
		ev("c2", "auto_check_out", "11-03 19:30", 8, "auto_check_out"),
		ev("c4", "check_out", "11-04 00:10", 9, "roster_stale"),
		ev("c1", "check_in", "11-04 14:05", 10),
		ev("c6", "check_in", "11-04 15:00", 11),
		ev("c6", "check_out", "11-04 17:45", 12),
	}
	names := map[string]string{"c1": "김민준", "c2": "이서연", "c4": "최하은", "c5": "정서준", "c6": "남궁, 예린"}
	ss := Sessions(evs)
	return ss, Occupancies(ss), names
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\ngot\n%s\nwant\n%s", path, got, want)
	}
}

func TestWriteCSV(t *testing.T) {
	ss, _, names := november()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, ss, names); err != nil {
		t.Fatal(err)
	}
	golden(t, "sessions.csv", buf.Bytes())
}

func TestWriteOccupancyCSV(t *testing.T) {
	_, occ, _ := november()
	var buf bytes.Buffer
	if err := WriteOccupancyCSV(&buf, occ); err != nil {
		t.Fatal(err)
	}
	golden(t, "occupancy.csv", buf.Bytes())
}

// The report begins with a UTF-8 byte-order mark, once, so that Excel
// reads the Korean as UTF-8 (without it, a Korean Windows takes CP949),
// then holds the two CSV files as they are, an empty line between.
func TestWriteReport(t *testing.T) {
	ss, occ, names := november()
	var buf bytes.Buffer
	if err := WriteReport(&buf, ss, occ, names); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if !bytes.HasPrefix(got, []byte{0xEF, 0xBB, 0xBF}) || bytes.Count(got, []byte(BOM)) != 1 {
		t.Fatalf("the report does not begin with the one UTF-8 BOM: % X", got[:min(8, len(got))])
	}
	sessions, _ := os.ReadFile(filepath.Join("testdata", "sessions.csv"))
	occupancy, _ := os.ReadFile(filepath.Join("testdata", "occupancy.csv"))
	want := slices.Concat([]byte(BOM), sessions, []byte("\n"), occupancy)
	if !bytes.Equal(got, want) {
		t.Errorf("report\n%s\nwant\n%s", got, want)
	}
}

// failWriter fails every write.
type failWriter struct{}

var errDisk = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errDisk }

func TestWriteErrors(t *testing.T) {
	ss, occ, names := november()
	for name, err := range map[string]error{
		"WriteCSV":          WriteCSV(failWriter{}, ss, names),
		"WriteOccupancyCSV": WriteOccupancyCSV(failWriter{}, occ),
		"WriteReport":       WriteReport(failWriter{}, ss, occ, names),
		"WriteXLSX":         WriteXLSX(failWriter{}, "2026-11", ss, occ, names),
	} {
		if !errors.Is(err, errDisk) || !strings.HasPrefix(err.Error(), "attendance: writing the ") {
			t.Errorf("%s: %v, want the write's error wrapped", name, err)
		}
	}
	if err := WriteXLSX(&bytes.Buffer{}, "November", ss, occ, names); err == nil || !strings.Contains(err.Error(), "want YYYY-MM") {
		t.Errorf("WriteXLSX of a bad month: %v", err)
	}
}

// The workbook read back with excelize holds what the CSV files hold, for
// November only, with days, times and numbers typed.
func TestWriteXLSX(t *testing.T) {
	ss, occ, names := november()
	var buf bytes.Buffer
	if err := WriteXLSX(&buf, "2026-11", ss, occ, names); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); !slices.Equal(got, []string{SessionSheet, OccupancySheet}) {
		t.Fatalf("sheets %q", got)
	}

	rows, err := f.GetRows(SessionSheet)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		SessionHeader,
		{"2026-11-03", "c2", "이서연", "13:40", "19:30", "350", "Y", "예약시간 전 입실"},
		{"2026-11-03", "c1", "김민준", "14:30", "16:10", "100", "N"},
		{"2026-11-03", "c4", "최하은", "18:20", "2026-11-04 00:10", "350", "N", "예약시간 후 입실, 명단 갱신 지연"},
		{"2026-11-04", "c1", "김민준", "14:05", "", "", "N", "퇴실 기록 없음"},
		{"2026-11-04", "c6", "남궁, 예린", "15:00", "17:45", "165", "N"},
	}
	checkRows(t, SessionSheet, rows, want)

	rows, err = f.GetRows(OccupancySheet)
	if err != nil {
		t.Fatal(err)
	}
	hours := func(counts map[int]string) []string {
		r := make([]string, 24)
		for h := range r {
			r[h] = "0"
			if n, ok := counts[h]; ok {
				r[h] = n
			}
		}
		return r
	}
	want = [][]string{
		OccupancyHeader,
		append([]string{"m1", "2026-11-03", "3"}, hours(map[int]string{13: "1", 14: "2", 15: "2", 16: "2", 17: "1", 18: "2", 19: "2", 20: "1", 21: "1", 22: "1", 23: "1"})...),
		append([]string{"m1", "2026-11-04", "3"}, hours(map[int]string{0: "1", 14: "1", 15: "1", 16: "1", 17: "1"})...),
		append([]string{"m1", Total, "6"}, hours(map[int]string{0: "1", 13: "1", 14: "3", 15: "3", 16: "3", 17: "2", 18: "2", 19: "2", 20: "1", 21: "1", 22: "1", 23: "1"})...),
	}
	checkRows(t, OccupancySheet, rows, want)

	// Typed cells: a day and a time are numbers shown as dates, minutes
	// and counts are numbers.
	for _, c := range []struct{ sheet, cell string }{
		{SessionSheet, "A2"}, {SessionSheet, "D2"}, {SessionSheet, "E4"}, {SessionSheet, "F2"},
		{OccupancySheet, "B2"}, {OccupancySheet, "C2"}, {OccupancySheet, "R2"},
	} {
		typ, err := f.GetCellType(c.sheet, c.cell)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := f.GetCellValue(c.sheet, c.cell, excelize.Options{RawCellValue: true})
		if typ != excelize.CellTypeUnset && typ != excelize.CellTypeNumber {
			t.Errorf("%s!%s: type %v (%q), want a number", c.sheet, c.cell, typ, raw)
		}
	}
	// 14:30 on 2026-11-03 KST is Excel's serial 46329.604166…
	if raw, _ := f.GetCellValue(SessionSheet, "D3", excelize.Options{RawCellValue: true}); !strings.HasPrefix(raw, "46329.6041") {
		t.Errorf("D3 raw %q, want 2026-11-03 14:30 as an Excel serial", raw)
	}
	if props, err := f.GetDocProps(); err != nil || props.Title != "출결 기록 2026-11" {
		t.Errorf("title %q, %v", props.Title, err)
	}
}

func checkRows(t *testing.T, sheet string, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d:\n%q", sheet, len(got), len(want), got)
	}
	for i := range min(len(got), len(want)) {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s row %d:\n got %q\nwant %q", sheet, i+1, got[i], want[i])
		}
	}
}
