//go:build linux

package bridge_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"kiumtap/firmware"
	"kiumtap/internal/fleet"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/pgtest"
	"kiumtap/portal/bridge"
	"kiumtap/portal/devices"
	"kiumtap/portal/sms"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/portal/store/pgstore"
	"kiumtap/protocol"
)

// BenchmarkFleet is issue 14's morning peak: 10,000 terminals of 2,500
// centres (4 each, 25 children a centre, each child one guardian who
// wants texts, so each tap makes exactly one text), light clients of
// internal/fleet speaking the real protocol, half on each of two
// Mosquitto brokers first (each terminal fails over along both),
// connected at a controlled rate (400/s, 32 at once); two bridges, each
// on both brokers, storing into one PostgreSQL (a pool each, as on two
// hosts); then 222 taps/s spread at random over the terminals for
// 60 s, arrivals first, departures once a centre's children are in.
//
// Metrics (b.N peaks on one set-up; -benchtime 1x is one peak):
//
//   - connected: the fewest terminals connected at any second of the
//     peak;
//   - tap-to-text-p99-ms: from the moment a terminal hands the tap's
//     event to MQTT to the moment a bridge hands its text to the SMS
//     provider (an in-process fake that records the time per event);
//   - lost: taps made minus taps texted once the fleet is drained
//     (goal 0).
//
// The fleet runs in a process of its own (this test binary again,
// fleetChild), as terminals are not in the bridges' process: sharing one,
// its 100,000 goroutines (paho's, ten a connection) and 300 MB of heap
// gave the bridges GC assists and a p99 of 150 to 700 ms. The bridges
// and the fake provider are in this one.
//
// A run takes about two minutes: set-up 25 to 35 s, connecting 27 to
// 35 s, the peak, stopping 2 s. Its log says where the time and memory
// went, splits the latency at the bridge's store transaction and the
// texter's claim, and says how much CPU each process took over the peak:
// on the 2-core build machine the fleet, the brokers and the bridges
// share it, and other work on the machine shows at once in the p99.
//
// KIUMTAP_FLEET_PEAK (a Go duration) shortens or lengthens the peak, for
// a quick look; KIUMTAP_FLEET_TERMINALS (a multiple of 4) changes the
// fleet's size, and the sub-benchmark's name with it: the number
// is BenchmarkFleet/terminals=10000 with the default 60 s.
//
// The process raises its file-descriptor limit as a deployment would
// (RLIMIT_NOFILE to its hard limit, 65536 or more when it may), and the
// brokers and the fleet, started after, inherit it. What each broker
// needs beyond mosqtest's defaults is fleetBrokerConf.
func BenchmarkFleet(b *testing.B) {
	shape := fleetShape{Terminals: 10_000, PerCentre: 4, Children: 25, Rate: 222, Peak: 60 * time.Second,
		ConnectRate: 400, ConnectParallel: 32}
	if s := os.Getenv("KIUMTAP_FLEET_PEAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("KIUMTAP_FLEET_PEAK=%q: want a duration such as 10s", s)
		}
		shape.Peak = d
	}
	if s := os.Getenv("KIUMTAP_FLEET_TERMINALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 4 || n%4 != 0 {
			b.Fatalf("KIUMTAP_FLEET_TERMINALS=%q: want a multiple of 4", s)
		}
		shape.Terminals = n
	}
	b.Run(fmt.Sprintf("terminals=%d", shape.Terminals), func(b *testing.B) { benchFleet(b, shape) })
}

// fleetShape is the fleet and its peak.
type fleetShape struct {
	Terminals, PerCentre, Children int
	Rate                           float64 // taps a second, over the whole fleet
	Peak                           time.Duration
	ConnectRate                    float64 // first connections a second
	ConnectParallel                int
}

