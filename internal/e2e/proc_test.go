package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/mosqtest"
	"kiumtap/internal/testbin"
	"kiumtap/portal/sms/smstest"
	"kiumtap/portal/source"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// kiumbridgeBinary builds cmd/kiumbridge once, as an operator runs it.
func kiumbridgeBinary(t testing.TB) string { return testbin.Path(t, "kiumtap/cmd/kiumbridge") }

const hookSecret = "e2e-webhook-secret"

// bridgeProc is kiumbridge run as a process, with a configuration file as
// an operator writes it, texting through the fake webhook provider.
type bridgeProc struct {
	t      testing.TB
	bin    string
	config string
	store  string
	log    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newBridgeProc(t testing.TB, mq *mosqtest.Broker, hook *smstest.Webhook, srcDir string) *bridgeProc {
	return newBridgeProcWith(t, hook, srcDir, func(dir string, cfg map[string]any) {
		cfg["broker"], cfg["store"] = mq.URL(), filepath.Join(dir, "bridge.db")
	})
}

// newBridgeProcWith is newBridgeProc with the configuration's broker and
// store keys (or others) set by set, given the process's directory.
func newBridgeProcWith(t testing.TB, hook *smstest.Webhook, srcDir string, set func(dir string, cfg map[string]any)) *bridgeProc {
	dir := t.TempDir()
	p := &bridgeProc{t: t, bin: kiumbridgeBinary(t), config: filepath.Join(dir, "bridge.json"), store: filepath.Join(dir, "bridge.db"), log: filepath.Join(dir, "bridge.log")}
	keyFile := filepath.Join(dir, "portal.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(portalKey.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"username": "portal", "password": portalPass, "signing_key": keyFile, "sources": srcDir, "metrics": "off", "web": map[string]string{"listen": "127.0.0.1:0"},
		"sms": map[string]string{"provider": "webhook", "url": hook.URL, "secret": hookSecret, "from": "0212345678"}}
	set(dir, cfg)
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(p.config, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		p.wait()
		if t.Failed() {
			raw, _ := os.ReadFile(p.log)
			lines := strings.Split(string(raw), "\n")
			t.Logf("the end of kiumbridge's log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return p
}

// push runs kiumbridge roster push with the process's configuration.
func (p *bridgeProc) push(file string) {
	p.t.Helper()
	out, err := exec.Command(p.bin, "roster", "push", "-config", p.config, file).CombinedOutput()
	if err != nil {
		p.t.Fatalf("kiumbridge roster push %s: %v\n%s", file, err, out)
	}
}

// start starts kiumbridge run; its log goes to one file across restarts.
func (p *bridgeProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, "run", "-config", p.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// signal sends sig to the running kiumbridge; safe from any goroutine.
func (p *bridgeProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when
// killed by a signal).
func (p *bridgeProc) wait() int {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return 0
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("kiumbridge did not exit within 30 s of a signal")
		cmd.Process.Kill()
		<-done
	}
	return cmd.ProcessState.ExitCode()
}

// busyCentre is mangwon1 with n children, each with a card and one
// guardian who wants texts, all in use every day.
func busyCentre(n int) (centre, *source.Source) {
	c := centre{id: "mangwon1", key: []byte("mangwon1-centre-key-0123"), cards: map[string][]byte{"staff": {0x5A, 0x01, 0x01, 0x01}}}
	src := c.source(firmware.DateOf(time.Now().In(firmware.KST)))
	src.Roster.Children, src.Roster.Cards, src.Roster.Bookings = nil, nil, nil
	src.Guardians = map[string][]source.Guardian{}
	day, all := firmware.Window{Start: 0, End: 24 * 60}, []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	from, to := src.Roster.Centre.Terms[0].From, src.Roster.Centre.Terms[0].To
	for i := range n {
		id := fmt.Sprintf("k%02d", i)
		uid := []byte{0x04, 0x70, byte(i), 0x11}
		c.cards[id] = uid
		src.Roster.Children = append(src.Roster.Children, firmware.Child{ID: id, Name: fmt.Sprintf("아이%02d", i)})
		src.Roster.Cards = append(src.Roster.Cards, firmware.Card{Key: firmware.CardKey(c.key, uid), ChildID: id, State: firmware.CardActive})
		src.Roster.Bookings = append(src.Roster.Bookings, firmware.Booking{ID: "b-" + id, ChildID: id, Type: firmware.Regular, Status: firmware.InUse,
			From: from, To: to, Weekdays: all, Window: day})
		src.Guardians[id] = []source.Guardian{{Name: "보호자", Phone: fmt.Sprintf("010%08d", 1000+i), Texts: true}}
	}
	return c, src
}

// tenAM is today at 10:00 in Seoul: terminals' clocks start there, so a
// test's taps never cross midnight.
func tenAM() time.Time {
	now := time.Now().In(firmware.KST)
	return time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, firmware.KST)
}

// writeSource writes a centre's roster source where the bridge reads it.
func writeSource(t testing.TB, dir string, src *source.Source) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := source.Write(filepath.Join(dir, src.Roster.Centre.ID+".json"), src); err != nil {
		t.Fatal(err)
	}
}
