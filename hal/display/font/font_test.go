package font

import (
	"bytes"
	"image/color"
	"strings"
	"testing"
)

const tinyBDF = `STARTFONT 2.1
FONT_ASCENT 3
FONT_DESCENT 1
STARTCHAR question
ENCODING 63
DWIDTH 4 0
BBX 3 3 0 0
BITMAP
E0
20
40
ENDCHAR
STARTCHAR ga
ENCODING 44032
DWIDTH 4 0
BBX 2 2 0 1
BITMAP
C0
40
ENDCHAR
ENDFONT
`

func TestBDFAndSubset(t *testing.T) {
	f, err := ParseBDF(strings.NewReader(tinyBDF), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 2 || f.Ascent != 3 || f.Glyph('가') == nil || f.Width("가?") != 8 {
		t.Fatalf("parsed %+v", f)
	}
	g, err := Decode(Encode(f))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.Glyph('가').Bits, f.Glyph('가').Bits) || g.Descent != 1 {
		t.Error("subset round trip changed the font")
	}
	for _, bad := range []string{"", "STARTFONT 2.1\nENDFONT\n", "ENCODING 65\n", "STARTCHAR a\nBBX 99 99 0 0\n", "STARTCHAR a\nENCODING 65\nBBX 8 2 0 0\nBITMAP\nFF\nENDCHAR\n"} {
		if _, err := ParseBDF(strings.NewReader(bad), nil); err == nil {
			t.Errorf("ParseBDF(%q): no error", bad)
		}
	}
}

func TestGalmuri11(t *testing.T) {
	f, err := Galmuri11()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range "김민준입실퇴실노데이터가힣AZaz09:()·▶●" {
		if f.Glyph(r) == nil {
			t.Errorf("no glyph for %q", r)
		}
	}
	if f.Len() < 11172 {
		t.Errorf("%d glyphs: not every Hangul syllable", f.Len())
	}
}

func FuzzDecode(f *testing.F) {
	tiny, _ := ParseBDF(strings.NewReader(tinyBDF), nil)
	f.Add(Encode(tiny))
	f.Add([]byte("KTF1\x03\x01\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		face, err := Decode(b)
		if err != nil {
			return
		}
		var img fakeImage
		face.Draw(&img, 0, 10, 1, "가?x", nil)
	})
}

func FuzzParseBDF(f *testing.F) {
	f.Add(tinyBDF)
	f.Fuzz(func(t *testing.T, s string) {
		face, err := ParseBDF(strings.NewReader(s), nil)
		if err != nil {
			return
		}
		if _, err := Decode(Encode(face)); err != nil && face.Glyph('?') != nil {
			t.Fatalf("a parsed font does not survive its subset: %v", err)
		}
	})
}

type fakeImage struct{ n int }

func (f *fakeImage) Set(x, y int, c color.Color) { f.n++ }