// fleetBrokerConf is what each broker of the fleet needs beyond
// mosqtest's defaults (docs/operations.md):
//
//   - a file-descriptor limit above its connections (the terminals it
//     serves, 5,000 here, up to all 10,000 when the other broker is down,
//     plus the bridges): LimitNOFILE=65536 in its systemd unit;
//     Mosquitto has no setting of its own for it;
//   - max_connections -1: no cap of its own (the default, said knowingly);
//   - max_queued_messages 20000, as deploy/mosquitto: a bridge's shared
//     subscription takes the events of every terminal on the broker, and
//     every terminal's status (10,000 every 30 s);
//   - max_inflight_messages 100, as deploy/mosquitto: the bridge's QoS 1
//     deliveries in flight, so that one round trip does not pace the
//     fleet's events;
//   - per-device passwords (or certificates) and the ACL of every device
//     (kiumbridge device acl). Mosquitto 2.0.11 reads 10,000 passwords
//     in 60 ms but 10,000 ACL blocks in 2.4 s (5,000 in 0.6 s: it grows
//     with the square), before it listens: what a restart, or a reload
//     after adding a device, costs a fleet's broker (the benchmark logs
//     the brokers' start).
//
// The terminals connect at ConnectRate with ConnectParallel at once:
// Mosquitto's listen backlog is 100, and a fleet coming back after an
// outage spreads itself (protocol: a random second after the probe).
const fleetBrokerConf = "max_connections -1\nmax_queued_messages 20000\nmax_inflight_messages 100\n"

// The fleet's names: centre c, its terminal d, and the terminal's
// password.
func fleetCentre(c int) string                { return fmt.Sprintf("c%05d", c) }
func fleetDevice(centre string, d int) string { return fmt.Sprintf("%s-t%d", centre, d) }
func fleetPassword(device string) string      { return "pw-" + device }

