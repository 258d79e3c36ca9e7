package rc522emu

import (
	"testing"
	"time"
)

func TestREQAProbe(t *testing.T) {
	var p REQAProbe
	t0 := time.Now()
	p.OnFrame([]byte{0x26}, 7, t0) // before any card: ignored
	p.Placed()
	t1 := time.Now().Add(time.Millisecond)
	p.OnFrame([]byte{0x93, 0x20}, 16, t1)                  // not a REQA
	p.OnFrame([]byte{0x26}, 7, t1.Add(time.Millisecond))   // the first REQA
	p.OnFrame([]byte{0x26}, 7, t1.Add(2*time.Millisecond)) // a later one
	if got := p.First(); !got.Equal(t1.Add(time.Millisecond)) {
		t.Fatalf("First = %v, want the first REQA after Placed", got)
	}
	p.Placed()
	if !p.First().IsZero() {
		t.Fatal("Placed did not forget the last REQA")
	}
}
