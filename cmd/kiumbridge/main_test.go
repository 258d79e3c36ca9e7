package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"brokr": "tcp://x:1"}`, `config: brokr (line 1): unknown field`},
		{"{\n  \"broker\": \"tcp://x:1\",\n  \"instances\": \"two\"\n}", `config: instances (line 3): want a whole number, got string`},
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
	// Flags after the file are read (Go's flag package alone ignores them).
	if err := run(context.Background(), []string{"roster", "push", "../../portal/source/testdata/mangwon1.json", "-config", cfg}, &out, &out); err != nil {
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