func benchFleet(b *testing.B, shape fleetShape) {
	began := time.Now()
	fds := raiseFileLimit(b, shape.Terminals+2048)
	centres := shape.Terminals / shape.PerCentre
	dir := b.TempDir()
	srcDir := filepath.Join(dir, "sources")
	if err := os.Mkdir(srcDir, 0o700); err != nil {
		b.Fatal(err)
	}

	// Centres, their rosters and guardians; terminals, their passwords
	// and the brokers' ACL.
	today := firmware.DateOf(time.Now())
	var devs []devices.Device
	users := map[string]string{"portal": portalPass}
	for c := range centres {
		id := fleetCentre(c)
		r := fleet.Roster(id, shape.Children, centreKey, today)
		src := &source.Source{Roster: r, Guardians: map[string][]source.Guardian{}}
		for i, ch := range r.Children {
			src.Guardians[ch.ID] = []source.Guardian{{Name: "보호자", Phone: fmt.Sprintf("010%08d", c*shape.Children+i), Texts: true}}
		}
		raw, _ := json.Marshal(src)
		if err := os.WriteFile(filepath.Join(srcDir, id+".json"), raw, 0o600); err != nil {
			b.Fatal(err)
		}
		for d := range shape.PerCentre {
			dev := devices.Device{Centre: id, ID: fleetDevice(id, d)}
			devs = append(devs, dev)
			users[dev.ID] = fleetPassword(dev.ID)
		}
	}
	acl, err := devices.ACL("portal", devs)
	if err != nil {
		b.Fatal(err)
	}
	extra := mosqtest.BulkUsers(b, users) + fleetBrokerConf
	var mqs []*mosqtest.Broker
	var urls []string
	started := time.Now()
	for range 2 {
		mq := mosqtest.Start(b, mosqtest.Options{ACL: acl, Extra: extra})
		mqs = append(mqs, mq)
		urls = append(urls, mq.URL())
	}
	brokersUp := time.Since(started)

	texts := &textClock{}
	bs, stopBridges := fleetBridges(b, urls, dir, srcDir, texts)
	waitRosters(b, urls, centres, 5*time.Minute)
	b.Logf("set-up: %v (%d sources; 2 brokers with %d users and their ACL, up in %v; %d bridges, every roster retained on both brokers); file-descriptor limit %d",
		time.Since(began).Round(time.Millisecond), centres, len(users), brokersUp.Round(time.Millisecond), len(bs), fds)

	// The fleet, in its own process.
	began = time.Now()
	fc := startFleet(b, fleetPlan{Shape: shape, Brokers: urls, Taps: filepath.Join(dir, "taps")})
	connected := fc.read("connected")
	b.Logf("fleet: %s, in %v; %s", connected, time.Since(began).Round(time.Millisecond), memory(fc, mqs))

	// The peaks.
	var taps []tapAt
	minConnected := shape.Terminals
	var peakTime time.Duration
	b.ResetTimer()
	pids := []string{"self", strconv.Itoa(fc.cmd.Process.Pid)}
	for _, mq := range mqs {
		pids = append(pids, brokerPID(mq))
	}
	for range b.N {
		began := time.Now()
		cpu0 := cpuTimes(pids)
		fc.send("peak")
		var n, minC, maxG int
		fmt.Sscan(fc.read("peaked"), &n, &minC, &maxG)
		took := time.Since(began)
		cpu := cpuTimes(pids)
		for i := range cpu {
			cpu[i] = (cpu[i] - cpu0[i]) / took.Seconds()
		}
		peakTime += took
		minConnected = min(minConnected, minC)
		got := readTaps(b, filepath.Join(dir, "taps"))
		if len(got) != n {
			b.Fatalf("%d taps in the file, the fleet made %d", len(got), n)
		}
		taps = append(taps, got...)
		b.Logf("peak: %d taps in %v (%.1f/s); fewest connected %d; fleet's goroutines %d; %s", n, took.Round(time.Millisecond),
			float64(n)/took.Seconds(), minC, maxG, memory(fc, mqs))
		b.Logf("CPU over the peak, in cores of %d: bridges' process %.2f, fleet's %.2f, brokers %.2f and %.2f, other processes %.2f, interrupts %.2f, stolen %.2f",
			runtime.NumCPU(), cpu[3], cpu[4], cpu[5], cpu[6], max(0, cpu[0]-cpu[3]-cpu[4]-cpu[5]-cpu[6]), cpu[1], cpu[2])
	}
	b.StopTimer()

	// Drained: every tap texted, or two minutes.
	began = time.Now()
	pending := -1
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if texts.count() < len(taps) {
			continue
		}
		fc.send("pending")
		if pending, _ = strconv.Atoi(fc.read("pending")); pending == 0 {
			break
		}
	}
	drained := time.Since(began)

	var lat, toJob, toClaim, toSend []float64
	lost := 0
	worst := map[int]float64{} // second of the peak → its slowest tap
	msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, tp := range taps {
		at, ok := texts.at(tp.key)
		if !ok {
			lost++
			continue
		}
		ms := msOf(at.Sub(tp.at))
		lat = append(lat, ms)
		if created, claimed := texts.job(tp.key); !created.IsZero() && !claimed.IsZero() {
			toJob, toClaim, toSend = append(toJob, msOf(created.Sub(tp.at))), append(toClaim, msOf(claimed.Sub(created))), append(toSend, msOf(at.Sub(claimed)))
		}
		sec := int(tp.at.Sub(taps[0].at).Seconds())
		worst[sec] = max(worst[sec], ms)
	}
	slices.Sort(lat)
	secs := slices.Collect(maps.Keys(worst))
	slices.SortFunc(secs, func(a, b int) int { return cmp.Compare(worst[b], worst[a]) })
	var slow []string
	for _, s := range secs[:min(len(secs), 8)] {
		slow = append(slow, fmt.Sprintf("+%ds %.0f ms", s, worst[s]))
	}
	if len(lat) > 0 {
		b.Logf("tap to text: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; slowest seconds (by their slowest tap): %s; drained in %v (%d events left in outboxes)",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1], strings.Join(slow, ", "), drained.Round(time.Millisecond), pending)
		for _, s := range [][]float64{toJob, toClaim, toSend} {
			slices.Sort(s)
		}
		b.Logf("its parts, p50/p99 ms: tap to the bridge's store transaction %.1f/%.1f; to a texter's claim (commit, wake-up) %.1f/%.1f; to the provider %.1f/%.1f",
			pct(toJob, 50), pct(toJob, 99), pct(toClaim, 50), pct(toClaim, 99), pct(toSend, 50), pct(toSend, 99))
	}
	var stored, dups, outOfOrder int
	for _, br := range bs {
		s := br.Stats()
		stored += s.Ingest.Stored
		dups += s.Ingest.Duplicates
		outOfOrder += s.Ingest.OutOfOrder
	}
	b.Logf("bridges: %d events stored, %d duplicates, %d out of order; %d texts, %d sent twice", stored, dups, outOfOrder, texts.count(), texts.twice())
	b.ReportMetric(float64(minConnected), "connected")
	b.ReportMetric(pct(lat, 99), "tap-to-text-p99-ms")
	b.ReportMetric(float64(lost), "lost")

	began = time.Now()
	fc.send("stop")
	stats := fc.read("stopped")
	fleetStop := time.Since(began)
	began = time.Now()
	stopBridges()
	b.Logf("fleet stopped in %v, bridges in %v; the fleet's counts: %s", fleetStop.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), stats)
}

// tapAt is a tap made: its event's key (device/log/seq, as the text's
// idempotency key starts) and when the terminal handed it to MQTT.
type tapAt struct {
	key string
	at  time.Time
}

