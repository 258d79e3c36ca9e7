package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"kiumtap/internal/cli"
)

// The demo is make run: it must finish and say what happened.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs in real time")
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-demo"}, &out, &errOut); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{
		"Presented UID DE AD BE EF",
		"Presented UID 05 10 20 30 40 50 60 70 80 90",
		"Removed   UID 04 6A 2B 5C 1D 80 41",
		"feedback: ok",
		"1 chip recoveries",
		"hard reset through RST",
	} {
		if !strings.Contains(out.String()+errOut.String(), want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out.String(), errOut.String())
		}
	}
}

func TestBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-nope"}, &out, &errOut); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("bad flag: %v", err)
	}
	if err := run(context.Background(), []string{"-rxgain", "20"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "RxGainDB 20") {
		t.Errorf("-rxgain 20: %v", err)
	}
}
