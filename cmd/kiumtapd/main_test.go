package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiumtap/internal/cli"
)

// The demo is make run: it must finish and say what happened.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-demo"}, &out, &errOut); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{
		"screen: 김*준 / 입실",
		"screen: 김*준 / 퇴실",
		"이용예정 상태 / 선생님께 알려주세요",
		"이용일 아님 / (노데이터)",
		"screen: 등록되지 않은 / 카드입니다",
		"replaced_card (card_replaced)",
		"check_in 3, check_out 1, duplicate 1, no_data 1, not_in_use 1, unknown_card 1, replaced_card 1",
		"1 chip recoveries",
		"hard reset through RST",
	} {
		if !strings.Contains(out.String()+errOut.String(), want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out.String(), errOut.String())
		}
	}
}

func TestBadStart(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-nope"}, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("bad flag: %v", err)
	}
	if err := run(context.Background(), nil, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("no config: %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "k.json")
	os.WriteFile(cfg, []byte(`{"device_id": "d", "centre_key": "00112233445566778899aabbccddeeff", "store": "`+filepath.Join(dir, "k.db")+`", "reader": {"kind": "emu", "rx_gain_db": 20}}`), 0o600)
	if err := run(context.Background(), []string{"-config", cfg}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "reader.rx_gain_db: 20 dB is not one the chip has") {
		t.Errorf("bad gain: %v", err)
	}
	os.WriteFile(cfg, []byte(`{"device_id": "d", "centre_key": "00112233445566778899aabbccddeeff", "store": "`+filepath.Join(dir, "k.db")+`", "roster": "`+filepath.Join(dir, "none.json")+`"}`), 0o600)
	if err := run(context.Background(), []string{"-config", cfg}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "roster") {
		t.Errorf("missing roster: %v", err)
	}
}

// An earlier version's JSON configuration migrates with one command, to
// TOML that -check finds good; -check names a mistake and fails.
func TestMigrateAndCheck(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "kiumtapd.json")
	os.WriteFile(old, []byte(`{"device_id": "mangwon1-door", "centre_key": "00112233445566778899aabbccddeeff", "store": "`+filepath.Join(dir, "k.db")+`",
 "reader": {"kind": "emu"}, "decisions": {"duplicate_window": "90s"}}`), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-migrate-config", old}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "duplicate_window = '1m30s'") {
		t.Errorf("migrated:\n%s", out.String())
	}
	toml := filepath.Join(dir, "kiumtapd.toml")
	os.WriteFile(toml, out.Bytes(), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"-config", toml, "-check"}, &out, &errOut); err != nil || !strings.Contains(out.String(), toml+": good (device mangwon1-door, reader emu") {
		t.Errorf("-check of the migrated file: %v %q", err, out.String())
	}
	os.WriteFile(toml, []byte("device_id = \"d\"\ncentre_key = \"00112233445566778899aabbccddeeff\"\n[reader]\nkind = \"usb\"\n"), 0o600)
	if err := run(context.Background(), []string{"-config", toml, "-check"}, &out, &errOut); err == nil || err.Error() != toml+`, line 4: reader.kind: "usb" is not pi or emu` || cli.ExitCode(err) != cli.ExitConfig {
		t.Errorf("-check of a mistake: %v (exit %d, want %d)", err, cli.ExitCode(err), cli.ExitConfig)
	}
	if err := run(context.Background(), []string{"-config", filepath.Join(dir, "absent.toml")}, &out, &errOut); err == nil || cli.ExitCode(err) != cli.ExitConfig {
		t.Errorf("a missing configuration: %v (exit %d, want %d)", err, cli.ExitCode(err), cli.ExitConfig)
	}
	if err := run(context.Background(), []string{"-migrate-config", toml}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "migrate reads a JSON configuration") {
		t.Errorf("migrating TOML: %v", err)
	}
}

// -version prints the build's version and -h the usage, and both exit 0.
func TestVersionAndHelp(t *testing.T) {
	for _, tc := range []struct {
		arg, out, errOut string
	}{
		{arg: "-version", out: "kiumtapd " + cli.BuildVersion() + " (go"},
		{arg: "-h", errOut: "usage: kiumtapd -config FILE"},
		{arg: "-help", errOut: "-version"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{tc.arg}, &out, &errOut); err != nil {
			t.Errorf("%s: %v, want exit 0", tc.arg, err)
		}
		if !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
			t.Errorf("%s: stdout %q, stderr %q; want %q, %q", tc.arg, out.String(), errOut.String(), tc.out, tc.errOut)
		}
	}
}
