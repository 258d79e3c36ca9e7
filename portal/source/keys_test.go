package source

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseUID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // hex, or the error
	}{
		{"04A1B2C3", "04a1b2c3"},
		{"04:a1:b2:c3", "04a1b2c3"},
		{"04-A1-B2-C3-D4-E5-F6", "04a1b2c3d4e5f6"},
		{"05 10 20 30 40 50 60 70 80 90", "05102030405060708090"},
		{"04A1B2", "3 bytes: a card UID has 4 to 10 bytes"},
		{"0102030405060708090A0B", "11 bytes"},
		{"04A1B2CZ", "not a UID in hex digits"},
		{"04A1B2C", "not a UID in hex digits"},
		{"", "0 bytes"},
	} {
		b, err := ParseUID(tc.in)
		got := hex.EncodeToString(b)
		if err != nil {
			got = err.Error()
			if strings.Contains(got, tc.in) && tc.in != "" {
				t.Errorf("ParseUID(%q): the error repeats the UID: %v", tc.in, err)
			}
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("ParseUID(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCentreKey(t *testing.T) {
	a, err := NewCentreKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewCentreKey()
	if len(a) != 2*CentreKeySize || a == b {
		t.Errorf("NewCentreKey: %q, %q", a, b)
	}
	k, err := ParseCentreKey(a)
	if err != nil || len(k) != CentreKeySize {
		t.Errorf("ParseCentreKey(NewCentreKey()): % x, %v", k, err)
	}
	if k, err := ParseCentreKey(" 00112233445566778899aabbccddeeff\n"); err != nil || !bytes.Equal(k, []byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}) {
		t.Errorf("a key with spaces around: % x, %v", k, err)
	}
	for in, want := range map[string]string{
		"":                                 "missing",
		"0011":                             "2 bytes, want at least 16 (32 hex digits)",
		"00112233445566778899aabbccddeexx": "not hex",
	} {
		if _, err := ParseCentreKey(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCentreKey(%q): %v, want %q", in, err, want)
		}
	}
}
