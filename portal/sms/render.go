package sms

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

// Kind is what happened to the child.
type Kind string

// The kinds of text a parent receives.
const (
	Arrival      Kind = "arrival"        // the child tapped in (입실)
	Departure    Kind = "departure"      // the child tapped out (퇴실)
	AutoCheckOut Kind = "auto_check_out" // no tap out; the centre closed the day
	// NotArrived: booked for today, the window started (at: its start)
	// and the grace passed with no arrival (미등원 알림).
	NotArrived Kind = "not_arrived"
)

// Message types and the limits that decide between them.
const (
	TypeSMS = "SMS" // short text, at most SMSMaxBytes
	TypeLMS = "LMS" // long text with a subject, at most LMSMaxBytes

	SMSMaxBytes = 90   // bytes of EUC-KR in an SMS body
	LMSMaxBytes = 2000 // bytes of EUC-KR in an LMS body

	// LMSSubject is the subject of every LMS.
	LMSSubject = "우리동네키움센터 알림"
)

const (
	brandFull  = "우리동네키움센터"
	brandShort = "키움센터"
	// maxNameBytes bounds each name (EUC-KR bytes) so that any text fits
	// an LMS.
	maxNameBytes = 200
)

// Text is a rendered text, ready for a provider.
type Text struct {
	Body    string
	Subject string // only for LMS
	Type    string // TypeSMS or TypeLMS
}

// kst is Korea Standard Time. It has had no daylight saving since 1988, so
// a fixed zone is exact and needs no tzdata on the portal.
var kst = time.FixedZone("KST", 9*60*60)

// Render writes the text for a child's arrival, departure or automatic
// check-out, for example
//
//	[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 입실했습니다.
//	[우리동네키움센터 망원1동] 김민준 어린이가 15:02에 퇴실했습니다.
//	[우리동네키움센터 망원1동] 김민준 어린이가 퇴실 기록 없이 19:30에 운영 종료로 자동 퇴실되었습니다.
//	[우리동네키움센터 망원1동] 김민준 어린이가 15:00 이용 예약인데 아직 입실하지 않았습니다.
//
// at is shown as HH:MM in Korea Standard Time (UTC+9) whatever its
// location. centreName may be given with or without the "우리동네키움센터"
// brand in front ("망원1동" and "우리동네키움센터 망원1동" render the same).
// An unknown kind renders a neutral "출결이 기록되었습니다" text.
//
// Length rule: an SMS carries at most 90 bytes of EUC-KR (Hangul syllables
// take 2 bytes, ASCII 1; see EUCKRLen). If the full text is longer,
// Render first shortens the header "[우리동네키움센터 X]" to "[키움센터 X]";
// if the text is still longer than 90 bytes it is sent as an LMS instead:
// the full, unshortened text with the subject "우리동네키움센터 알림", up to
// 2,000 bytes. Names longer than 200 bytes are cut (ending in "…") so that
// every text fits an LMS; control characters in names become spaces.
func Render(k Kind, centreName, childName string, at time.Time) Text {
	centre := clampName(stripBrand(cleanName(centreName)))
	child := clampName(cleanName(childName))
	if child == "" {
		child = "등록된"
	}
	body := sentence(k, child, at.In(kst).Format("15:04"))
	full := header(brandFull, centre) + " " + body
	if EUCKRLen(full) <= SMSMaxBytes {
		return Text{Body: full, Type: TypeSMS}
	}
	if short := header(brandShort, centre) + " " + body; EUCKRLen(short) <= SMSMaxBytes {
		return Text{Body: short, Type: TypeSMS}
	}
	return Text{Body: full, Subject: LMSSubject, Type: TypeLMS}
}

func sentence(k Kind, child, hhmm string) string {
	switch k {
	case Arrival:
		return child + " 어린이가 " + hhmm + "에 입실했습니다."
	case Departure:
		return child + " 어린이가 " + hhmm + "에 퇴실했습니다."
	case AutoCheckOut:
		// "자동 퇴실되었습니다" rather than "자동 퇴실 처리되었습니다": the
		// shorter wording keeps an ordinary centre's text within one SMS
		// once the header is shortened.
		return child + " 어린이가 퇴실 기록 없이 " + hhmm + "에 운영 종료로 자동 퇴실되었습니다."
	case NotArrived:
		return child + " 어린이가 " + hhmm + " 이용 예약인데 아직 입실하지 않았습니다."
	}
	return child + " 어린이의 출결이 " + hhmm + "에 기록되었습니다."
}

func header(brand, centre string) string {
	if centre == "" {
		return "[" + brand + "]"
	}
	return "[" + brand + " " + centre + "]"
}

// cleanName turns control characters and runs of white space into single
// spaces and trims the ends, so that a name cannot break a text's layout.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// stripBrand removes a leading "우리동네키움센터" or "키움센터" so that a
// roster's full centre name does not repeat the brand in the header.
func stripBrand(s string) string {
	for _, brand := range []string{brandFull, brandShort} {
		if rest, ok := strings.CutPrefix(s, brand); ok && (rest == "" || rest[0] == ' ') {
			return strings.TrimSpace(rest)
		}
	}
	return s
}

// clampName cuts s to at most maxNameBytes of EUC-KR, ending in "…".
func clampName(s string) string {
	if EUCKRLen(s) <= maxNameBytes {
		return s
	}
	const ellipsis = "…"
	n := EUCKRLen(ellipsis)
	for i, r := range s {
		w := runeLen(r)
		if n+w > maxNameBytes {
			return s[:i] + ellipsis
		}
		n += w
	}
	return s
}

// EUCKRLen is the length in bytes of s encoded in EUC-KR, the encoding
// Korean carriers count an SMS in. It uses the CP949 (Unified Hangul Code)
// superset, so every modern Hangul syllable counts 2 bytes even where plain
// EUC-KR lacks it, ASCII counts 1 and other characters count what CP949
// gives them. A character CP949 cannot encode at all (an emoji, invalid
// UTF-8) counts 2 bytes; providers may refuse a text containing one.
func EUCKRLen(s string) int {
	n := 0
	for _, r := range s {
		n += runeLen(r)
	}
	return n
}

func runeLen(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		return 1
	case r >= 0xAC00 && r <= 0xD7A3: // Hangul syllables: all in CP949
		return 2
	case r == utf8.RuneError:
		return 2
	}
	var buf [utf8.UTFMax]byte
	b, err := korean.EUCKR.NewEncoder().Bytes(buf[:utf8.EncodeRune(buf[:], r)])
	if err != nil {
		return 2
	}
	return len(b)
}
