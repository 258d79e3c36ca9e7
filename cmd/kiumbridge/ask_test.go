package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"kiumtap/internal/cli"
	"kiumtap/internal/logbuf"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/wait"
	"kiumtap/portal/api"
	"kiumtap/portal/attendance"
	"kiumtap/portal/store"
	"kiumtap/portal/store/boltstore"
	"kiumtap/protocol"
)

var kst = time.FixedZone("KST", 9*3600)

// portal is a bridge's configuration in a temporary directory: centre
// mangwon1's source, a store holding c01's Monday of November 2026 (in
// 14:05, out 16:05) and four texts, one in each state that stays as it
// is while a bridge runs; the metrics on metrics.sock there (never the
// default port: tests run side by side).
func portal(t *testing.T, broker string) (cfg string, dir string) {
	t.Helper()
	dir = t.TempDir()
	sources := filepath.Join(dir, "sources")
	os.MkdirAll(sources, 0o700)
	src, err := os.ReadFile("../../portal/source/testdata/mangwon1.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sources, "mangwon1.json"), src, 0o600)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "-out", filepath.Join(dir, "portal.key")}, &out, &out); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "kiumbridge.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "broker = %q\nstore = %q\nsources = %q\nsigning_key = %q\nstop_timeout = \"2s\"\nmetrics = %q\n[web]\nlisten = \"127.0.0.1:0\"\n",
		broker, filepath.Join(dir, "b.db"), sources, filepath.Join(dir, "portal.key"), "unix:"+filepath.Join(dir, "metrics.sock")), 0o600)

	st, err := boltstore.Open(filepath.Join(dir, "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := time.Date(2026, 11, 23, 14, 5, 0, 0, kst)
	later := time.Now().Add(time.Hour) // pending, not yet due: no texter takes it
	st.JobsFor = func(e *protocol.Event) []store.Job {
		if e.Seq != 1 {
			return nil
		}
		job := func(i int, state, reason string) store.Job {
			return store.Job{ID: fmt.Sprintf("door/L/1/%d", i), EventID: e.ID, Centre: e.Centre, Child: e.Child, Kind: "arrival", At: e.Time,
				To: "0101234567" + fmt.Sprint(i), Created: e.Time, State: state, Reason: reason, NextAt: later}
		}
		return []store.Job{job(0, store.JobSent, ""), job(1, store.JobFailed, "nhn: invalid recipient"), job(2, store.JobPending, "provider timeout"), job(3, store.JobHeld, "")}
	}
	ev := func(seq uint64, o string, at time.Time) protocol.Event {
		return protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", seq), Centre: "mangwon1", Device: "door", Log: "L", Seq: seq, Time: at, ClockSynced: true, Child: "c01", Outcome: o}
	}
	if err := st.Put([]protocol.Event{ev(1, "check_in", in), ev(2, "check_out", in.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// command runs kiumbridge with args; it returns stdout, stderr and the
// exit status main would give.
func command(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errs bytes.Buffer
	err := run(context.Background(), args, &out, &errs)
	code = cli.ExitCode(err)
	if code != 0 { // as main does
		errs.WriteString("kiumbridge: " + err.Error() + "\n")
	}
	return out.String(), errs.String(), code
}

// checkReport checks an export's CSV: the BOM, c01's session by name, the
// occupancy.
func checkReport(t *testing.T, out string) {
	t.Helper()
	if !strings.HasPrefix(out, attendance.BOM+strings.Join(attendance.SessionHeader, ",")) {
		t.Errorf("the CSV does not begin with a UTF-8 BOM and the header:\n%q", out[:min(len(out), 80)])
	}
	for _, want := range []string{"2026-11-23,c01,김민준,14:05,16:05,120,N,", "mangwon1,2026-11-23,1,", "mangwon1,합계,1,"} {
		if !strings.Contains(out, want) {
			t.Errorf("the export lacks %q:\n%s", want, out)
		}
	}
}

// texts, export and status while a bridge runs (it holds the store: the
// old commands could not open it) are answered by the bridge on its
// control socket, and they say so; once it has stopped, texts and export
// read the store and say so, and status says no bridge answers and exits
// 1, with nothing of what the bridge was: not even from the status file
// an earlier version left saying it was connected.
func TestCommandsThroughTheRunningBridge(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, dir := portal(t, mq.URL())
	ctx, cancel := context.WithCancel(context.Background())
	var runOut, runLog logbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"run", "-config", cfg}, &runOut, &runLog) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("kiumbridge run did not stop")
		}
	}()
	wait.For(t, 20*time.Second, "kiumbridge run to connect", func() bool {
		var st api.Status
		return api.Ask(ctx, filepath.Join(dir, "kiumbridge.sock"), "GET", "/status", nil, &st) == nil && st.Connected
	})
	if _, err := boltstore.OpenReadOnly(filepath.Join(dir, "b.db")); err == nil {
		t.Fatal("the running bridge does not hold its store: this test tests nothing")
	}
	const asked = "kiumbridge: asked the running bridge (control socket "
	const read = "kiumbridge: no bridge answers on "

	check := func(via string) {
		t.Run(via, func(t *testing.T) {
			said := asked
			if via == "store" {
				said = read
			}
			out, errs, code := command(t, "texts", "-config", cfg)
			if code != 0 || !strings.HasPrefix(errs, said) || !strings.Contains(out, "sent 1, failed 1, pending 1, sending 0, held 1") {
				t.Errorf("texts: exit %d\n%s%s", code, out, errs)
			}
			out, errs, code = command(t, "texts", "-state", "failed", "-config", cfg)
			if code != 0 || !strings.HasPrefix(errs, said) || !strings.Contains(out, "door/L/1/1") || !strings.Contains(out, "nhn: invalid recipient") || strings.Contains(out, "door/L/1/0") {
				t.Errorf("texts -state failed: exit %d\n%s%s", code, out, errs)
			}
			out, _, _ = command(t, "texts", "-config", cfg, "-json", "-state", "pending")
			var j store.Job
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &j); err != nil || j.ID != "door/L/1/2" || j.State != store.JobPending {
				t.Errorf("texts -json: %q: %+v, %v", out, j, err)
			}
			out, errs, code = command(t, "export", "-config", cfg, "-centre", "mangwon1", "-month", "2026-11")
			if code != 0 || !strings.HasPrefix(errs, said) {
				t.Errorf("export: exit %d\n%s", code, errs)
			}
			checkReport(t, out)
			xlsx := filepath.Join(t.TempDir(), via+".xlsx")
			if _, errs, code := command(t, "export", "-config", cfg, "-centre", "mangwon1", "-month", "2026-11", "-xlsx", xlsx); code != 0 {
				t.Fatalf("export -xlsx: exit %d\n%s", code, errs)
			}
			f, err := excelize.OpenFile(xlsx)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if v, _ := f.GetCellValue(attendance.SessionSheet, "C2"); v != "김민준" {
				t.Errorf("the workbook's first child is %q", v)
			}
			// A typo'd centre is an error naming the centres, not an
			// empty report.
			out, errs, code = command(t, "export", "-config", cfg, "-centre", "mangwon", "-month", "2026-11")
			if code != 1 || out != "" || !strings.Contains(errs, "kiumbridge: no such centre: mangwon (centres: mangwon1)") {
				t.Errorf("export of an unknown centre: exit %d\n%q\n%s", code, out, errs)
			}
			if via == "bridge" {
				out, errs, code := command(t, "status", "-config", cfg)
				if code != 0 || !strings.Contains(out, "kiumbridge is running") || !strings.Contains(out, "connected: true; centres: mangwon1") {
					t.Errorf("status of a running bridge: exit %d\n%s%s", code, out, errs)
				}
				return
			}
			for _, args := range [][]string{{"status", "-config", cfg}, {"status", "-json", "-config", cfg}} {
				out, errs, code := command(t, args...)
				if code != 1 || out != "" || !strings.Contains(errs, "the bridge is not running: no kiumbridge answers on the control socket") ||
					strings.Contains(errs, "last wrote") || strings.Contains(errs, "mangwon1") {
					t.Errorf("%q of a stopped bridge: exit %d\n%s%s", args, code, out, errs)
				}
			}
		})
	}
	check("bridge")
	cancel() // the bridge stops; now the store answers
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("kiumbridge run: %v\n%s", err, runLog.String())
	}
	done <- nil
	// The bridge's status is asked of it live, never written to a file
	// that outlives it.
	statusFile := filepath.Join(dir, "b.db.status.json")
	if _, err := os.Stat(statusFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stopped bridge left a status file: %v", err)
	}
	// As an earlier version left it: connected, at mangwon1.
	raw, _ := json.Marshal(api.Status{Time: time.Now(), Connected: true, Centres: []string{"mangwon1"}})
	os.WriteFile(statusFile, raw, 0o600)
	check("store")
}

