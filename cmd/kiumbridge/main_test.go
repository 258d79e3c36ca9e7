package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/portal/bridge"
	"kiumtap/protocol"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"brokr": "tcp://x:1"}`, `unknown field "brokr"`},
		{`{"store": "s", "sources": "d", "signing_key": "k"}`, `"broker"`},
		{`{"broker": "tcp://x:1", "sources": "d", "signing_key": "k"}`, `"store"`},
		{`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "sms": {"provider": "kakao"}}`, `"sms.provider"`},
		{`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "sms": {"provider": "solapi", "from": "0212345678"}}`, `"sms.api_key"`},
		{`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "sms": {"provider": "webhook", "url": "http://x"}}`, `"sms.from"`},
		{`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "stop_timeout": "10"}`, `"stop_timeout": "10" is not a positive duration`},
	} {
		_, err := parseConfig([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.in, err, tc.want)
		}
	}
	if _, err := parseConfig([]byte(`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k"}`)); err != nil {
		t.Errorf("a good config: %v", err)
	}
	if c, err := parseConfig([]byte(`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "stop_timeout": "30s"}`)); err != nil || c.stopTimeout != 30*time.Second {
		t.Errorf("stop_timeout 30s: %v, %v", c.stopTimeout, err)
	}
}

func TestKeygenAndPush(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	keyFile := filepath.Join(dir, "portal.key")
	if err := run(context.Background(), []string{"keygen", "-out", keyFile}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "portal_key") {
		t.Fatalf("keygen said %q", out.String())
	}
	if err := run(context.Background(), []string{"keygen", "-out", keyFile}, &out, &out); err == nil {
		t.Fatal("keygen overwrote a key")
	}
	if _, err := ReadKey(keyFile); err != nil {
		t.Fatal(err)
	}
	sources := filepath.Join(dir, "sources")
	os.MkdirAll(sources, 0o700)
	cfg := filepath.Join(dir, "bridge.json")
	raw, _ := json.Marshal(map[string]any{"broker": "tcp://127.0.0.1:1", "store": filepath.Join(dir, "b.db"), "sources": sources, "signing_key": keyFile})
	os.WriteFile(cfg, raw, 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"roster", "push", "-config", cfg, "../../portal/source/testdata/mangwon1.json"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sources, "mangwon1.json")); err != nil {
		t.Fatalf("pushed source not in place: %v (%s)", err, out.String())
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"roster": {"revision": 1}}`), 0o600)
	if err := run(context.Background(), []string{"roster", "push", "-config", cfg, bad}, &out, &out); err == nil {
		t.Fatal("a bad source was pushed")
	}
	// status reads what a running bridge wrote.
	st := bridge.Status{Time: time.Now(), Connected: true, Centres: []string{"mangwon1"}}
	st.Stats.TextsFailed = 1
	st.Failed = []bridge.Job{{ID: "door-7/0", Child: "c1", To: "01012345678", Reason: "nhn: invalid recipient"}}
	raw, _ = json.Marshal(st)
	os.WriteFile(filepath.Join(dir, "b.db.status.json"), raw, 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"status", "-config", cfg}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "invalid recipient") || strings.Contains(out.String(), "01012345678") {
		t.Fatalf("status said:\n%s", out.String())
	}
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	sources := filepath.Join(dir, "sources")
	os.MkdirAll(sources, 0o700)
	src, _ := os.ReadFile("../../portal/source/testdata/mangwon1.json")
	os.WriteFile(filepath.Join(sources, "mangwon1.json"), src, 0o600)
	cfg := filepath.Join(dir, "bridge.json")
	raw, _ := json.Marshal(map[string]any{"broker": "tcp://127.0.0.1:1", "store": filepath.Join(dir, "b.db"), "sources": sources, "signing_key": "k"})
	os.WriteFile(cfg, raw, 0o600)
	st, err := bridge.OpenStore(filepath.Join(dir, "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2026, 11, 23, 14, 5, 0, 0, time.FixedZone("KST", 9*3600))
	ev := func(seq uint64, o string, at time.Time) protocol.Event {
		return protocol.Event{V: 1, ID: fmt.Sprintf("door-%d", seq), Centre: "mangwon1", Device: "door", Log: "L", Seq: seq, Time: at, ClockSynced: true, Child: "c1", Outcome: o}
	}
	if err := st.Put([]protocol.Event{ev(1, "check_in", in), ev(2, "check_out", in.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"export", "-config", cfg, "-centre", "mangwon1", "-month", "2026-11"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "14:05") || !strings.Contains(out.String(), "16:05") || !strings.Contains(out.String(), "120") {
		t.Fatalf("export:\n%s", out.String())
	}
	xlsx := filepath.Join(dir, "m.xlsx")
	if err := run(context.Background(), []string{"export", "-config", cfg, "-centre", "mangwon1", "-month", "2026-11", "-xlsx", xlsx}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(xlsx); err != nil || fi.Size() == 0 {
		t.Fatalf("xlsx: %v", err)
	}
}

// The control socket defaults to beside the store.
func TestConfigControl(t *testing.T) {
	c, err := parseConfig([]byte(`{"broker": "tcp://x:1", "store": "/var/lib/kiumbridge/bridge.db", "sources": "d", "signing_key": "k"}`))
	if err != nil || c.Control != "/var/lib/kiumbridge/kiumbridge.sock" {
		t.Fatalf("control %q, %v", c.Control, err)
	}
	c, err = parseConfig([]byte(`{"broker": "tcp://x:1", "store": "s", "sources": "d", "signing_key": "k", "control": "/run/kb.sock"}`))
	if err != nil || c.Control != "/run/kb.sock" {
		t.Fatalf("control %q, %v", c.Control, err)
	}
}
