// Package font holds the terminal's bitmap font: Galmuri11, a pixel font
// with every Hangul syllable, drawn for small screens (SIL Open Font
// License 1.1, see OFL.txt; https://github.com/quiple/galmuri). Its glyphs
// are stored in a compact subset made from the font's BDF file by
// cmd/mkfont, and drawn pixel for pixel: a 1-bit screen needs no
// anti-aliasing, and a bitmap font needs no rasteriser.
//
// It owns reading BDF and the subset format, and drawing text into images.
package font

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"image/color"
	"io"
	"sort"
	"sync"
)

// Glyph is one character's bitmap.
type Glyph struct {
	W, H       int    // bitmap size
	XOff, YOff int    // offset of the bitmap's lower left corner from the origin on the baseline
	Advance    int    // how far the pen moves
	Bits       []byte // rows of ceil(W/8) bytes, MSB first
}

func (g *Glyph) set(x, y int) bool {
	stride := (g.W + 7) / 8
	return g.Bits[y*stride+x/8]&(0x80>>(x%8)) != 0
}

// Face is a set of glyphs with one ascent and descent.
type Face struct {
	Ascent, Descent int
	glyphs          map[rune]*Glyph
}

// Glyph returns the glyph of r, or nil.
func (f *Face) Glyph(r rune) *Glyph { return f.glyphs[r] }

// Len is the number of glyphs.
func (f *Face) Len() int { return len(f.glyphs) }

// Height is the line height.
func (f *Face) Height() int { return f.Ascent + f.Descent }

// Width returns the advance of s at scale 1; runes without a glyph take the
// advance of '?'.
func (f *Face) Width(s string) int {
	w := 0
	for _, r := range s {
		if g := f.glyph(r); g != nil {
			w += g.Advance
		}
	}
	return w
}

func (f *Face) glyph(r rune) *Glyph {
	if g := f.glyphs[r]; g != nil {
		return g
	}
	return f.glyphs['?']
}

// Draw draws s with its baseline at (x, y), each font pixel a scale×scale
// block of colour c, and returns the x after the text.
func (f *Face) Draw(dst interface{ Set(x, y int, c color.Color) }, x, y, scale int, s string, c color.Color) int {
	for _, r := range s {
		g := f.glyph(r)
		if g == nil {
			continue
		}
		top := y - (g.YOff+g.H)*scale
		for gy := 0; gy < g.H; gy++ {
			for gx := 0; gx < g.W; gx++ {
				if !g.set(gx, gy) {
					continue
				}
				for dy := range scale {
					for dx := range scale {
						dst.Set(x+(g.XOff+gx)*scale+dx, top+gy*scale+dy, c)
					}
				}
			}
		}
		x += g.Advance * scale
	}
	return x
}

// The subset format: "KTF1", ascent and descent (int8), glyph count (u32),
// then per glyph, by code point: rune (u32), W, H (u8), XOff, YOff (int8),
// Advance (u8), bitmap.
var magic = []byte("KTF1")

// Encode writes a face in the subset format.
func Encode(f *Face) []byte {
	var b bytes.Buffer
	b.Write(magic)
	b.WriteByte(byte(int8(f.Ascent)))
	b.WriteByte(byte(int8(f.Descent)))
	runes := make([]rune, 0, len(f.glyphs))
	for r := range f.glyphs {
		runes = append(runes, r)
	}
	sort.Slice(runes, func(i, j int) bool { return runes[i] < runes[j] })
	binary.Write(&b, binary.BigEndian, uint32(len(runes)))
	for _, r := range runes {
		g := f.glyphs[r]
		binary.Write(&b, binary.BigEndian, uint32(r))
		b.Write([]byte{byte(g.W), byte(g.H), byte(int8(g.XOff)), byte(int8(g.YOff)), byte(g.Advance)})
		b.Write(g.Bits)
	}
	return b.Bytes()
}

// Decode reads a face in the subset format; damaged data is an error.
func Decode(data []byte) (*Face, error) {
	bad := func(why string) (*Face, error) { return nil, fmt.Errorf("font: damaged subset: %s", why) }
	if len(data) < 10 || !bytes.Equal(data[:4], magic) {
		return bad("no KTF1 header")
	}
	f := &Face{Ascent: int(int8(data[4])), Descent: int(int8(data[5])), glyphs: map[rune]*Glyph{}}
	n := binary.BigEndian.Uint32(data[6:10])
	p := data[10:]
	if uint64(n)*9 > uint64(len(p)) {
		return bad("more glyphs announced than bytes")
	}
	for i := uint32(0); i < n; i++ {
		if len(p) < 9 {
			return bad("truncated glyph header")
		}
		r := rune(binary.BigEndian.Uint32(p))
		g := &Glyph{W: int(p[4]), H: int(p[5]), XOff: int(int8(p[6])), YOff: int(int8(p[7])), Advance: int(p[8])}
		p = p[9:]
		size := (g.W + 7) / 8 * g.H
		if g.W > 64 || g.H > 64 || len(p) < size {
			return bad(fmt.Sprintf("glyph %U of %dx%d", r, g.W, g.H))
		}
		g.Bits = p[:size:size]
		p = p[size:]
		f.glyphs[r] = g
	}
	if len(p) != 0 {
		return bad("bytes after the last glyph")
	}
	if f.glyphs['?'] == nil {
		return bad("no '?' glyph to stand in for missing ones")
	}
	return f, nil
}

// The subset is embedded DEFLATE-compressed (raw, as compress/flate
// writes it): 61 KiB instead of 342 KiB of a binary that must fit a Pi
// Zero's terminal package. It is inflated once, on first use.
//
//go:embed galmuri11.ktf.flate
var galmuri11 []byte

var (
	once    sync.Once
	face    *Face
	errFace error
)

// Galmuri11 returns the embedded face.
func Galmuri11() (*Face, error) {
	once.Do(func() {
		raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(galmuri11)))
		if err != nil {
			errFace = fmt.Errorf("font: inflating the embedded subset: %w", err)
			return
		}
		face, errFace = Decode(raw)
	})
	return face, errFace
}

// ErrNoGlyphs is returned by ParseBDF for a file without characters.
var ErrNoGlyphs = errors.New("font: BDF file without characters")
