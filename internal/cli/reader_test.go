package cli

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

// No reader is taken by default: on a Raspberry Pi a probe without
// -reader must not report the emulator's success.
func TestReaderChoice(t *testing.T) {
	for _, tc := range []struct {
		args []string
		emu  bool
		err  string // in the error; "": none
	}{
		{args: nil, err: "say which reader: -reader pi (the MFRC522 wired to this Raspberry Pi) or -reader emu"},
		{args: []string{"-reader", "usb"}, err: `-reader "usb": want "emu" or "pi"`},
		{args: []string{"-reader", "emu"}, emu: true},
	} {
		fs := flag.NewFlagSet("probe", flag.ContinueOnError)
		var rf ReaderFlags
		rf.Register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		r, err := rf.Open()
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if (r.Emu != nil) != tc.emu {
			t.Errorf("%q: emulated %v, want %v", tc.args, r.Emu != nil, tc.emu)
		}
		r.Close()
	}
}
