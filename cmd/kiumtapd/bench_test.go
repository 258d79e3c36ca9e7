package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiumtap/daemon/localapi"
	"kiumtap/daemon/store"
	"kiumtap/firmware"
	"kiumtap/internal/service/servicetest"
	"kiumtap/internal/testbin"
	"kiumtap/internal/wait"
)

// benchUID is child i's card (i from 0).
func benchUID(i int) []byte { return []byte{0x10, byte(i >> 8), byte(i), 0x01} }

// bigInstall writes to dir a terminal as a busy centre leaves it after
// days offline: a store with a roster of children (each with a card and a
// booking in use every day, all day) and events stored by taps, and its
// configuration (the emulated reader, no screen, metrics off unless
// metrics is given).
func bigInstall(b *testing.B, dir string, children, events int, metrics string) install {
	b.Helper()
	in := install{config: filepath.Join(dir, "kiumtapd.toml"), store: filepath.Join(dir, "kiumtap.db"), socket: filepath.Join(dir, "kiumtapd.sock"), metrics: metrics}
	now := time.Now()
	today := firmware.DateOf(now)
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	day := firmware.Window{Start: 0, End: 24 * 60}
	from, to := today.AddDays(-60), today.AddDays(60)
	r := &firmware.Roster{Revision: 7, Issued: now, Centre: firmware.Centre{ID: "mangwon1", Name: "우리동네키움센터 망원1동",
		Terms: []firmware.Term{{Name: "2학기", From: from, To: to, Hours: day, Weekdays: all}}}}
	for i := range children {
		id := fmt.Sprintf("c%04d", i)
		r.Children = append(r.Children, firmware.Child{ID: id, Name: fmt.Sprintf("어린이%d", i)})
		r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(testCentreKey, benchUID(i)), ChildID: id, State: firmware.CardActive})
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse, From: from, To: to, Weekdays: all, Window: day})
	}
	st, err := store.Open(store.Options{Path: in.store, DeviceID: "mangwon1-door", NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.ApplyRoster(r, now); err != nil {
		b.Fatal(err)
	}
	// The taps of the last days, a child every 3 s: arrivals and departures.
	at := now.Add(-time.Duration(events) * 3 * time.Second)
	for i := range events {
		at = at.Add(3 * time.Second)
		uid := benchUID(i % children)
		if _, _, err := st.Tap(store.TapRequest{At: store.Stamp{Time: at, Synced: true}, CardKey: firmware.CardKey(testCentreKey, uid),
			Settings: firmware.Settings{DuplicateWindow: time.Millisecond}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if metrics == "" {
		metrics = "off"
	} else {
		metrics = "unix:" + metrics
	}
	cfg := fmt.Sprintf("device_id = %q\ncentre_key = %q\nstore = %q\nsocket = %q\nmetrics = %q\n\n[decisions]\nduplicate_window = \"1ms\"\n\n[display]\nkind = \"none\"\n\n[reader]\nkind = \"emu\"\npoll = \"1ms\"\n",
		"mangwon1-door", hex.EncodeToString(testCentreKey), in.store, in.socket, metrics)
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return in
}

// daemonProc is kiumtapd started as systemd starts it.
type daemonProc struct {
	cmd    *exec.Cmd
	exited chan error
}

func startDaemon(b *testing.B, bin string, in install, env []string) *daemonProc {
	b.Helper()
	cmd := exec.Command(bin, "-config", in.config)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	return p
}

func (p *daemonProc) stop(b *testing.B) {
	b.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			b.Fatalf("kiumtapd exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		b.Fatal("kiumtapd did not stop on SIGTERM")
	}
}

// BenchmarkStart measures kiumtapd (the release build) from process start
// to READY=1 on systemd's notify socket, on a store holding a 500-child
// roster and 100,000 events waiting for the portal: start-ms, the mean,
// and max-start-ms. Goal: start-ms ≤ 300.
func BenchmarkStart(b *testing.B) {
	bin := testbin.Release(b, "kiumtap/cmd/kiumtapd")
	in := bigInstall(b, b.TempDir(), 500, 100_000, "")
	m := servicetest.New(b)
	var total, worst time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p := startDaemon(b, bin, in, m.Env(0))
		if _, ok := m.Wait(start, start.Add(30*time.Second), servicetest.Has("READY", "1")); !ok {
			b.Fatal("no READY=1 within 30 s")
		}
		took := time.Since(start)
		b.StopTimer()
		total += took
		worst = max(worst, took)
		p.stop(b)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "start-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-start-ms")
}

// rss reads a process's resident, peak resident and anonymous resident
// memory (its heap and stacks, not the store's file pages), in MiB.
func rss(b *testing.B, pid int) (now, peak, anon float64) {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			now = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		case "RssAnon:":
			anon = kb / 1024
		}
	}
	return now, peak, anon
}

// BenchmarkFootprint measures kiumtapd's memory and size:
//
//   - rss-mb: resident memory (VmRSS, MiB) of the release build after
//     100,000 taps, offline, with a 500-child roster: the store it opens
//     holds 100,000 − taps-live taps recorded by the store's own code, and
//     the process itself reads, decides and stores taps-live more through
//     the emulated reader (KIUMTAP_LIVE_TAPS, default 1,000), then is
//     scraped and asked its status as an operator would. peak-rss-mb is
//     the high-water mark; anon-mb the part that is its own memory rather
//     than the binary's and the store's file pages. Goal ≤ 25.
//   - armv6-mb: the stripped armhf (GOARM=6) kiumtapd, in MiB. Goal ≤ 9.
func BenchmarkFootprint(b *testing.B) {
	live := 1000
	if v, err := strconv.Atoi(os.Getenv("KIUMTAP_LIVE_TAPS")); err == nil {
		live = v
	}
	bin := testbin.Release(b, "kiumtap/cmd/kiumtapd")
	arm := testbin.Release(b, "kiumtap/cmd/kiumtapd", "GOARCH=arm", "GOARM=6")
	fi, err := os.Stat(arm)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	in := bigInstall(b, dir, 500, 100_000-live, filepath.Join(dir, "metrics.sock"))
	var rssSum, peakMax, anonSum float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		p := startDaemon(b, bin, in, nil)
		wait.For(b, 30*time.Second, "kiumtapd's socket", func() bool { var s struct{}; return getJSON(in.socket, "/status", &s) == nil })
		b.StartTimer()
		// Eight children at the reader at once (the driver resolves up to
		// eight cards a poll): a tap waits for its screen and for the
		// reader to see the card go, some 200 ms, so one at a time would
		// take minutes.
		ctx := context.Background()
		const workers = 8
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for i := w; i < live; i += workers {
					if err := emuTap(ctx, in.socket, hex.EncodeToString(benchUID(i%500))); err != nil {
						errs <- fmt.Errorf("tap %d: %w", i, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		scrapeB(b, in.metrics)
		var st localapi.Status
		if err := getJSON(in.socket, "/status", &st); err != nil || st.OutboxDepth < 100_000 {
			b.Fatalf("status: %v, outbox %d, want 100,000 taps stored (and the check-outs of the days they closed)", err, st.OutboxDepth)
		}
		b.StopTimer()
		now, peak, anon := rss(b, p.cmd.Process.Pid)
		rssSum += now
		anonSum += anon
		peakMax = max(peakMax, peak)
		p.stop(b)
		b.StartTimer()
	}
	b.ReportMetric(rssSum/float64(b.N), "rss-mb")
	b.ReportMetric(peakMax, "peak-rss-mb")
	b.ReportMetric(anonSum/float64(b.N), "anon-mb")
	b.ReportMetric(float64(live), "taps-live")
	b.ReportMetric(float64(fi.Size())/(1<<20), "armv6-mb")
}

// scrapeB reads /metrics once, as Prometheus does.
func scrapeB(b *testing.B, socket string) {
	b.Helper()
	if _, ok := scrape(b, socket)["kiumtap_outbox_events"]; !ok {
		b.Fatal("no kiumtap_outbox_events in the scrape")
	}
}