func readTaps(b *testing.B, path string) []tapAt {
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var out []tapAt
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		key, ns, ok := strings.Cut(l, " ")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, tapAt{key, time.Unix(0, n)})
	}
	return out
}

// fleetBridges starts the portal as issue 14 deploys it: two bridges,
// each connected to every broker (Options.Brokers), storing into one
// PostgreSQL (Options.DB, each bridge its own pool, as on two hosts),
// texting through texts; it returns them and how to stop them.
func fleetBridges(b *testing.B, urls []string, dir, srcDir string, texts *textClock) ([]*bridge.Bridge, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var out []*bridge.Bridge
	var dbs []*pgstore.Store
	dsn := pgtest.Start(b).NewDatabase(b)
	for i := range urls {
		db, err := pgstore.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		dbs = append(dbs, db)
		o := bridge.Options{Password: portalPass, ClientID: fmt.Sprintf("fleet%d", i), Key: portalKey, SourceDir: srcDir,
			Provider: texts, From: "0212345678", Sent: texts.sent, Brokers: urls, DB: db}
		br, err := bridge.New(o)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, br)
		wg.Go(func() { br.Run(ctx) })
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, db := range dbs {
				db.Close()
			}
		})
	}
	b.Cleanup(stop)
	return out, stop
}

// waitRosters waits until every centre's roster snapshot is retained on
// every broker: the bridges have published them all, and a terminal gets
// its centre's on subscribing.
func waitRosters(b *testing.B, urls []string, centres int, within time.Duration) {
	deadline := time.Now().Add(within)
	for i, url := range urls {
		var mu sync.Mutex
		seen := map[string]bool{}
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("rosters%d", i)).
			SetUsername("portal").SetPassword(portalPass).SetCleanSession(true))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("watching rosters: %v", tok.Error())
		}
		c.Subscribe(protocol.Prefix+"/c/+/roster", 1, func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			seen[m.Topic()] = true
			mu.Unlock()
		}).Wait()
		for {
			mu.Lock()
			n := len(seen)
			mu.Unlock()
			if n >= centres {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d rosters retained on %s", n, centres, url)
			}
			time.Sleep(200 * time.Millisecond)
		}
		c.Disconnect(100)
	}
}

// textClock is the fake SMS provider: it takes every text at once and
// records when each event's first text came, by the text's idempotency
// key (device/log/seq/guardian). Told of the texts sent (Options.Sent),
// it keeps when their jobs were made (the event stored, before the
// commit) and claimed by a texter.
type textClock struct {
	mu    sync.Mutex
	first map[string]time.Time // device/log/seq → first text
	jobs  map[string][2]time.Time
	again int
}

func (p *textClock) sent(j store.Job, _ sms.Text) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jobs == nil {
		p.jobs = map[string][2]time.Time{}
	}
	p.jobs[eventOf(j.ID)] = [2]time.Time{j.Created, j.ClaimedAt}
}

func (p *textClock) job(event string) (created, claimed time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := p.jobs[event]
	return j[0], j[1]
}

// eventOf is the event of a text's key: device/log/seq.
func eventOf(key string) string { return key[:max(strings.LastIndexByte(key, '/'), 0)] }

func (*textClock) Name() string { return "clock" }

func (p *textClock) Send(_ context.Context, m sms.Message) (sms.Receipt, error) {
	now := time.Now()
	event := eventOf(m.Key)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == nil {
		p.first = map[string]time.Time{}
	}
	if _, ok := p.first[event]; ok {
		p.again++
	} else {
		p.first[event] = now
	}
	return sms.Receipt{ID: m.Key}, nil
}

func (p *textClock) at(event string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.first[event]
	return at, ok
}

func (p *textClock) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.first)
}

func (p *textClock) twice() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.again
}

// pct is the p-th percentile of sorted values, 0 when there are none.
func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// raiseFileLimit sets RLIMIT_NOFILE to its hard limit, raised to 65536
// when the process may, as a deployment's LimitNOFILE does. Go raises its
// own soft limit at start but gives children the original one; setting
// it here makes the brokers and the fleet started after inherit it. Fewer
// than need descriptors skip the benchmark. It returns the limit.
func raiseFileLimit(b *testing.B, need int) uint64 {
	lim, err := setFileLimit()
	if err != nil {
		b.Fatalf("raising the file-descriptor limit: %v", err)
	}
	if lim < uint64(need) {
		b.Skipf("the file-descriptor limit is %d, the fleet needs %d: raise the hard limit (ulimit -Hn, LimitNOFILE)", lim, need)
	}
	return lim
}

func setFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	want := syscall.Rlimit{Cur: max(lim.Max, 65536), Max: max(lim.Max, 65536)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil { // not privileged: up to the hard limit
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return 0, err
		}
	}
	return want.Cur, nil
}

// memory describes the resident memory (now, and peak) of this process
// (the bridges), the fleet's and each broker's.
func memory(fc *fleetProc, mqs []*mosqtest.Broker) string {
	rss, hwm := procMemory("self")
	s := fmt.Sprintf("RSS: bridges' process %d MiB (peak %d)", rss>>10, hwm>>10)
	rss, hwm = procMemory(strconv.Itoa(fc.cmd.Process.Pid))
	s += fmt.Sprintf(", fleet's %d MiB (peak %d)", rss>>10, hwm>>10)
	for i, mq := range mqs {
		if pid := brokerPID(mq); pid != "" {
			rss, hwm := procMemory(pid)
			s += fmt.Sprintf(", broker %d %d MiB (peak %d)", i, rss>>10, hwm>>10)
		}
	}
	return s
}

// cpuTimes returns the CPU seconds the machine's processes have used
// (user, nice, system), its interrupts (irq, softirq: loopback traffic is
// mostly these) and the hypervisor has stolen, then each process's (user
// and system), from /proc.
func cpuTimes(pids []string) []float64 {
	const hz = 100 // USER_HZ, the unit of /proc's times on Linux
	out := make([]float64, 3+len(pids))
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(raw), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
		for i, to := range map[int]int{1: 0, 2: 0, 3: 0, 6: 1, 7: 1, 8: 2} {
			if i < len(f) {
				n, _ := strconv.ParseFloat(f[i], 64)
				out[to] += n / hz
			}
		}
	}
	for k, pid := range pids {
		raw, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// After the command's closing parenthesis: state is field 3, utime 14, stime 15.
		_, rest, _ := strings.Cut(string(raw), ") ")
		f := strings.Fields(rest)
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			out[3+k] = (u + s) / hz
		}
	}
	return out
}

// procMemory reads VmRSS and VmHWM of a process, in KiB.
func procMemory(pid string) (rss, hwm int) {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm
}

// brokerPID finds the mosquitto running the broker's configuration.
func brokerPID(mq *mosqtest.Broker) string {
	conf := filepath.Join(mq.Dir(), "mosquitto.conf")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if args := strings.Split(string(raw), "\x00"); slices.Contains(args, conf) {
			return e.Name()
		}
	}
	return ""
}

// The fleet's process: this test binary, run with fleetChildEnv set to
// its plan (JSON). It connects the fleet, says so, and then answers the
// parent's lines on stdin, one line each on stdout:
//
//	(at start)  connected N FAILED NOROSTER GOROUTINES
//	peak     →  peaked TAPS FEWEST-CONNECTED MOST-GOROUTINES (the taps written to Taps: "device/log/seq unix-ns" a line)
//	pending  →  pending EVENTS-IN-OUTBOXES
//	stop     →  stopped STATS (and it exits)
const fleetChildEnv = "KIUMTAP_FLEET_CHILD"

type fleetPlan struct {
	Shape   fleetShape
	Brokers []string
	Taps    string
}

// The test binary runs as the fleet's process before its tests could.
func init() {
	if plan := os.Getenv(fleetChildEnv); plan != "" {
		os.Exit(fleetChild(plan, os.Stdin, os.Stdout))
	}
}

// fleetProc is the parent's end of the fleet's process.
type fleetProc struct {
	b   *testing.B
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Reader
}

func startFleet(b *testing.B, plan fleetPlan) *fleetProc {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(plan)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), fleetChildEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &fleetProc{b: b, cmd: cmd, in: in, out: bufio.NewReader(out)}
}

func (p *fleetProc) send(line string) {
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		p.b.Fatalf("fleet: %v", err)
	}
}

// read returns the rest of the fleet's next line, which must begin with
// word.
func (p *fleetProc) read(word string) string {
	l, err := p.out.ReadString('\n')
	if err != nil {
		p.b.Fatalf("fleet: waiting for %q: %v", word, err)
	}
	got, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
	if got != word {
		p.b.Fatalf("fleet: %q, want %s", l, word)
	}
	return rest
}

