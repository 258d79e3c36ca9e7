package protocol

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"kiumtap/firmware"
)

var testSeed = make([]byte, ed25519.SeedSize)

func testKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(testSeed)
	return priv.Public().(ed25519.PublicKey), priv
}

func mk(s string) firmware.Date { d, _ := firmware.ParseDate(s); return d }

// TestRoster is a small valid roster of centre "mangwon1".
func sampleRoster(rev uint64) *firmware.Roster {
	return &firmware.Roster{
		Revision: rev,
		Centre: firmware.Centre{ID: "mangwon1", Name: "망원1동", Terms: []firmware.Term{
			{Name: "2학기", From: mk("2026-09-01"), To: mk("2026-12-31"), Hours: firmware.Window{Start: 13 * 60, End: 19 * 60}},
		}},
		Children: []firmware.Child{{ID: "c1", Name: "김민준"}, {ID: "c2", Name: "이서연"}},
		Cards:    []firmware.Card{{Key: strings.Repeat("ab", 16), ChildID: "c1", State: firmware.CardActive}},
		Bookings: []firmware.Booking{{ID: "b1", ChildID: "c1", Type: firmware.Regular, Status: firmware.InUse, From: mk("2026-09-01"), To: mk("2026-12-31"), Weekdays: []time.Weekday{1, 2, 3, 4, 5}, Window: firmware.Window{Start: 14 * 60, End: 18 * 60}}},
	}
}

func snapshotPayload(r *firmware.Roster) []byte {
	raw, _ := json.Marshal(Snapshot{V: Version, Kind: "snapshot", Centre: r.Centre.ID, Digest: Digest(r), Roster: r})
	return raw
}

