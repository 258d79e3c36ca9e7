package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

// An earlier version's JSON configuration migrates with one command, to
// TOML that config check finds good.
func TestConfigMigrateAndCheck(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	key := filepath.Join(dir, "portal.key")
	if err := run(context.Background(), []string{"keygen", "-out", key}, &out, &out); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "bridge.json")
	raw, _ := json.Marshal(map[string]any{"broker": "tcp://127.0.0.1:1883", "store": filepath.Join(dir, "b.db"), "sources": dir, "signing_key": key, "stop_timeout": "20s"})
	os.WriteFile(old, raw, 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"config", "migrate", old}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "stop_timeout = '20s'") {
		t.Errorf("migrated:\n%s", out.String())
	}
	toml := filepath.Join(dir, "kiumbridge.toml")
	os.WriteFile(toml, out.Bytes(), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"config", "check", "-config", toml}, &out, &out); err != nil || !strings.Contains(out.String(), toml+": good (broker tcp://127.0.0.1:1883") {
		t.Errorf("check: %v %s", err, out.String())
	}
	os.WriteFile(key, []byte("not a key"), 0o600)
	if err := run(context.Background(), []string{"config", "check", "-config", toml}, &out, &out); err == nil || !strings.Contains(err.Error(), "not a base64 Ed25519 seed") {
		t.Errorf("check with a bad key: %v", err)
	}
	if err := run(context.Background(), []string{"config", "frobnicate"}, &out, &out); err == nil || !strings.Contains(err.Error(), `unknown config command "frobnicate"`) {
		t.Errorf("unknown: %v", err)
	}
}
