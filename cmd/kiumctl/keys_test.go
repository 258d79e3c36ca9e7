package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/internal/cli"
	"kiumtap/portal/source"
)

// kiumctl runs kiumctl with args: its stdout, stderr and the exit status
// main would give.
func kiumctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errs bytes.Buffer
	err := run(context.Background(), args, &out, &errs)
	code = cli.ExitCode(err)
	if code != 0 {
		errs.WriteString("kiumctl: " + err.Error() + "\n")
	}
	return out.String(), errs.String(), code
}

// key new prints 16 random bytes in hex, a key a centre's terminals and
// roster push take.
func TestKeyNew(t *testing.T) {
	a, note, code := kiumctl(t, "key", "new")
	b, _, _ := kiumctl(t, "key", "new")
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(a) || a == b {
		t.Fatalf("key new: exit %d, %q then %q", code, a, b)
	}
	if !strings.Contains(note, `"centre_key"`) {
		t.Errorf("key new says nothing of what the key is for: %q", note)
	}
	if k, err := source.ParseCentreKey(strings.TrimSpace(a)); err != nil || len(k) != 16 {
		t.Errorf("the new key is not a centre key: %v", err)
	}
	if _, errs, code := kiumctl(t, "key", "new", "extra"); code != 2 || !strings.Contains(errs, `unexpected ["extra"]`) {
		t.Errorf("key new extra: exit %d, %s", code, errs)
	}
}

// card key prints HMAC-SHA256(centre key, UID) cut to 16 bytes, in hex
// (computed here without firmware): what a roster source's staff[].key
// and cards[].key hold, and what a list of children's 카드UID becomes.
func TestCardKey(t *testing.T) {
	const centreKey = "00112233445566778899aabbccddeeff"
	rawKey, _ := hex.DecodeString(centreKey)
	want := func(uid []byte) string {
		m := hmac.New(sha256.New, rawKey)
		m.Write(uid)
		return hex.EncodeToString(m.Sum(nil)[:16]) + "\n"
	}
	uid7 := []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}
	for _, args := range [][]string{
		{"card", "key", "-centre-key", centreKey, "04A1B2C3D4E5F6"},
		{"card", "key", "-centre-key", centreKey, "04:a1:b2:c3:d4:e5:f6"},
		{"card", "key", "04 A1 B2 C3 D4 E5 F6", "-centre-key", centreKey}, // the flag after the UID
		{"card", "key", "-centre-key=" + strings.ToUpper(centreKey), "04-A1-B2-C3-D4-E5-F6"},
	} {
		if out, errs, code := kiumctl(t, args...); code != 0 || out != want(uid7) {
			t.Errorf("%q: exit %d, %q, want %q\n%s", args, code, out, want(uid7), errs)
		}
	}
	// The same key as a list of children gives the card.
	base, err := source.Load("../../portal/source/testdata/mangwon1.json")
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Join(source.Columns, ",") + "\nc01,김민준,04A1B2C3D4E5F6,,,,,,,,,,\n"
	s, err := source.ImportCSV(strings.NewReader(list), base, rawKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ := kiumctl(t, "card", "key", "-centre-key", centreKey, "04A1B2C3D4E5F6")
	if c := s.Roster.CardByKey(strings.TrimSpace(out)); c == nil || c.ChildID != "c01" || c.State != firmware.CardActive {
		t.Errorf("the imported list has no active card %s for c01: %+v", out, s.Roster.Cards)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"card", "key", "04A1B2C3"}, "-centre-key is required"},
		{[]string{"card", "key", "-centre-key", centreKey}, "name one card UID"},
		{[]string{"card", "key", "-centre-key", centreKey, "04A1B2C3", "04A1B2C4"}, "name one card UID"},
		{[]string{"card", "key", "-centre-key", "0011", "04A1B2C3"}, "2 bytes, want at least 16"},
		{[]string{"card", "key", "-centre-key", "centre-key", "04A1B2C3"}, "not hex"},
		{[]string{"card", "key", "-centre-key", centreKey, "04A1B2"}, "3 bytes: a card UID has 4 to 10 bytes"},
		{[]string{"card", "key", "-centre-key", centreKey, "04A1B2CZ"}, "not a UID in hex digits"},
		{[]string{"card", "key", "-centre-key", centreKey, "04A1B2C3", "-json"}, "flag provided but not defined: -json"},
	} {
		out, errs, code := kiumctl(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, %q, want 2 and %q:\n%s", tc.args, code, out, tc.want, errs)
		}
	}
}

// -h is no failure on any command; -version prints the version; flags
// after the arguments are read.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"--help"}, {"help"},
		{"status", "-h"}, {"events", "-help"}, {"roster", "show", "-h"}, {"roster", "push", "-h"}, {"roster", "-h"},
		{"reader", "probe", "-h"}, {"cards", "list", "-h"}, {"cards", "history", "c1", "-h"}, {"enrol", "-h"}, {"revoke", "-h"},
		{"terminals", "-h"}, {"gaps", "-h"}, {"alerts", "-h"}, {"absent", "-h"}, {"gap", "accept", "-h"}, {"key", "new", "-h"}, {"card", "key", "-h"},
		{"help", "cards", "list"}, {"help", "card", "key"},
	} {
		out, errs, code := kiumctl(t, args...)
		if code != 0 || strings.Contains(errs, "kiumctl: ") || out+errs == "" {
			t.Errorf("%q: exit %d\n%s%s", args, code, out, errs)
		}
		if len(args) == 1 || len(args) == 2 && args[0] == "roster" {
			for _, c := range []string{"status", "cards list", "key new", "card key", "gap accept"} {
				if !strings.Contains(out, "\n  "+c+" ") {
					t.Errorf("%q does not list %s:\n%s", args, c, out)
				}
			}
		}
	}
	for _, args := range [][]string{{"-version"}, {"--version"}, {"version"}} {
		if out, _, code := kiumctl(t, args...); code != 0 || !strings.HasPrefix(out, "kiumctl "+cli.BuildVersion()+" (go") {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
	// -bridge and -centre after the child are read: kiumctl asks the
	// socket named (old: -centre was "required", the flags ignored).
	_, errs, code := kiumctl(t, "cards", "history", "c1", "-centre", "mangwon1", "-bridge", "/nonexistent/kb.sock")
	if code != 1 || !strings.Contains(errs, "/nonexistent/kb.sock") {
		t.Errorf("cards history c1 -centre …: exit %d\n%s", code, errs)
	}
}