func TestSignedSnapshotAndDelta(t *testing.T) {
	pub, priv := testKey()
	r1 := sampleRoster(1)
	msg := Sign(priv, snapshotPayload(r1))
	payload, err := Open(pub, msg, MaxRoster)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(payload, "mangwon1")
	if err != nil || got.Revision != 1 {
		t.Fatalf("snapshot: %v", err)
	}
	if _, err := DecodeSnapshot(payload, "other"); err == nil {
		t.Fatal("a snapshot for another centre was taken")
	}
	// Tampered payload, other key, unsigned.
	var env Signed
	json.Unmarshal(msg, &env)
	env.Payload[len(env.Payload)-2] ^= 1
	bad, _ := json.Marshal(env)
	_, other, _ := ed25519.GenerateKey(nil)
	unsigned, _ := json.Marshal(Signed{V: Version, Payload: snapshotPayload(r1)})
	for name, m := range map[string][]byte{"tampered": bad, "other key": Sign(other, snapshotPayload(r1)), "unsigned": unsigned} {
		if _, err := Open(pub, m, MaxRoster); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Open(pub, make([]byte, MaxRoster+1), MaxRoster); err == nil {
		t.Error("an oversized message was opened")
	}

	// A delta: add a child and a card, remove a booking.
	r2 := sampleRoster(2)
	r2.Children = append(r2.Children, firmware.Child{ID: "c3", Name: "박지호"})
	r2.Bookings = nil
	d := &Delta{V: Version, Kind: "delta", Centre: "mangwon1", Base: 1, Revision: 2, Digest: Digest(r2),
		Children: Changes[firmware.Child]{Upsert: []firmware.Child{{ID: "c3", Name: "박지호"}}},
		Bookings: Changes[firmware.Booking]{Remove: []string{"b1"}}}
	raw, _ := json.Marshal(d)
	dd, err := DecodeDelta(raw, "mangwon1")
	if err != nil {
		t.Fatal(err)
	}
	next, err := dd.Apply(r1)
	if err != nil || next.Revision != 2 || len(next.Children) != 3 || len(next.Bookings) != 0 {
		t.Fatalf("apply: %+v, %v", next, err)
	}
	if len(r1.Children) != 2 {
		t.Fatal("Apply changed the current roster")
	}
	if _, err := dd.Apply(r2); !errors.Is(err, ErrGap) {
		t.Fatalf("delta on the wrong base: %v", err)
	}
	dd.Digest = strings.Repeat("0", 64)
	if _, err := dd.Apply(r1); err == nil || errors.Is(err, ErrGap) {
		t.Fatalf("digest mismatch: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		f    func([]byte) error
		in   string
	}{
		{"ack no ranges", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"v":1,"device":"T","log":"x","ranges":[]}`},
		{"ack bad range", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"v":1,"device":"T","log":"x","ranges":[[5,4]]}`},
		{"ack unknown field", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"v":1,"device":"T","log":"x","ranges":[[1,4]],"x":1}`},
		{"ack version", func(b []byte) error { _, err := DecodeAck(b); return err }, `{"v":2,"device":"T","log":"x","ranges":[[1,4]]}`},
		{"event id", func(b []byte) error { _, err := DecodeBatch(b); return err }, `{"v":1,"events":[{"v":1,"id":"T-2","centre":"c","device":"T","log":"l","seq":1,"outcome":"check_in"}]}`},
		{"events not consecutive", func(b []byte) error { _, err := DecodeBatch(b); return err }, `{"v":1,"events":[{"v":1,"id":"T-1","centre":"c","device":"T","log":"l","seq":1,"outcome":"check_in"},{"v":1,"id":"T-3","centre":"c","device":"T","log":"l","seq":3,"outcome":"check_in"}]}`},
		{"no events", func(b []byte) error { _, err := DecodeBatch(b); return err }, `{"v":1,"events":[]}`},
		{"command expired", func(b []byte) error { _, err := DecodeCommand(b, "c", "T", now); return err }, `{"v":1,"id":"1","centre":"c","device":"T","name":"ping","expires":"2026-11-23T05:00:00Z"}`},
		{"command other device", func(b []byte) error { _, err := DecodeCommand(b, "c", "T", now); return err }, `{"v":1,"id":"1","centre":"c","device":"U","name":"ping","expires":"2026-11-23T07:00:00Z"}`},
		{"snapshot malformed", func(b []byte) error { _, err := DecodeSnapshot(b, "c"); return err }, `{"v":1,"kind":"snapshot",`},
		{"delta backwards", func(b []byte) error { _, err := DecodeDelta(b, "c"); return err }, `{"v":1,"kind":"delta","centre":"c","base":3,"revision":3}`},
	} {
		if err := tc.f([]byte(tc.in)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := DecodeCommand([]byte(`{"v":1,"id":"1","centre":"c","device":"T","name":"ping","expires":"2026-11-23T07:00:00Z"}`), "c", "T", now); err != nil {
		t.Errorf("a good command: %v", err)
	}
}

func TestParseDeviceTopic(t *testing.T) {
	c, d, leaf, ok := ParseDeviceTopic(Topics{"mangwon1", "T-1"}.Events())
	if !ok || c != "mangwon1" || d != "T-1" || leaf != "events" {
		t.Fatal(c, d, leaf, ok)
	}
	for _, bad := range []string{"kium/v1/c/x/roster", "kium/v2/c/a/d/b/events", "kium/v1/c//d/b/events"} {
		if _, _, _, ok := ParseDeviceTopic(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(snapshotPayload(sampleRoster(1)))
	f.Add([]byte(`{"v":1,"kind":"snapshot"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeSnapshot(b, "mangwon1"); err == nil && Digest(r) == "" {
			t.Fatal("no digest")
		}
	})
}

func FuzzDecodeDelta(f *testing.F) {
	r2 := sampleRoster(2)
	raw, _ := json.Marshal(Delta{V: Version, Kind: "delta", Centre: "mangwon1", Base: 1, Revision: 2, Digest: Digest(r2),
		Children: Changes[firmware.Child]{Upsert: []firmware.Child{{ID: "c3", Name: "박지호"}}, Remove: []string{"c2"}}})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b, "mangwon1")
		if err != nil {
			return
		}
		d.Apply(sampleRoster(d.Base)) // must not panic
	})
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"1","centre":"mangwon1","device":"T-1","name":"ping","expires":"2030-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeCommand(b, "mangwon1", "T-1", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte(`{"v":1,"device":"T-1","log":"ab","ranges":[[1,100],[102,102]],"time":"2026-11-23T06:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeAck(b); err == nil {
			for _, r := range a.Ranges {
				if r[0] == 0 || r[1] < r[0] {
					t.Fatalf("bad range accepted: %v", r)
				}
			}
		}
	})
}

