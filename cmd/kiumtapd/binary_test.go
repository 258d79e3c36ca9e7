package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/firmware"
	"kiumtap/internal/logbuf"
	"kiumtap/internal/testbin"
	"kiumtap/internal/wait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// binaries builds kiumtapd and kiumctl (once) and returns their paths.
func binaries(t *testing.T) (kiumtapd, kiumctl string) {
	t.Helper()
	return testbin.Path(t, "kiumtap/cmd/kiumtapd"), testbin.Path(t, "kiumtap/cmd/kiumctl")
}

// exitCode runs a command and returns its output and exit status.
func exitCode(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", filepath.Base(name), args, err)
	}
	return out.String(), errOut.String(), code
}

// An operator's test install, through the binaries: kiumtapd on the
// emulated reader with a roster file; kiumctl emu taps its cards by
// label, UID and child's name; kiumctl events shows each decided; SIGTERM
// stops kiumtapd cleanly and the store reads back the same.
func TestBinaries(t *testing.T) {
	kiumtapd, kiumctl := binaries(t)
	in := newInstall(t, t.TempDir(), "1ms")

	for _, tc := range []struct {
		args       []string
		out, error string
	}{
		{[]string{"-version"}, "kiumtapd ", ""},
		{[]string{"-h"}, "", "usage: kiumtapd -config FILE"},
	} {
		out, errOut, code := exitCode(t, kiumtapd, tc.args...)
		if code != 0 || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.error) {
			t.Errorf("kiumtapd %q: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
	}

	// A mistake in the configuration exits 78 (EX_CONFIG): the unit does
	// not restart kiumtapd for it.
	bad := filepath.Join(filepath.Dir(in.config), "bad.toml")
	os.WriteFile(bad, []byte("device_id = \"d\"\ncentre_key = \"00112233445566778899aabbccddeeff\"\nlanguage = \"fr\"\n"), 0o600)
	if _, errOut, code := exitCode(t, kiumtapd, "-config", bad); code != 78 || !strings.Contains(errOut, `bad.toml, line 3: language: "fr" is not ko or en`) {
		t.Errorf("kiumtapd with a bad configuration: exit %d, stderr %q; want 78 and the line", code, errOut)
	}

	var out, errOut logbuf.Buffer
	daemon := exec.Command(kiumtapd, "-config", in.config)
	daemon.Stdout, daemon.Stderr = &out, &errOut
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			daemon.Process.Kill()
			<-exited
		}
	})
	wait.For(t, 20*time.Second, "kiumtapd's socket", func() bool {
		resp, err := localapi.Client(in.socket).Get("http://kiumtapd/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	sock := []string{"-socket", in.socket}
	for _, tc := range []struct {
		args []string
		code int
		want []string // in stdout, or stderr when code != 0
	}{
		{[]string{"emu", "tap", "김민준"}, 0, []string{`tapped card DE AD BE EF "minjun" (c1 김민준, active)`, "screen: 김*준 / 입실", "[arrival]", "on the reader: nothing"}},
		{[]string{"emu", "tap", "minjun"}, 0, []string{"screen: 김*준 / 퇴실", "[departure]"}},
		{[]string{"emu", "place", "04:6A:2B:5C:1D:80:41"}, 0, []string{"placed card 04 6A 2B 5C 1D 80 41 (c2 이서연, active)", "screen: 이*연 / 입실", "on the reader: card 04 6A 2B 5C 1D 80 41"}},
		{[]string{"emu", "place", "c2"}, 1, []string{"is on the reader already"}},
		{[]string{"emu", "remove"}, 0, []string{"removed card 04 6A 2B 5C 1D 80 41", "on the reader: nothing"}},
		{[]string{"emu", "tap", "이서연"}, 0, []string{"tapped card 04 6A 2B 5C 1D 80 41 (c2 이서연, active)", "퇴실"}}, // known since placed by UID
		{[]string{"emu", "tap", "0B", "AD", "F0", "0D"}, 0, []string{"(not in the roster)", "screen: 등록되지 않은 / 카드입니다"}},
		{[]string{"emu", "tap", "04A1B"}, 1, []string{"not a card UID"}},
		{[]string{"emu", "tap", "정서준"}, 1, []string{`"정서준" is not a UID`}},
		{[]string{"emu", "remove"}, 1, []string{"no card is on the reader"}},
		{[]string{"emu", "cards"}, 0, []string{"DE AD BE EF", "minjun", "04 6A 2B 5C 1D 80 41", "0B AD F0 0D"}},
	} {
		args := append([]string{tc.args[0], tc.args[1]}, append(sock, tc.args[2:]...)...)
		stdout, stderr, code := exitCode(t, kiumctl, args...)
		got := stdout
		if code != 0 {
			got = stderr
		}
		if code != tc.code {
			t.Errorf("kiumctl %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("kiumctl %q:\n%s\nwant %q", tc.args, got, w)
			}
		}
	}
	if _, stderr, code := exitCode(t, kiumctl, "reader", "probe"); code != 2 || !strings.Contains(stderr, "-reader pi") || !strings.Contains(stderr, "-reader emu") {
		t.Errorf("kiumctl reader probe without -reader: exit %d, %q; want 2 and both choices named", code, stderr)
	}

	want := []string{"check_in c1", "check_out c1", "check_in c2", "check_out c2", "unknown_card "}
	events := func(args ...string) []string {
		t.Helper()
		stdout, stderr, code := exitCode(t, kiumctl, append([]string{"events", "-json"}, args...)...)
		if code != 0 {
			t.Fatalf("kiumctl events %q: exit %d: %s", args, code, stderr)
		}
		var evs []localapi.Event
		if err := json.Unmarshal([]byte(stdout), &evs); err != nil {
			t.Fatalf("kiumctl events: %v\n%s", err, stdout)
		}
		var got []string
		for _, e := range evs {
			got = append(got, string(e.Outcome)+" "+e.Child)
		}
		return got
	}
	if got := events(sock...); strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("kiumctl events over the socket: %q, want %q", got, want)
	}

	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("kiumtapd after SIGTERM: %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("kiumtapd did not stop within 10 s of SIGTERM\n%s", errOut.String())
	}
	if !strings.Contains(errOut.String(), "kiumtapd stopped") {
		t.Errorf("kiumtapd's log lacks its stop:\n%s", errOut.String())
	}
	if _, err := os.Stat(in.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left behind: %v", err)
	}
	if got := events("-store", in.store); strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("kiumctl events from the store file: %q, want %q", got, want)
	}
	if strings.Contains(out.String(), "["+firmware.PatternError+"]") {
		t.Errorf("kiumtapd showed an error screen:\n%s", out.String())
	}
}
