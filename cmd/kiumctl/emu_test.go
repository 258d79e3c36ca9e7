package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
	"kiumtap/hal/rc522/rc522emu"
	"kiumtap/internal/cli"
	"kiumtap/internal/wait"
)

// A probe must be told which reader: without -reader it is a usage error
// that names both, never a silent probe of the emulator.
func TestProbeNeedsAReader(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"reader", "probe"}, &out, &errOut)
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "-reader pi") || !strings.Contains(err.Error(), "-reader emu") {
		t.Errorf("probe without -reader: %v, want a usage error naming -reader pi and -reader emu", err)
	}
	if strings.Contains(out.String(), "card:") {
		t.Errorf("probe without -reader read a card:\n%s", out.String())
	}
}

// emuTerminal stands for kiumtapd's tap loop behind the emulated reader:
// a card placed is seen and brings a screen, a card removed is seen gone.
type emuTerminal struct{ e *localapi.Emulator }

func (f *emuTerminal) Place(c *rc522emu.Card) {
	f.e.Saw(rc522.Event{Kind: rc522.Presented, Card: rc522.Card{UID: c.UID()}})
	f.e.Shown(firmware.Feedback{Pattern: firmware.PatternArrival, Lines: []string{"김*준", "입실 15:02"}})
}

func (f *emuTerminal) Remove(c *rc522emu.Card) {
	f.e.Saw(rc522.Event{Kind: rc522.Removed, Card: rc522.Card{UID: c.UID()}})
}

type emuRoster struct{ r *firmware.Roster }

func (r emuRoster) Roster() (*firmware.Roster, time.Time, error) { return r.r, time.Time{}, nil }

// serveEmu serves the local API on a socket, with an emulator or (nil
// cards) without one, until the test ends.
func serveEmu(t *testing.T, cards map[string]string) string {
	t.Helper()
	r := &firmware.Roster{Revision: 1,
		Centre:   firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{{Name: "연중", From: firmware.DateOf(time.Now()), To: firmware.DateOf(time.Now()), Hours: firmware.Window{End: 24 * 60}, Weekdays: []time.Weekday{0, 1, 2, 3, 4, 5, 6}}}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}},
		Cards:    []firmware.Card{{Key: firmware.CardKey(key, []byte{0xDE, 0xAD, 0xBE, 0xEF}), ChildID: "c1", State: firmware.CardActive}},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	o := localapi.Options{}
	if cards != nil {
		f := &emuTerminal{}
		e, err := localapi.NewEmulator(localapi.EmulatorOptions{Field: f, Roster: emuRoster{r}, Key: key, Cards: cards})
		if err != nil {
			t.Fatal(err)
		}
		f.e, o.Emulator = e, e
	}
	sock := filepath.Join(t.TempDir(), "kiumtapd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- localapi.Serve(ctx, sock, localapi.NewHandler(o)) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.For(t, 5*time.Second, "the socket", func() bool {
		resp, err := localapi.Client(sock).Get("http://kiumtapd/emu/cards")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return sock
}

func TestEmuCommands(t *testing.T) {
	sock := serveEmu(t, map[string]string{"minjun": "DEADBEEF"})
	for _, tc := range []struct {
		args []string
		want []string // in the output, or in the error
		err  bool
	}{
		{args: []string{"tap", "김민준"}, want: []string{`tapped card DE AD BE EF "minjun" (c1 김민준, active)`, "screen: 김*준 / 입실 15:02 [arrival]", "on the reader: nothing"}},
		{args: []string{"place", "04", "A1", "B2", "C3"}, want: []string{"placed card 04 A1 B2 C3 (not in the roster)", "on the reader: card 04 A1 B2 C3 (not in the roster)"}},
		{args: []string{"place", "04A1B2C3"}, err: true, want: []string{"kiumtapd: the card is not where that needs it: card 04 A1 B2 C3 is on the reader already"}},
		{args: []string{"cards"}, want: []string{"DE AD BE EF  minjun  c1 김민준", "04 A1 B2 C3", "not in the roster", "yes"}},
		{args: []string{"remove"}, want: []string{"removed card 04 A1 B2 C3 (not in the roster)", "on the reader: nothing"}},
		{args: []string{"tap", "04A1B"}, err: true, want: []string{"not a card UID"}},
		{args: []string{"tap", "DEADBEEF", "-wait", "2s"}, want: []string{`tapped card DE AD BE EF "minjun"`}}, // flags after the card
		{args: []string{"tap", "이서연"}, err: true, want: []string{`"이서연" is not a UID`}},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"emu", tc.args[0], "-socket", sock}, tc.args[1:]...), &out, &errOut)
		got := out.String()
		if err != nil {
			got = err.Error()
		}
		if (err != nil) != tc.err {
			t.Errorf("emu %q: %v\n%s", tc.args, err, out.String())
			continue
		}
		if errors.Is(err, cli.ErrUsage) {
			t.Errorf("emu %q: %v is not a usage mistake", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("emu %q:\n%s\nwant %q", tc.args, got, w)
			}
		}
	}
}

// kiumctl emu against a kiumtapd with a real reader says so.
func TestEmuWithARealReader(t *testing.T) {
	sock := serveEmu(t, nil)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"emu", "place", "-socket", sock, "DEADBEEF"}, &out, &errOut)
	if err == nil || errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "the reader is a real MFRC522: put a card on it") {
		t.Errorf("emu place on a real reader: %v", err)
	}
}

func TestEmuUsage(t *testing.T) {
	for _, args := range [][]string{
		{"emu"},
		{"emu", "shake"},
		{"emu", "place"},
		{"emu", "tap", "-wait", "0s", "DEADBEEF"},
		{"emu", "cards", "DEADBEEF"},
		{"emu", "place", "-nosuchflag", "DEADBEEF"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"emu", "-h"}, {"emu", "help"}, {"emu", "tap", "-h"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if cli.ExitCode(err) != 0 || !strings.Contains(out.String()+errOut.String(), "kiumctl emu") {
			t.Errorf("run(%q) = %v (exit %d), %q; want the usage and exit 0", args, err, cli.ExitCode(err), out.String()+errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"emu", "cards", "-socket", filepath.Join(t.TempDir(), "none.sock")}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Errorf("no kiumtapd: %v", err)
	}
}
