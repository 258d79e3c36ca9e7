package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRosterPush(t *testing.T) {
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"roster", "push", "-sources", dir, "../../portal/source/testdata/mangwon1.json"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mangwon1.json")); err != nil || !strings.Contains(out.String(), "mangwon1") {
		t.Fatalf("%v: %s", err, out.String())
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"roster": {"revision": 1, "centre": {"id": "x"}}}`), 0o600)
	if err := run(context.Background(), []string{"roster", "push", "-sources", dir, bad}, &out, &errs); err == nil {
		t.Fatal("a bad source was handed over")
	}
	if err := run(context.Background(), []string{"roster", "push", "-sources", dir, "staff.csv"}, &out, &errs); err == nil || !strings.Contains(err.Error(), "centre") {
		t.Fatalf("a CSV without a centre: %v", err)
	}
}
