package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

var update = flag.Bool("update", false, "rewrite testdata/staff_cp949.csv and its fuzz seed with x/text's encoder")

// cp949Fixture is testdata/staff_cp949.csv: cp949Text in CP949, as Excel
// saves a plain "CSV" on a Korean Windows. It was written by glibc's iconv
// (iconv -f UTF-8 -t CP949), not by the decoder under test.
const cp949Fixture = "testdata/staff_cp949.csv"

// cp949Text is staffList and a child whose name has 똠, a syllable CP949
// adds to EUC-KR (KS X 1001 lacks it).
const cp949Text = staffList + "c08,이똠,,,,,,,,,,,\n"

// The committed fixture is what two encoders make of cp949Text: iconv
// wrote it, x/text's agrees. -update writes it (and the fuzz seed) anew.
func TestCP949Fixture(t *testing.T) {
	enc, err := korean.EUCKR.NewEncoder().Bytes([]byte(cp949Text))
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join("testdata", "fuzz", "FuzzImportCSV", "cp949")
	if *update {
		if err := os.WriteFile(cp949Fixture, enc, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(seed, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(enc))+")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(cp949Fixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, enc) {
		t.Errorf("%s is not cp949Text in CP949 as x/text writes it (go test -update rewrites it)", cp949Fixture)
	}
	// Bytes from the KS X 1001 and CP949 tables, not from x/text: 아동ID,
	// and 똠 (0x8C63, in CP949's extension).
	if !bytes.HasPrefix(raw, []byte{0xBE, 0xC6, 0xB5, 0xBF, 'I', 'D', ','}) || !bytes.Contains(raw, []byte{0xC0, 0xCC, 0x8C, 0x63}) || utf8.Valid(raw) {
		t.Errorf("%s does not hold CP949: % X…", cp949Fixture, raw[:16])
	}
	if s, err := os.ReadFile(seed); err != nil || !bytes.Contains(s, []byte(strconv.Quote(string(raw)))) {
		t.Errorf("the fuzz seed %s is not the fixture (go test -update rewrites it): %v", seed, err)
	}
}

// A list Excel saved as CP949 imports as the same list in UTF-8 does.
func TestImportCSVCP949(t *testing.T) {
	raw, err := os.ReadFile(cp949Fixture)
	if err != nil {
		t.Fatal(err)
	}
	base := loadMangwon(t)
	got, err := ImportCSV(bytes.NewReader(raw), base, testKey, importNow)
	if err != nil {
		t.Fatalf("the CP949 list: %v", err)
	}
	want := importList(t, base, cp949Text)
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("the CP949 list imports otherwise than in UTF-8:\n%s\n%s", g, w)
	}
	if c := got.Roster.ChildByID("c08"); c == nil || c.Name != "이똠" {
		t.Errorf("c08: %+v, want 이똠", c)
	}
}

// Each encoding a list comes in is read, or refused with the line that
// is wrong and what to do.
func TestImportCSVEncodings(t *testing.T) {
	cp949, _ := korean.EUCKR.NewEncoder().Bytes([]byte(staffList))
	// A UTF-8 list with one byte of Latin-1 on line 4 (é): not UTF-8, and
	// not CP949 either from line 1 (UTF-8's Korean is not CP949's).
	strayByte := strings.Replace(staffList, "이용예정", "이용예정\xE9", 1)
	// A CP949 list with a byte CP949 does not define on line 3.
	badCP949 := bytes.Replace(cp949, []byte("c01,,"), []byte("c01,\xFF,"), 1)
	// A CP949 list whose header names the card column otherwise.
	renamed, _ := korean.EUCKR.NewEncoder().Bytes([]byte(strings.Replace(staffList, "카드UID", "카드번호", 1)))
	utf16 := append([]byte{0xFF, 0xFE}, []byte("a\x00")...)
	for _, tc := range []struct {
		name string
		list []byte
		line int    // of the *CSVError, 0 for none
		want string // in the error; "" for none
	}{
		{"UTF-8", []byte(staffList), 0, ""},
		{"UTF-8 with a BOM", []byte("\uFEFF" + staffList), 0, ""},
		{"CP949", cp949, 0, ""},
		{"CP949, CRLF", bytes.ReplaceAll(cp949, []byte("\n"), []byte("\r\n")), 0, ""},
		{"UTF-8 with a stray byte", []byte(strayByte), 0, "the list is neither UTF-8 (line 4 is not) nor CP949 (line 1 is not; EUC-KR is part of it), the encodings Excel saves a CSV in: save the list again"},
		{"CP949 with a stray byte", badCP949, 0, "the list is neither UTF-8 (line 1 is not) nor CP949 (line 3 is not; EUC-KR is part of it)"},
		{"neither on one line", []byte("id,name\nc01,\xFF\n"), 2, "line 2: neither UTF-8 nor CP949 (EUC-KR)"},
		{"CP949, a column renamed", renamed, 1, "(read as CP949, since line 1 is not UTF-8): line 1: the header lacks 카드UID"},
		{"a BOM, then not UTF-8", append([]byte("\uFEFF"), cp949...), 1, "line 1: not UTF-8, though the file begins with UTF-8's byte-order mark"},
		{"UTF-16", utf16, 0, "UTF-16"},
		{"UTF-16 BE", []byte{0xFE, 0xFF, 0, 'a'}, 0, "UTF-16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ImportCSV(bytes.NewReader(tc.list), loadMangwon(t), testKey, importNow)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Roster.Children) != 4 || s.Roster.ChildByID("c06").Name != "남궁예린" {
					t.Errorf("children %+v", s.Roster.Children)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "source: importing the staff list") {
				t.Fatalf("err %v\nwant one saying %q", err, tc.want)
			}
			var ce *CSVError
			if tc.line > 0 && (!errors.As(err, &ce) || ce.Line != tc.line) {
				t.Errorf("err %v: want a *CSVError of line %d", err, tc.line)
			}
		})
	}
}

// FuzzDecodeList: whatever the bytes, a list decoded is UTF-8; a list
// that was UTF-8 is unchanged but for its byte-order mark; one that was
// not is CP949 and says from which line.
func FuzzDecodeList(f *testing.F) {
	cp949, _ := korean.EUCKR.NewEncoder().Bytes([]byte(cp949Text))
	for _, seed := range [][]byte{[]byte(staffList), []byte("\uFEFF" + staffList), cp949, {0xFF, 0xFE, 'a', 0}, {0xEF, 0xBB, 0xBF, 0xBE}, {'a', '\n', 0x81}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		text, enc, firstBad, err := decodeList(raw)
		if err != nil {
			if !strings.Contains(err.Error(), "save the list again") {
				t.Fatalf("an error that does not say what to do: %v", err)
			}
			return
		}
		if !utf8.Valid(text) {
			t.Fatalf("decoded, not UTF-8: %q", text)
		}
		switch enc {
		case EncodingUTF8:
			if !bytes.Equal(text, bytes.TrimPrefix(raw, []byte("\uFEFF"))) || firstBad != 0 {
				t.Fatalf("UTF-8 changed: %q → %q", raw, text)
			}
		case EncodingCP949:
			if utf8.Valid(raw) || firstBad < 1 || firstBad > 1+bytes.Count(raw, []byte{'\n'}) {
				t.Fatalf("read as CP949, line %d: %q", firstBad, raw)
			}
		default:
			t.Fatalf("encoding %q", enc)
		}
	})
}