// status is the bridge's answer now: the broker gone, it says so while
// the bridge runs; the bridge stopped, the first status after says no
// bridge answers (no file of its last status speaks for it).
func TestStatusIsLive(t *testing.T) {
	mq := mosqtest.Start(t, mosqtest.Options{})
	cfg, dir := portal(t, mq.URL())
	stop, log := startRun(t, cfg, io.Discard)
	status := func() (string, string, int) { return command(t, "status", "-config", cfg) }
	wait.For(t, 20*time.Second, "kiumbridge status to say the bridge is connected", func() bool {
		out, _, code := status()
		return code == 0 && strings.Contains(out, "connected: true; centres: mangwon1")
	})
	out, errs, code := command(t, "status", "-json", "-config", cfg)
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || !st.Connected || time.Since(st.Time) > 5*time.Second {
		t.Errorf("status -json of the running bridge: exit %d, %+v (%v)\n%s%s", code, st, err, out, errs)
	}
	mq.Stop()
	wait.For(t, 20*time.Second, "kiumbridge status to say the broker is gone", func() bool {
		out, _, code := status()
		return code == 0 && strings.Contains(out, "kiumbridge is running") && strings.Contains(out, "connected: false (it is trying to reach the broker")
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("kiumbridge run: %v\n%s", err, log.String())
	}
	out, errs, code = status()
	want := "kiumbridge: the bridge is not running: no kiumbridge answers on the control socket " + filepath.Join(dir, "kiumbridge.sock")
	if code != 1 || out != "" || !strings.HasPrefix(errs, want) {
		t.Errorf("status of the stopped bridge: exit %d, want 1 and %q\n%s%s", code, want, out, errs)
	}
}

// With no bridge running, status says so and exits 1, printing nothing of
// a bridge: not even from a status file an earlier version left saying it
// was connected.
func TestStatusOfAStoppedBridge(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bridge.json")
	raw, _ := json.Marshal(map[string]any{"broker": "tcp://127.0.0.1:1", "store": filepath.Join(dir, "b.db"), "sources": dir, "signing_key": "k"})
	os.WriteFile(cfg, raw, 0o600)
	for _, tc := range []struct {
		name  string
		setup func()
		want  []string
		dont  []string // in no case, once set up
	}{
		{"no socket", func() {}, []string{"the bridge is not running: no kiumbridge answers on the control socket " + filepath.Join(dir, "kiumbridge.sock"), "start it: kiumbridge run -config " + cfg}, nil},
		{"a stale status file", func() {
			st := api.Status{Time: time.Now().Add(-3 * time.Hour), Connected: true, Centres: []string{"mangwon1"}}
			raw, _ := json.Marshal(st)
			os.WriteFile(filepath.Join(dir, "b.db.status.json"), raw, 0o600)
		}, []string{"not running", "no kiumbridge answers on the control socket"}, []string{"last wrote", "mangwon1", "3h0m0s"}},
		{"a stale socket file", func() {
			os.WriteFile(filepath.Join(dir, "kiumbridge.sock"), nil, 0o600) // nobody listens
		}, []string{"not running", "connect: connection refused"}, []string{"last wrote", "mangwon1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			for _, args := range [][]string{{"status", "-config", cfg}, {"status", "-json", "-config", cfg}} {
				out, errs, code := command(t, args...)
				if code != 1 || out != "" {
					t.Errorf("%q: exit %d, stdout %q", args, code, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(errs, w) {
						t.Errorf("%q: %q lacks %q", args, errs, w)
					}
				}
				for _, d := range tc.dont {
					if strings.Contains(errs, d) {
						t.Errorf("%q: %q says %q", args, errs, d)
					}
				}
			}
		})
	}
}

// Help is no failure; every command shows its flags; -version prints the
// version; mistakes are usage errors (exit 2) wherever the flags stand.
func TestHelpVersionUsage(t *testing.T) {
	cfg, _ := portal(t, "tcp://127.0.0.1:1")
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"}, {"help"},
		{"run", "-h"}, {"keygen", "-help"}, {"roster", "push", "-h"}, {"roster", "-h"}, {"status", "-h"}, {"texts", "-h"}, {"export", "-h"},
		{"help", "export"}, {"help", "roster", "push"}, {"help", "status"},
		{"export", "-config", cfg, "-h"}, {"roster", "push", "list.csv", "-h"},
	} {
		out, errs, code := command(t, args...)
		if code != 0 || strings.Contains(errs, "kiumbridge: ") {
			t.Errorf("%q: exit %d\n%s", args, code, errs)
		}
		if len(args) == 1 || args[0] == "help" && len(args) == 1 {
			for _, sub := range []string{"run", "keygen", "roster push", "status", "texts", "export", "help"} {
				if !strings.Contains(out, "\n  "+sub+" ") {
					t.Errorf("%q does not list %s:\n%s", args, sub, out)
				}
			}
		} else if !strings.Contains(errs, "usage: kiumbridge ") || !strings.Contains(errs, "-") {
			t.Errorf("%q shows no usage:\n%s", args, errs)
		}
	}
	for _, args := range [][]string{{"-version"}, {"--version"}, {"version"}} {
		out, _, code := command(t, args...)
		if code != 0 || !strings.HasPrefix(out, "kiumbridge "+cli.BuildVersion()+" (go") {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name a command"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"roster"}, "roster push"},
		{[]string{"roster", "pull"}, "roster push"},
		{[]string{"run", "-config", cfg, "extra"}, `unexpected ["extra"]`},
		{[]string{"run", "-nosuch"}, "flag provided but not defined: -nosuch"},
		{[]string{"keygen"}, "-out is required"},
		{[]string{"roster", "push", "-config", cfg}, "name a file"},
		{[]string{"roster", "push", "a.json", "b.csv", "-config", cfg}, "several files are JSON sources, each of its own centre: push a CSV list (or with -centre) alone"},
		{[]string{"roster", "push", "a.json", "b.json", "-centre", "m1", "-config", cfg}, "several files are JSON sources"},
		{[]string{"export", "-config", cfg, "-month", "2026-11"}, "-centre and -month are required"},
		{[]string{"export", "-config", cfg, "-centre", "mangwon1", "-month", "11/2026"}, `-month "11/2026": want YYYY-MM`},
		{[]string{"texts", "-config", cfg, "-state", "failled"}, `-state "failled": want one of pending, sending, sent, failed, held`},
		{[]string{"status"}, "-config FILE is required"},
		{[]string{"texts", "-config"}, "flag needs an argument: -config"},
	} {
		_, errs, code := command(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errs)
		}
	}
}

// The report's first session and the centres known come from the store
// alone when the source is gone: a centre closed keeps its history.
func TestExportOfACentreWithoutSource(t *testing.T) {
	cfg, dir := portal(t, "tcp://127.0.0.1:1")
	os.Remove(filepath.Join(dir, "sources", "mangwon1.json"))
	out, errs, code := command(t, "export", "-config", cfg, "-centre", "mangwon1", "-month", "2026-11")
	if code != 0 || !strings.Contains(out, "2026-11-23,c01,,14:05,16:05,120") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := command(t, "export", "-config", cfg, "-centre", "x", "-month", "2026-11"); code != 1 || !strings.Contains(errs, "no such centre: x (centres: mangwon1)") {
		t.Errorf("exit %d: %s", code, errs)
	}
}
