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
	if err := run(context.Background(), []string{"-config", cfg}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "RxGainDB 20") {
		t.Errorf("bad gain: %v", err)
	}
	os.WriteFile(cfg, []byte(`{"device_id": "d", "centre_key": "00112233445566778899aabbccddeeff", "store": "`+filepath.Join(dir, "k.db")+`", "roster": "`+filepath.Join(dir, "none.json")+`"}`), 0o600)
	if err := run(context.Background(), []string{"-config", cfg}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "roster") {
		t.Errorf("missing roster: %v", err)
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
