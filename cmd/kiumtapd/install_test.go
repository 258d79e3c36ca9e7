package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
)

// testCentreKey keys the test install's card HMACs.
var testCentreKey = []byte("kiumtap-test-centre-key!")

// install is a test install of an emulated terminal: a configuration with
// reader.kind "emu", virtual cards by label, and a roster file.
type install struct {
	config, store, socket string
	metrics               string // the /metrics endpoint's socket
}

// testCard is a child's card on the test install.
type testCard struct {
	label, uid, child, name string
	listed                  bool // in reader.cards
}

var testCards = []testCard{
	{"minjun", "DEADBEEF", "c1", "김민준", true},
	{"seoyeon", "046A2B5C1D8041", "c2", "이서연", false}, // known to the emulator only once placed by UID
	{"jiho", "05102030405060708090", "c3", "박지호", true},
	{"haeun", "CAFEBABE", "c4", "최하은", true},
}

// newInstall writes the configuration and a roster in use today to dir.
// duplicateWindow "" is the default.
func newInstall(t testing.TB, dir, duplicateWindow string) install {
	t.Helper()
	in := install{config: filepath.Join(dir, "kiumtapd.toml"), store: filepath.Join(dir, "kiumtap.db"), socket: filepath.Join(dir, "kiumtapd.sock"), metrics: filepath.Join(dir, "metrics.sock")}
	now := time.Now()
	today := firmware.DateOf(now)
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	day := firmware.Window{Start: 0, End: 24 * 60}
	r := &firmware.Roster{Revision: 1, Issued: now,
		Centre: firmware.Centre{ID: "mangwon1", Name: "우리동네키움센터 망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: today.AddDays(-30), To: today.AddDays(30), Hours: day, Weekdays: all},
		}},
	}
	cards := map[string]string{}
	for _, c := range testCards {
		uid, _ := hex.DecodeString(c.uid)
		r.Children = append(r.Children, firmware.Child{ID: c.child, Name: c.name})
		r.Cards = append(r.Cards, firmware.Card{Key: firmware.CardKey(testCentreKey, uid), ChildID: c.child, State: firmware.CardActive})
		r.Bookings = append(r.Bookings, firmware.Booking{ID: "b" + c.child, ChildID: c.child, Type: firmware.Regular, Status: firmware.InUse,
			From: today.AddDays(-30), To: today.AddDays(30), Weekdays: all, Window: day})
		if c.listed {
			cards[c.label] = c.uid
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	rosterPath := filepath.Join(dir, "roster.json")
	if err := os.WriteFile(rosterPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// The configuration as an installer writes it: TOML.
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = %q\ncentre_key = %q\nstore = %q\nsocket = %q\nroster = %q\nmetrics = %q\n",
		"mangwon1-door", hex.EncodeToString(testCentreKey), in.store, in.socket, rosterPath, "unix:"+in.metrics)
	if duplicateWindow != "" {
		fmt.Fprintf(&b, "\n[decisions]\nduplicate_window = %q\n", duplicateWindow)
	}
	b.WriteString("\n[display]\nkind = \"none\"\n\n[reader]\nkind = \"emu\"\n\n[reader.cards]\n")
	for label, uid := range cards {
		fmt.Fprintf(&b, "%q = %q\n", label, uid)
	}
	if err := os.WriteFile(in.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}
