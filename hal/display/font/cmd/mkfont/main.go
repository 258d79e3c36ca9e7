// Command mkfont makes the terminal's font subset from a BDF file:
//
//	npm pack galmuri && tar xzf galmuri-*.tgz
//	go run ./hal/display/font/cmd/mkfont package/dist/Galmuri11.bdf > hal/display/font/galmuri11.ktf.flate
//
// It keeps printable ASCII, Hangul syllables and compatibility jamo, and the
// punctuation the screens use, and writes the subset DEFLATE-compressed
// (package font inflates it on first use).
package main

import (
	"compress/flate"
	"fmt"
	"os"

	"kiumtap/hal/display/font"
)

func keep(r rune) bool {
	switch {
	case r >= 0x20 && r <= 0x7E, // ASCII
		r >= 0xAC00 && r <= 0xD7A3, // Hangul syllables
		r >= 0x3131 && r <= 0x318E, // compatibility jamo
		r == '·', r == '–', r == '—', r == '…', r == '※', r == '○', r == '×', r == '✓',
		r == '▶', r == '●': // the enrolment screen's button hints
		return true
	}
	return false
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkfont FONT.bdf > subset.ktf.flate")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfont:", err)
		os.Exit(1)
	}
	defer f.Close()
	face, err := font.ParseBDF(f, keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfont:", err)
		os.Exit(1)
	}
	zw, err := flate.NewWriter(os.Stdout, flate.BestCompression)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfont:", err)
		os.Exit(1)
	}
	zw.Write(font.Encode(face))
	if err := zw.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "mkfont:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "mkfont: %d glyphs, ascent %d, descent %d\n", face.Len(), face.Ascent, face.Descent)
}
