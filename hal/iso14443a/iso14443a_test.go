package iso14443a

import (
	"bytes"
	"testing"
	"time"
)

func TestCRCAAnnexB(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want [2]byte
	}{
		{[]byte{0x00, 0x00}, [2]byte{0xA0, 0x1E}},
		{[]byte{0x12, 0x34}, [2]byte{0x26, 0xCF}},
		// HLTA as every reader sends it.
		{[]byte{0x50, 0x00}, [2]byte{0x57, 0xCD}},
	} {
		if got := CRCA(tc.in); got != tc.want {
			t.Errorf("CRCA(% X) = % X, want % X", tc.in, got, tc.want)
		}
		if !CheckCRCA(AppendCRCA(bytes.Clone(tc.in))) {
			t.Errorf("CheckCRCA(AppendCRCA(% X)) = false", tc.in)
		}
	}
	if CheckCRCA([]byte{0x12, 0x34, 0x26, 0xCE}) {
		t.Error("CheckCRCA accepted a wrong CRC")
	}
	if CheckCRCA([]byte{0x12}) {
		t.Error("CheckCRCA accepted a frame too short to hold a CRC")
	}
}

func TestParts(t *testing.T) {
	for _, tc := range []struct {
		uid  []byte
		want [][4]byte
	}{
		{[]byte{1, 2, 3, 4}, [][4]byte{{1, 2, 3, 4}}},
		{[]byte{1, 2, 3, 4, 5, 6, 7}, [][4]byte{{0x88, 1, 2, 3}, {4, 5, 6, 7}}},
		{[]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, [][4]byte{{0x88, 1, 2, 3}, {0x88, 4, 5, 6}, {7, 8, 9, 10}}},
	} {
		got, err := Parts(tc.uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("Parts(% X) = %v", tc.uid, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Parts(% X)[%d] = % X, want % X", tc.uid, i, got[i], tc.want[i])
			}
		}
	}
	for _, n := range []int{0, 3, 5, 11} {
		if _, err := Parts(make([]byte, n)); err == nil {
			t.Errorf("Parts of %d bytes: no error", n)
		}
	}
}

func TestATQA(t *testing.T) {
	for _, tc := range []struct {
		uidLen, bit int
		want        [2]byte
	}{
		{4, 2, [2]byte{0x04, 0x00}}, // MIFARE Classic 1K
		{7, 2, [2]byte{0x44, 0x00}}, // MIFARE Ultralight, NTAG
		{10, 0, [2]byte{0x81, 0x00}},
		{4, 4, [2]byte{0x10, 0x00}},
	} {
		got := ATQA(tc.uidLen, tc.bit)
		if got != tc.want {
			t.Errorf("ATQA(%d, %d) = % X, want % X", tc.uidLen, tc.bit, got, tc.want)
		}
		if n := ATQAUIDLen(got); n != tc.uidLen {
			t.Errorf("ATQAUIDLen(% X) = %d, want %d", got, n, tc.uidLen)
		}
	}
	for _, bad := range [][2]byte{{0x00, 0}, {0x06, 0}, {0xC4, 0}} {
		if n := ATQAUIDLen(bad); n != 0 {
			t.Errorf("ATQAUIDLen(% X) = %d, want 0", bad, n)
		}
	}
}

func TestTiming(t *testing.T) {
	if BitTime < 9430*time.Nanosecond || BitTime > 9450*time.Nanosecond {
		t.Errorf("BitTime = %v, want 9.44µs", BitTime)
	}
	if d := FDT(true); d < 91*time.Microsecond || d > 92*time.Microsecond {
		t.Errorf("FDT(last bit 1) = %v, want 91.15µs", d)
	}
	if d := FDT(false); d < 86*time.Microsecond || d > 87*time.Microsecond {
		t.Errorf("FDT(last bit 0) = %v, want 86.43µs", d)
	}
	// REQA: S + 7 bits + E; ATQA: S + 16 bits + 2 parity + E.
	if n := FrameBits(7); n != 9 {
		t.Errorf("FrameBits(7) = %d, want 9", n)
	}
	if n := FrameBits(16); n != 20 {
		t.Errorf("FrameBits(16) = %d, want 20", n)
	}
}

func TestSelCode(t *testing.T) {
	for level, want := range map[int]byte{1: 0x93, 2: 0x95, 3: 0x97} {
		got, err := SelCode(level)
		if err != nil || got != want || LevelOfSel(got) != level {
			t.Errorf("SelCode(%d) = %#x, %v", level, got, err)
		}
	}
	if _, err := SelCode(4); err == nil {
		t.Error("SelCode(4): no error")
	}
}
