// Package display draws the terminal's screen: a 128×64 one-bit frame with
// up to three lines of Korean or English text in Galmuri11, shown on an
// SSD1306 OLED through periph.io/x/devices/v3/ssd1306, or written to PNG by
// the virtual display for tests, the README and the demo.
//
// It owns turning lines of text into pixels and pixels onto the panel; what
// the lines say is package firmware's.
package display

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/ssd1306"
	"periph.io/x/devices/v3/ssd1306/image1bit"

	"kiumtap/hal/display/font"
)

// The panel's size.
const (
	W = 128
	H = 64
)

// Render lays lines out on a frame: centred, the first line twice as large
// when there are at most two lines and it fits. A line too wide for the
// panel is an error, so a screen never loses words unnoticed.
func Render(face *font.Face, lines []string) (*image1bit.VerticalLSB, error) {
	img := image1bit.NewVerticalLSB(image.Rect(0, 0, W, H))
	if len(lines) > 3 {
		return img, fmt.Errorf("display: %d lines, the panel holds 3", len(lines))
	}
	scale := make([]int, len(lines))
	total := 0
	for i, l := range lines {
		scale[i] = 1
		if i == 0 && len(lines) <= 2 && 2*face.Width(l) <= W {
			scale[i] = 2
		}
		if w := face.Width(l) * scale[i]; w > W {
			return img, fmt.Errorf("display: line %q is %d pixels wide, the panel %d", l, w, W)
		}
		total += face.Height() * scale[i]
	}
	gap := 0
	if len(lines) > 1 {
		gap = min((H-total)/(len(lines)+1), 6)
	}
	y := (H - total - gap*(len(lines)-1)) / 2
	for i, l := range lines {
		y += face.Ascent * scale[i]
		x := (W - face.Width(l)*scale[i]) / 2
		face.Draw(img, x, y, scale[i], l, image1bit.On)
		y += face.Descent*scale[i] + gap
	}
	return img, nil
}

// WritePNG writes a frame as a PNG, each panel pixel a scale×scale block,
// lit pixels in the OLED's colour on black.
func WritePNG(w io.Writer, frame image.Image, scale int, lit color.Color) error {
	b := frame.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.Color(color.Black)
			if r, _, _, _ := frame.At(x, y).RGBA(); r > 0x8000 {
				c = lit
			}
			for dy := range scale {
				for dx := range scale {
					out.Set((x-b.Min.X)*scale+dx, (y-b.Min.Y)*scale+dy, c)
				}
			}
		}
	}
	return png.Encode(w, out)
}

// Screen shows lines of text.
type Screen interface {
	Show(lines []string) error
}

// SSD1306 is the panel.
type SSD1306 struct {
	mu   sync.Mutex
	dev  *ssd1306.Dev
	face *font.Face
}

// NewSSD1306 opens a 128×64 SSD1306 on an I²C bus (address 0x3C).
func NewSSD1306(bus i2c.Bus) (*SSD1306, error) {
	face, err := font.Galmuri11()
	if err != nil {
		return nil, err
	}
	opts := ssd1306.DefaultOpts
	opts.W, opts.H = W, H
	dev, err := ssd1306.NewI2C(bus, &opts)
	if err != nil {
		return nil, fmt.Errorf("display: opening the SSD1306 on I2C %s (address 0x3C): %w", bus, err)
	}
	return &SSD1306{dev: dev, face: face}, nil
}

// Show draws lines on the panel.
func (s *SSD1306) Show(lines []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := Render(s.face, lines)
	if err != nil {
		return err
	}
	return s.dev.Draw(s.dev.Bounds(), img, image.Point{})
}

// Virtual keeps the last frame, as the panel would show it.
type Virtual struct {
	mu    sync.Mutex
	face  *font.Face
	frame *image1bit.VerticalLSB
}

// NewVirtual returns a virtual panel.
func NewVirtual() (*Virtual, error) {
	face, err := font.Galmuri11()
	if err != nil {
		return nil, err
	}
	return &Virtual{face: face, frame: image1bit.NewVerticalLSB(image.Rect(0, 0, W, H))}, nil
}

// Show renders lines into the frame.
func (v *Virtual) Show(lines []string) error {
	img, err := Render(v.face, lines)
	v.mu.Lock()
	v.frame = img
	v.mu.Unlock()
	return err
}

// Frame returns the current frame.
func (v *Virtual) Frame() image.Image {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.frame
}
