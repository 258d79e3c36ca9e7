package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
	"kiumtap/portal/api"
	"kiumtap/portal/source"
	"kiumtap/portal/store"
	"kiumtap/protocol"
)

// tap is a check_in or check_out of child at centre, seq of terminal d's
// log L.
func tap(centre, child string, seq uint64, outcome firmware.Outcome, at time.Time) protocol.Event {
	return protocol.Event{V: 1, ID: fmt.Sprintf("d-%s-%d", centre, seq), Centre: centre, Device: "d-" + centre, Log: "L", Seq: seq, Time: at, ClockSynced: true,
		BootID: "boot", Child: child, Outcome: string(outcome), RosterRev: 1}
}

// get asks the control handler; it returns the status and decodes the
// answer into into (a ControlError for an error answer).
func get(t *testing.T, b *Bridge, path string, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	b.ControlHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		var ce api.ControlError
		if err := json.Unmarshal(rec.Body.Bytes(), &ce); err != nil || ce.Error == "" {
			t.Fatalf("%s: %d with body %q", path, rec.Code, rec.Body)
		}
		if p, ok := into.(*api.ControlError); ok {
			*p = ce
		}
		return rec.Code
	}
	if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return rec.Code
}

// The control socket's /texts, /export and /status: what kiumbridge
// texts, export and status print while the bridge holds the store.
func TestControlReports(t *testing.T) {
	h := newHarness(t, "m1", "m2")
	in := time.Date(2026, 11, 23, 14, 5, 0, 0, firmware.KST)
	h.put(tap("m1", "c1", 1, firmware.CheckIn, in), tap("m1", "c1", 2, firmware.CheckOut, in.Add(2*time.Hour)),
		tap("m1", "c2", 3, firmware.CheckIn, in.AddDate(0, 1, 0))) // December
	// A centre whose source is gone keeps its history.
	h.put(tap("m9", "c1", 1, firmware.CheckIn, in))

	var ex api.ExportView
	if code := get(t, h.b, "/export?centre=m1&month=2026-11", &ex); code != http.StatusOK {
		t.Fatalf("export: %d", code)
	}
	if ex.Centre != "m1" || ex.Month != "2026-11" || len(ex.Sessions) != 1 || ex.Sessions[0].Minutes() != 120 || ex.Names["c1"] != "김민준" ||
		len(ex.Occupancy) != 1 || ex.Occupancy[0].Hours[14] != 1 || ex.Occupancy[0].Hours[16] != 1 || ex.Occupancy[0].Hours[17] != 0 {
		t.Errorf("export of m1, November: %+v", ex)
	}
	ex = api.ExportView{}
	if get(t, h.b, "/export?centre=m9&month=2026-11", &ex); len(ex.Sessions) != 1 || len(ex.Names) != 0 {
		t.Errorf("export of m9 (no source): %+v", ex)
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/export?centre=m3&month=2026-11", http.StatusNotFound, "no such centre: m3 (centres: m1, m2, m9)"},
		{"/export?centre=m1&month=November", http.StatusBadRequest, `month "November": want YYYY-MM`},
		{"/export?month=2026-11", http.StatusBadRequest, "the centre is required"},
		{"/texts?state=sending%20soon", http.StatusBadRequest, `state "sending soon": want one of pending, sending, sent, failed, held`},
	} {
		var ce api.ControlError
		if code := get(t, h.b, tc.path, &ce); code != tc.code || ce.Error != tc.want && !strings.HasPrefix(ce.Error, tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, code, ce.Error, tc.code, tc.want)
		}
	}

	// c1 has one guardian who wants texts: two texts at m1 (c2 has none;
	// m9 has no source, so no texts). One is being sent now.
	claimed, err := h.st.Claim(h.now.Add(time.Hour), 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	var tv api.TextsView
	get(t, h.b, "/texts", &tv)
	if len(tv.Texts) != 2 || tv.Counts[store.JobPending] != 1 || tv.Counts[store.JobSending] != 1 {
		t.Errorf("texts: %+v", tv)
	}
	get(t, h.b, "/texts?state=sending", &tv)
	if len(tv.Texts) != 1 || tv.Texts[0].ID != claimed[0].ID || tv.Texts[0].State != store.JobSending {
		t.Errorf("texts being sent: %+v", tv.Texts)
	}
	get(t, h.b, "/texts?state=failed", &tv)
	if len(tv.Texts) != 0 || tv.Texts == nil {
		t.Errorf("failed texts: %#v", tv.Texts)
	}

	var st api.Status
	get(t, h.b, "/status", &st)
	if !slices.Equal(st.Centres, []string{"m1", "m2"}) || st.Connected {
		t.Errorf("status: %+v", st)
	}

	// The store read directly (no bridge running) answers the same.
	direct, err := ExportStore(h.st.Contract(), source.Dir(h.dir), "m1", "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(direct)
	ex = api.ExportView{}
	get(t, h.b, "/export?centre=m1&month=2026-11", &ex)
	b, _ := json.Marshal(ex)
	if string(a) != string(b) {
		t.Errorf("from the store:\n%s\nfrom the bridge:\n%s", a, b)
	}
	if _, err := ExportStore(h.st.Contract(), source.Dir(h.dir), "m3", "2026-11"); err == nil || err.Error() != "no such centre: m3 (centres: m1, m2, m9)" {
		t.Errorf("ExportStore of an unknown centre: %v", err)
	}
}
