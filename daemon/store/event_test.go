package store

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"kiumtap/firmware"
)

func sampleEvent() Event {
	return Event{
		Seq: 123456, Time: time.Date(2026, 11, 23, 6, 2, 0, 123, time.UTC), ClockSynced: true,
		BootID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Mono: 3*time.Hour + 7,
		CardKey: ck(1), UID: []byte{0xDE, 0xAD, 0xBE, 0xEF}, ChildID: "c-000123",
		Outcome: firmware.CheckIn, Reason: firmware.ReasonArrival,
		Flags: []firmware.Flag{firmware.FlagLate, firmware.FlagRosterStale}, RosterRev: 42,
	}
}

func bindingEvent() Event {
	return Event{Seq: 7, Time: time.Date(2026, 11, 23, 6, 2, 0, 0, time.UTC), ClockSynced: true, CardKey: ck(50), UID: []byte{50, 1, 2, 3},
		ChildID: "c1", Outcome: firmware.CardBound, Reason: "device", OldCard: ck(1), By: "s1", RosterRev: 3}
}

func TestEventRoundTrip(t *testing.T) {
	for _, ev := range []Event{sampleEvent(), bindingEvent(), {Seq: 1, Time: time.Unix(0, 0), Outcome: firmware.UnknownCard, Reason: firmware.ReasonCardUnbound}} {
		raw, err := ev.marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := unmarshalEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(ev.Time) {
			t.Errorf("time %v, want %v", got.Time, ev.Time)
		}
		got.Time = ev.Time
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
		}
	}
	raw, _ := sampleEvent().marshal()
	if len(raw) > 150 {
		t.Errorf("a full event takes %d bytes", len(raw))
	}
	for i := range raw {
		if _, err := unmarshalEvent(raw[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
}

func FuzzUnmarshalEvent(f *testing.F) {
	raw, _ := sampleEvent().marshal()
	f.Add(raw)
	raw, _ = bindingEvent().marshal()
	f.Add(raw)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := unmarshalEvent(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		again, err := ev.marshal()
		if err != nil {
			return // e.g. a card key that is not hex-encodable back: fine
		}
		ev2, err := unmarshalEvent(again)
		if err != nil || !bytes.Equal(again, mustMarshal(t, ev2)) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

func mustMarshal(t testing.TB, ev Event) []byte {
	b, err := ev.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeRoster(f *testing.F) {
	raw, _ := jsonRoster()
	f.Add(raw)
	f.Add([]byte(`{"revision":1}`))
	f.Add([]byte(`{"centre":{"terms":[{"from":"2026-02-30"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRoster(b)
		if err != nil {
			return
		}
		// A roster that passes validation decides without panicking.
		firmware.Decide(firmware.Input{
			Tap:      firmware.Tap{CardKey: ck(1), At: time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)},
			Roster:   r,
			Presence: func(string) firmware.Presence { return firmware.Presence{} },
		})
	})
}

func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte(`{"day":"2026-11-23","inside":true,"since":"2026-11-23T06:02:00Z"}`))
	f.Add([]byte(`{"day":"2026-02-30"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePresence(b)
		if err == nil && p.Inside && p.Day.IsZero() && len(b) == 0 {
			t.Fatal("empty record decoded as inside")
		}
	})
}