func FuzzOpen(f *testing.F) {
	_, priv := testKey()
	f.Add(Sign(priv, []byte(`{"x":1}`)))
	pub, _ := testKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		Open(pub, b, MaxMessage)
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"v":1,"events":[{"v":1,"id":"T-1-5","centre":"c","device":"T-1","log":"l","seq":5,"time":"2026-11-23T06:00:00Z","clock_synced":true,"boot_id":"00","mono_ns":1,"outcome":"check_in","reason":"arrival","roster_revision":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeBatch(b)
		if err == nil && (len(evs) == 0 || len(evs) > MaxBatch) {
			t.Fatalf("%d events accepted", len(evs))
		}
	})
}

func FuzzDecodeEnrolArgs(f *testing.F) {
	f.Add([]byte(`{"child":"c1","by":"op.kim"}`))
	f.Add([]byte(`{"child":"","by":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := DecodeEnrolArgs(b); err == nil && (a.Child == "" || a.By == "" || len(a.Child) > 64 || len(a.By) > 64) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

// A card_bound event must carry what the portal needs to apply it and to
// find the card at other centres.
func TestCardBoundEvent(t *testing.T) {
	ev := `{"v":1,"id":"T-1-43","centre":"mangwon1","device":"T-1","log":"ab","seq":43,"time":"2026-11-23T06:02:11Z","clock_synced":true,"boot_id":"1c","mono_ns":5,"card":"c264b424fc1bdff5698d5757635e6a39",%s"child":"c1","outcome":"card_bound","reason":"device","by":"s1","roster_revision":7}`
	if evs, err := DecodeBatch([]byte(`{"v":1,"events":[` + fmt.Sprintf(ev, `"uid":"04A1B2C3D4E5F6",`) + `]}`)); err != nil || evs[0].By != "s1" {
		t.Fatalf("a good card_bound event: %v", err)
	}
	if _, err := DecodeBatch([]byte(`{"v":1,"events":[` + fmt.Sprintf(ev, "") + `]}`)); err == nil {
		t.Fatal("a card_bound event without its uid was accepted")
	}
}

// A delta carries staff changes and the applied bindings; the digest
// covers both, whatever order staff come in.
func TestDeltaStaffAndApplied(t *testing.T) {
	r1 := sampleRoster(1)
	r1.Staff = []firmware.Staff{{ID: "s2", Name: "최선생", Key: strings.Repeat("b", 32)}}
	r2 := sampleRoster(2)
	r2.Staff = []firmware.Staff{{ID: "s2", Name: "최선생", Key: strings.Repeat("b", 32)}, {ID: "s1", Name: "박선생", Key: strings.Repeat("a", 32)}}
	r2.Applied = map[string]uint64{"T-1/ab": 43}
	d := &Delta{V: Version, Kind: "delta", Centre: "mangwon1", Base: 1, Revision: 2, Digest: Digest(r2),
		Staff:   Changes[firmware.Staff]{Upsert: []firmware.Staff{{ID: "s1", Name: "박선생", Key: strings.Repeat("a", 32)}}},
		Applied: map[string]uint64{"T-1/ab": 43}}
	got, err := d.Apply(r1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Staff) != 2 || got.Applied["T-1/ab"] != 43 {
		t.Fatalf("after the delta: staff %+v applied %v", got.Staff, got.Applied)
	}
	// Without applied_bindings the map is kept.
	d2 := &Delta{V: Version, Kind: "delta", Centre: "mangwon1", Base: 2, Revision: 3, Digest: ""}
	r3 := *got
	r3.Revision = 3
	d2.Digest = Digest(&r3)
	if got3, err := d2.Apply(got); err != nil || got3.Applied["T-1/ab"] != 43 {
		t.Fatalf("an empty delta: %v %v", err, got3)
	}
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"v":1,"state":"offline"}`))
	f.Add([]byte(`{"v":1,"state":"online","time":"2026-11-23T06:00:00Z","outbox_depth":3,"oldest_unacked_age_s":1.5,"roster_revision":7,"roster_age_s":60,"clock_synced":true,"reader_healthy":true,"reader_recoveries":0,"last_rejection":{"topic":"t","reason":"r","time":"2026-11-23T06:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := DecodeStatus(b); err == nil && st.State != "online" && st.State != "offline" {
			t.Fatalf("accepted state %q", st.State)
		}
	})
}
