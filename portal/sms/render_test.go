package sms

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

func TestEUCKRLen(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"김민준", 6},
		{"abc 123", 7},
		{"망원1동", 7},
		{"[우리동네키움센터 망원1동]", 26},
		{"똠방각하", 8}, // 똠 is not in plain EUC-KR (KS X 1001); CP949 has it
		{"…", 2},
		{"😀", 2},      // CP949 cannot encode it: counted as 2
		{"\xff", 2},   // invalid UTF-8: counted as 2
		{"가\n나", 5},   // a new line is 1 byte
		{"ㄱㅏ", 4},     // jamo: 2 bytes each
		{"漢字", 4},     // hanja: 2 bytes each
		{"é", 2},      // Latin-1 letters CP949 has in its 2-byte range
		{"\u00a0", 2}, // no-break space: not in CP949
		{"\u3000", 2}, // ideographic space
		{"\uac00\ud7a3", 4},
	} {
		if got := EUCKRLen(tc.s); got != tc.want {
			t.Errorf("EUCKRLen(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// TestEUCKRLenAgreesWithEncoder checks the fast path for Hangul syllables
// and a sample of other text against golang.org/x/text's CP949 encoder.
func TestEUCKRLenAgreesWithEncoder(t *testing.T) {
	enc := korean.EUCKR.NewEncoder()
	check := func(s string) {
		t.Helper()
		b, err := enc.String(s)
		if err != nil {
			t.Fatalf("encoding %q: %v", s, err)
		}
		if got := EUCKRLen(s); got != len(b) {
			t.Fatalf("EUCKRLen(%q) = %d, encoder gives %d bytes", s, got, len(b))
		}
	}
	for r := rune(0xAC00); r <= 0xD7A3; r++ {
		check(string(r))
	}
	check("[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.")
	check("ABCabc012 !?.:[]()-")
}

func TestRender(t *testing.T) {
	// 06:02 UTC is 15:02 in Seoul.
	at := time.Date(2025, 3, 4, 6, 2, 0, 0, time.UTC)
	for _, tc := range []struct {
		name          string
		kind          Kind
		centre, child string
		want          string
		wantType      string
	}{
		{"arrival", Arrival, "망원1동", "김민준",
			"[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"departure", Departure, "망원1동", "김민준",
			"[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 퇴실했습니다.", TypeSMS},
		{"centre given with the brand", Arrival, "우리동네키움센터 망원1동", "김민준",
			"[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"centre given with the short brand", Arrival, "키움센터 망원1동", "김민준",
			"[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"brand-like centre name kept", Arrival, "우리동네키움센터망원", "김민준",
			"[우리동네키움센터 우리동네키움센터망원] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"auto check-out fits once shortened", AutoCheckOut, "망원1동", "김민준",
			"[키움센터 망원1동] 김민준 어린이가 퇴실 기록 없이 15:02에 운영 종료로 자동 퇴실되었습니다.", TypeSMS},
		{"auto check-out too long: LMS", AutoCheckOut, "망원1동", "남궁민준",
			"[우리동네키움센터 망원1동] 남궁민준 어린이가 퇴실 기록 없이 15:02에 운영 종료로 자동 퇴실되었습니다.", TypeLMS},
		{"exactly 90 bytes stays whole", Arrival, "서울특별시 마포구 망원1동 제2센터", "김민준",
			"[우리동네키움센터 서울특별시 마포구 망원1동 제2센터] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"91 bytes is shortened", Arrival, "서울특별시 마포구 망원1동 제2센터", "김민준a",
			"[키움센터 서울특별시 마포구 망원1동 제2센터] 김민준a 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"long centre and child: LMS with the full header", Departure, "서울특별시 마포구 망원1동 제2센터", "남궁아름다운별하늘",
			"[우리동네키움센터 서울특별시 마포구 망원1동 제2센터] 남궁아름다운별하늘 어린이가 15:02에 퇴실했습니다.", TypeLMS},
		{"latin names", Arrival, "Mangwon 1", "Alexander Maximilian",
			"[우리동네키움센터 Mangwon 1] Alexander Maximilian 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"control characters and spaces in names", Arrival, "  망원1동\r\n", "김\t민준\x00",
			"[우리동네키움센터 망원1동] 김 민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"no centre name", Arrival, "", "김민준",
			"[우리동네키움센터] 김민준 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"no child name", Arrival, "망원1동", " ",
			"[우리동네키움센터 망원1동] 등록된 어린이가 15:02에 입실했습니다.", TypeSMS},
		{"unknown kind", Kind("late"), "망원1동", "김민준",
			"[우리동네키움센터 망원1동] 김민준 어린이의 출결이 15:02에 기록되었습니다.", TypeSMS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.kind, tc.centre, tc.child, at)
			if got.Body != tc.want || got.Type != tc.wantType {
				t.Fatalf("Render = %q (%s, %d bytes)\nwant     %q (%s)", got.Body, got.Type, EUCKRLen(got.Body), tc.want, tc.wantType)
			}
			checkText(t, got)
		})
	}
}

// checkText checks the length rule on any rendered text.
func checkText(t *testing.T, x Text) {
	t.Helper()
	n := EUCKRLen(x.Body)
	switch x.Type {
	case TypeSMS:
		if n > SMSMaxBytes || x.Subject != "" {
			t.Errorf("SMS of %d bytes with subject %q", n, x.Subject)
		}
	case TypeLMS:
		if n <= SMSMaxBytes || n > LMSMaxBytes || x.Subject != LMSSubject {
			t.Errorf("LMS of %d bytes with subject %q", n, x.Subject)
		}
		if strings.HasPrefix(x.Body, "[키움센터") {
			t.Errorf("LMS with the shortened header: %q", x.Body)
		}
		if EUCKRLen(x.Subject) > 40 {
			t.Errorf("subject %q longer than 40 bytes", x.Subject)
		}
	default:
		t.Errorf("type %q", x.Type)
	}
	if !utf8.ValidString(x.Body) {
		t.Errorf("invalid UTF-8 in %q", x.Body)
	}
}

func TestRenderTimeInKST(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC), "19:30"},
		{time.Date(2025, 3, 4, 19, 30, 0, 0, time.FixedZone("KST", 9*3600)), "19:30"},
		{time.Date(2025, 3, 4, 5, 30, 0, 0, time.FixedZone("CET", 3600)), "13:30"},
		{time.Date(2025, 3, 4, 15, 5, 59, 999, time.UTC), "00:05"}, // the next day in Seoul
		{time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), "09:00"},     // no summer time
	} {
		got := Render(Departure, "망원1동", "김민준", tc.at).Body
		if !strings.Contains(got, " "+tc.want+"에 ") {
			t.Errorf("Render at %v = %q, want time %s", tc.at, got, tc.want)
		}
	}
}

func TestRenderLongNamesFitLMS(t *testing.T) {
	long := strings.Repeat("가나다라마바사", 300)
	for _, k := range []Kind{Arrival, Departure, AutoCheckOut, "other"} {
		got := Render(k, long, long, time.Now())
		checkText(t, got)
		if got.Type != TypeLMS || !strings.Contains(got.Body, "…") {
			t.Errorf("Render(%s) with long names = %s %.40q…", k, got.Type, got.Body)
		}
	}
	if c := clampName(long); EUCKRLen(c) > maxNameBytes {
		t.Errorf("clampName gives %d bytes", EUCKRLen(c))
	}
}
