package source

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/text/encoding/korean"
)

// The encodings a staff list comes in, as decodeList names them.
const (
	EncodingUTF8  = "UTF-8"
	EncodingCP949 = "CP949"
)

// saveAgain is what to do with a list in an encoding not read.
const saveAgain = `save the list again from Excel as "CSV UTF-8 (쉼표로 분리)"`

// decodeList returns a staff list as UTF-8 and the encoding it was in:
//
//   - UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"): the
//     mark is dropped;
//   - otherwise CP949, the code page of a Korean Windows, in which Excel
//     saves a plain "CSV" (EUC-KR, and the Hangul syllables beyond it
//     that CP949 adds, such as 똠).
//
// A list that is neither (bytes CP949 does not define, UTF-16 from
// Excel's "Unicode text", UTF-8 with a byte-order mark and bytes that are
// not UTF-8) is an error naming its first bad line. firstBad is the line
// that made a CP949 list not UTF-8, for errors about what was read.
func decodeList(raw []byte) (text []byte, enc string, firstBad int, err error) {
	switch {
	case bytes.HasPrefix(raw, []byte{0xEF, 0xBB, 0xBF}):
		raw = raw[3:]
		if line := badUTF8Line(raw); line > 0 {
			return nil, "", 0, &CSVError{Line: line, Err: fmt.Errorf("not UTF-8, though the file begins with UTF-8's byte-order mark: %s", saveAgain)}
		}
		return raw, EncodingUTF8, 0, nil
	case bytes.HasPrefix(raw, []byte{0xFF, 0xFE}), bytes.HasPrefix(raw, []byte{0xFE, 0xFF}):
		return nil, "", 0, errors.New(`the list is UTF-16 (Excel's "유니코드 텍스트"), which is not read: ` + saveAgain)
	}
	line := badUTF8Line(raw)
	if line == 0 {
		return raw, EncodingUTF8, 0, nil
	}
	text, err = korean.EUCKR.NewDecoder().Bytes(raw)
	if err != nil {
		return nil, "", 0, fmt.Errorf("reading the list as CP949: %w", err)
	}
	// CP949 has no U+FFFD: the decoder puts one for bytes it does not
	// define.
	if i := bytes.IndexRune(text, utf8.RuneError); i >= 0 {
		bad := 1 + bytes.Count(text[:i], []byte{'\n'})
		if bad == line {
			return nil, "", 0, &CSVError{Line: bad, Err: fmt.Errorf("neither UTF-8 nor CP949 (EUC-KR), the encodings Excel saves a CSV in: %s", saveAgain)}
		}
		// Which is the list's mistake, a stray byte in UTF-8 or in CP949,
		// is for staff to see: say both.
		return nil, "", 0, fmt.Errorf("the list is neither UTF-8 (line %d is not) nor CP949 (line %d is not; EUC-KR is part of it), the encodings Excel saves a CSV in: %s", line, bad, saveAgain)
	}
	return text, EncodingCP949, line, nil
}

// badUTF8Line is the 1-based line of raw's first byte that is not UTF-8,
// 0 if all is.
func badUTF8Line(raw []byte) int {
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size <= 1 {
			return 1 + bytes.Count(raw[:i], []byte{'\n'})
		}
		i += size
	}
	return 0
}
