package font

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseBDF reads the characters of a BDF 2.1 font that keep returns true
// for (nil: all).
func ParseBDF(r io.Reader, keep func(rune) bool) (*Face, error) {
	f := &Face{glyphs: map[rune]*Glyph{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	var g *Glyph
	var enc int
	var rows []byte
	inBitmap := false
	line := 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("font: BDF line %d: %s", line, fmt.Sprintf(format, args...))
	}
	ints := func(fields []string, n int) ([]int, error) {
		if len(fields) != n+1 {
			return nil, bad("%s wants %d numbers", fields[0], n)
		}
		out := make([]int, n)
		for i := range n {
			v, err := strconv.Atoi(fields[i+1])
			if err != nil || v < -1000 || v > 1000 {
				return nil, bad("%s: %q is not a small number", fields[0], fields[i+1])
			}
			out[i] = v
		}
		return out, nil
	}
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if inBitmap {
			if fields[0] == "ENDCHAR" {
				inBitmap = false
				stride := (g.W + 7) / 8
				if len(rows) != stride*g.H {
					return nil, bad("bitmap of %d bytes for a %dx%d glyph", len(rows), g.W, g.H)
				}
				g.Bits = rows
				if enc >= 0 && (keep == nil || keep(rune(enc))) {
					f.glyphs[rune(enc)] = g
				}
				g = nil
				continue
			}
			b, err := hex.DecodeString(fields[0])
			if err != nil || len(b) < (g.W+7)/8 {
				return nil, bad("bitmap row %q", fields[0])
			}
			rows = append(rows, b[:(g.W+7)/8]...)
			continue
		}
		var err error
		var v []int
		switch fields[0] {
		case "FONT_ASCENT":
			if v, err = ints(fields, 1); err == nil {
				f.Ascent = v[0]
			}
		case "FONT_DESCENT":
			if v, err = ints(fields, 1); err == nil {
				f.Descent = v[0]
			}
		case "STARTCHAR":
			g = &Glyph{}
			enc = -1
		case "ENCODING":
			if g == nil {
				return nil, bad("ENCODING outside a character")
			}
			if len(fields) < 2 {
				return nil, bad("ENCODING without a number")
			}
			if enc, err = strconv.Atoi(fields[1]); err != nil || enc > 0x10FFFF {
				return nil, bad("ENCODING %q", fields[1])
			}
		case "DWIDTH":
			if g == nil {
				return nil, bad("DWIDTH outside a character")
			}
			if v, err = ints(fields, 2); err == nil {
				g.Advance = v[0]
			}
		case "BBX":
			if g == nil {
				return nil, bad("BBX outside a character")
			}
			if v, err = ints(fields, 4); err == nil {
				if v[0] < 0 || v[1] < 0 || v[0] > 64 || v[1] > 64 {
					return nil, bad("BBX %dx%d", v[0], v[1])
				}
				g.W, g.H, g.XOff, g.YOff = v[0], v[1], v[2], v[3]
			}
		case "BITMAP":
			if g == nil {
				return nil, bad("BITMAP outside a character")
			}
			inBitmap, rows = true, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("font: reading BDF: %w", err)
	}
	if len(f.glyphs) == 0 {
		return nil, ErrNoGlyphs
	}
	return f, nil
}
