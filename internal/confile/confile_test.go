package confile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want, err  string
	}{
		{"owner", "s3cret\n", 0o600, "s3cret", ""},
		{"group", "  s3cret  ", 0o640, "s3cret", ""},
		{"world readable", "s3cret", 0o644, "", "has mode 0644: a secret file must not be readable by every user"},
		{"group writable", "s3cret", 0o660, "", "has mode 0660"},
		{"empty", "\n", 0o600, "", "is empty"},
	} {
		p := write(strings.ReplaceAll(tc.name, " ", "_"), tc.body, tc.mode)
		got, err := ReadSecret("k.toml", "mqtt.password_file", p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "k.toml: mqtt.password_file: ") {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := ReadSecret("k.toml", "key_file", filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "absent does not exist: write the secret in it") {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := ReadSecret("k.toml", "key_file", dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

func TestLineOf(t *testing.T) {
	raw := []byte("a = 1\n\n[mqtt] # the link\nbroker = \"x\"\n\n[log]\nlevel = \"info\"\n")
	for key, want := range map[string]int{"a": 1, "mqtt.broker": 4, "mqtt.window": 3, "log.level": 7, "metrics": 0, "reader.kind": 0} {
		if got := LineOf("k.toml", raw, key); got != want {
			t.Errorf("LineOf(%s) = %d, want %d", key, got, want)
		}
	}
	if got := LineOf("k.json", []byte("{\n \"mqtt\": {\n  \"broker\": 1}}"), "mqtt.broker"); got != 3 {
		t.Errorf("LineOf in JSON = %d, want 3", got)
	}
}

func TestMigrateReadsOnlyJSON(t *testing.T) {
	var v struct {
		A string `json:"a" toml:"a"`
	}
	if _, err := Migrate("/etc/x.toml", &v); err == nil || !strings.Contains(err.Error(), "migrate reads a JSON configuration") {
		t.Errorf("migrating TOML: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	var v struct{}
	err := Parse("k.toml", make([]byte, MaxSize+1), &v)
	if err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("%v", err)
	}
}

// The text log has no time under journald (the journal stamps each line);
// JSON keeps it for shippers; levels filter.
func TestLogger(t *testing.T) {
	var b strings.Builder
	t.Setenv("JOURNAL_STREAM", "8:1234")
	l := Log{Format: "text", Level: "info"}
	l.Logger(&b).Info("hello", "k", 1)
	l.Logger(&b).Debug("hidden")
	if got := b.String(); got != "level=INFO msg=hello k=1\n" {
		t.Errorf("text under journald: %q", got)
	}
	b.Reset()
	Log{Format: "json", Level: "debug"}.Logger(&b).Debug("hello")
	if !strings.Contains(b.String(), `"time":`) || !strings.Contains(b.String(), `"level":"DEBUG"`) {
		t.Errorf("json: %q", b.String())
	}
	t.Setenv("JOURNAL_STREAM", "")
	b.Reset()
	Log{Format: "text", Level: "info"}.Logger(&b).Info("hello")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Errorf("text outside journald: %q", b.String())
	}
	for _, bad := range []Log{{Format: "xml"}, {Level: "loud"}} {
		if ps := bad.Check(); len(ps) != 1 {
			t.Errorf("%+v: %v", bad, ps)
		}
	}
}
