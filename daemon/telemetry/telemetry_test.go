package telemetry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
)

type fakeStore struct {
	outErr error
	now    time.Time
}

func (f fakeStore) Outbox() (store.Outbox, error) {
	return store.Outbox{Depth: 3, Oldest: f.now.Add(-90 * time.Second), First: 5, LastSeq: 7}, f.outErr
}
func (f fakeStore) Roster() (*firmware.Roster, time.Time, error) {
	return &firmware.Roster{Revision: 12}, f.now.Add(-time.Hour), nil
}
func (f fakeStore) JournalLag() (int, time.Time) { return 1, f.now.Add(-2 * time.Second) }
func (f fakeStore) Size() (int64, error)         { return 65536, nil }
func (f fakeStore) Path() string                 { return "/tmp/kiumtap.db" }

// The state metrics are read from the parts at each scrape; a terminal
// without a link has no link metrics; a part that fails costs only its
// own metrics.
func TestScrape(t *testing.T) {
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, firmware.KST)
	src := Sources{
		Store:    fakeStore{now: now},
		Reader:   func() rc522.Stats { return rc522.Stats{Recoveries: 2, SPIErrors: 4, Frames: 100} },
		ReaderUp: func() bool { return false },
		Synced:   func() bool { return true },
		Now:      func() time.Time { return now },
		Version:  "v1.2.3",
	}
	m := New(src)
	m.Tapped(firmware.Decision{Outcome: firmware.CheckIn})
	m.Tapped(firmware.Decision{Outcome: firmware.CheckIn})
	m.Healthy(false)
	want := map[string]float64{
		"kiumtap_outbox_events": 3, "kiumtap_outbox_oldest_age_seconds": 90, "kiumtap_events_last_seq": 7,
		"kiumtap_roster_revision": 12, "kiumtap_roster_age_seconds": 3600, "kiumtap_journal_pending_batches": 1,
		"kiumtap_journal_lag_seconds": 2, "kiumtap_store_bytes": 65536, "kiumtap_clock_synced": 1, "kiumtap_reader_up": 0,
		"kiumtap_reader_recoveries_total": 2, "kiumtap_reader_frames_total": 100, "kiumtap_healthy": 0,
	}
	for name, v := range want {
		if got := value(t, m, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	mfs, _ := m.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "kiumtap_taps_total" {
			continue
		}
		if n := len(mf.GetMetric()); n != 8 {
			t.Errorf("%d outcome series, want all 8 from the start", n)
		}
		for _, s := range mf.GetMetric() {
			want := 0.0
			if s.GetLabel()[0].GetValue() == "check_in" {
				want = 2
			}
			if s.GetCounter().GetValue() != want {
				t.Errorf("taps %v = %v, want %v", s.GetLabel()[0].GetValue(), s.GetCounter().GetValue(), want)
			}
		}
	}
	names := metricNames(t, m)
	for _, absent := range []string{"kiumtap_link_up", "kiumtap_link_reconnects_total"} {
		if strings.Contains(names, absent+" ") {
			t.Errorf("%s without a link", absent)
		}
	}

	src.Store = fakeStore{now: now, outErr: errors.New("disk gone")}
	m = New(src)
	if _, err := m.Registry.Gather(); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("a failing outbox: %v", err)
	}
	if !strings.Contains(metricNames(t, m), "kiumtap_roster_revision ") {
		t.Error("a failing outbox lost the other metrics")
	}
	src.Link = func() uplink.Link { return uplink.Link{Connected: true} }
	src.Uplink = func() uplink.Stats { return uplink.Stats{Connects: 3} }
	src.Store = fakeStore{now: now}
	m = New(src)
	if got := value(t, m, "kiumtap_link_reconnects_total"); got != 2 {
		t.Errorf("reconnects %v, want connects after the first", got)
	}
}

// value is the one sample of the metric named, as a scrape sees it.
func value(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, _ := m.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s has %d samples", name, len(mf.GetMetric()))
		}
		s := mf.GetMetric()[0]
		switch {
		case s.GetGauge() != nil:
			return s.GetGauge().GetValue()
		case s.GetCounter() != nil:
			return s.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func metricNames(t *testing.T, m *Metrics) string {
	t.Helper()
	mfs, _ := m.Registry.Gather()
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.GetName() + " ")
	}
	return b.String()
}