// fleetChild is the fleet's process; it returns its exit status.
func fleetChild(raw string, in io.Reader, out io.Writer) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fleet:", err); return 3 }
	var plan fleetPlan
	if err := json.Unmarshal([]byte(raw), &plan); err != nil {
		return fail(err)
	}
	if _, err := setFileLimit(); err != nil {
		return fail(err)
	}
	shape := plan.Shape
	f, err := fleet.New(fleet.Settings{PortalKey: portalKey.Public().(ed25519.PublicKey)})
	if err != nil {
		return fail(err)
	}
	// A centre's terminals on one broker, the centres alternating; the
	// rosters only for their children's IDs and card keys.
	today := firmware.DateOf(time.Now())
	var terms []*fleet.Terminal
	var rosters []*firmware.Roster
	for c := range shape.Terminals / shape.PerCentre {
		id := fleetCentre(c)
		rosters = append(rosters, fleet.Roster(id, shape.Children, centreKey, today))
		home := c % len(plan.Brokers)
		// Half the centres list one broker first, half the other; every
		// terminal fails over along both.
		brokers := []string{plan.Brokers[home], plan.Brokers[1-home]}
		for d := range shape.PerCentre {
			dev := fleetDevice(id, d)
			t, err := f.Add(id, dev, fleetPassword(dev), brokers)
			if err != nil {
				return fail(err)
			}
			terms = append(terms, t)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var timers sync.WaitGroup
	timers.Go(func() { f.Run(ctx) })
	if err := f.ConnectAll(ctx, shape.ConnectRate, shape.ConnectParallel); err != nil {
		return fail(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); f.Connected() < shape.Terminals && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	noRoster := 0
	for _, t := range terms {
		if t.RosterRevision() == 0 {
			noRoster++
		}
	}
	fmt.Fprintf(out, "connected %d of %d (%d attempts failed, %d without a roster yet; %d goroutines)\n",
		f.Connected(), shape.Terminals, f.Stats().ConnectFailures, noRoster, runtime.NumGoroutine())
	counts := make([]int, len(rosters))
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		switch lines.Text() {
		case "peak":
			taps, minC, maxG := runPeak(f, terms, rosters, counts, shape)
			var buf strings.Builder
			for _, t := range taps {
				fmt.Fprintf(&buf, "%s %d\n", t.key, t.at.UnixNano())
			}
			if err := os.WriteFile(plan.Taps, []byte(buf.String()), 0o600); err != nil {
				return fail(err)
			}
			fmt.Fprintf(out, "peaked %d %d %d\n", len(taps), minC, maxG)
		case "pending":
			fmt.Fprintf(out, "pending %d\n", f.Pending())
		case "stop":
			cancel()
			timers.Wait()
			f.Stop(64)
			fmt.Fprintf(out, "stopped %+v\n", f.Stats())
			return 0
		}
	}
	return 0 // the parent went
}

// runPeak taps at shape.Rate, at random terminals, for shape.Peak, and
// returns the taps, the fewest terminals connected at any second and the
// most goroutines seen. A centre's taps go through its children in turn
// (counts: its taps so far): each arrives, then, once all are in, each
// leaves.
func runPeak(f *fleet.Fleet, terms []*fleet.Terminal, rosters []*firmware.Roster, counts []int, shape fleetShape) ([]tapAt, int, int) {
	rng := rand.New(rand.NewPCG(14, uint64(time.Now().UnixNano())))
	var taps []tapAt
	minConnected, maxGoroutines := f.Connected(), runtime.NumGoroutine()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	lastSample := start
	for now := start; now.Sub(start) < shape.Peak; now = <-tick.C {
		for due := int(now.Sub(start).Seconds() * shape.Rate); len(taps) < due; {
			i := rng.IntN(len(terms))
			t, c := terms[i], i/shape.PerCentre
			k := counts[c]
			counts[c]++
			r := rosters[c]
			child := k % len(r.Children)
			outcome, reason := firmware.CheckIn, firmware.ReasonArrival
			if (k/len(r.Children))%2 == 1 {
				outcome, reason = firmware.CheckOut, firmware.ReasonDeparture
			}
			seq, at := t.Tap(r.Children[child].ID, r.Cards[child].Key, outcome, reason)
			taps = append(taps, tapAt{fmt.Sprintf("%s/%s/%d", t.Device(), t.Log(), seq), at})
		}
		if now.Sub(lastSample) >= time.Second {
			lastSample = now
			minConnected = min(minConnected, f.Connected())
			maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		}
	}
	return taps, min(minConnected, f.Connected()), maxGoroutines
}
