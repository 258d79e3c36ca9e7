// Package telemetry owns kiumtapd's Prometheus metrics: their names, what
// each measures and where its value comes from. Counters of what happens
// (taps by outcome) are counted as it happens; the state of the parts
// (outbox, link, roster, clock, disk, journal, reader) is read from them at
// each scrape, so a scrape never sees a stale copy. docs/operations.md
// lists every name.
package telemetry

import (
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sys/unix"

	"kiumtap/daemon/store"
	"kiumtap/daemon/uplink"
	"kiumtap/firmware"
	"kiumtap/hal/rc522"
)

// Store is what the metrics read of the store.
type Store interface {
	Outbox() (store.Outbox, error)
	Roster() (*firmware.Roster, time.Time, error)
	JournalLag() (int, time.Time)
	Size() (int64, error)
	Path() string
}

// Sources are the parts the metrics read at each scrape; a nil source's
// metrics are left out (no uplink: no link metrics).
type Sources struct {
	Store  Store
	Reader func() rc522.Stats
	// ReaderUp reports whether the reader chip answers now.
	ReaderUp func() bool
	Link     func() uplink.Link
	Uplink   func() uplink.Stats
	// Synced reports whether the wall clock is believed (NTP).
	Synced func() bool
	// Now is the clock for ages; default time.Now.
	Now func() time.Time
	// Version of the build.
	Version string
}

// Metrics is kiumtapd's registry and the counters it keeps itself.
type Metrics struct {
	// Registry holds every metric, the Go runtime's and the process's
	// too; serve it with internal/metrics.
	Registry *prometheus.Registry

	taps    *prometheus.CounterVec
	healthy prometheus.Gauge
}

// New registers the metrics over the sources.
func New(src Sources) *Metrics {
	if src.Now == nil {
		src.Now = time.Now
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		taps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiumtap_taps_total",
			Help: "Taps recorded since kiumtapd started, by outcome (check_in, check_out, duplicate, no_data, not_in_use, unknown_card, replaced_card, auto_check_out).",
		}, []string{"outcome"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiumtap_healthy",
			Help: "1 while the watchdog's checks (the tap loop and the store respond) pass, 0 while they fail.",
		}),
	}
	// Every outcome is there from the start, at 0: a rate over a counter
	// that appears late misses its first increase.
	for _, o := range []firmware.Outcome{firmware.CheckIn, firmware.CheckOut, firmware.Duplicate, firmware.NoData, firmware.NotInUse, firmware.UnknownCard, firmware.ReplacedCard, firmware.AutoCheckOut} {
		m.taps.WithLabelValues(string(o))
	}
	m.healthy.Set(1)
	m.Registry.MustRegister(m.taps, m.healthy, &state{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Tapped counts a recorded tap.
func (m *Metrics) Tapped(d firmware.Decision) { m.taps.WithLabelValues(string(d.Outcome)).Inc() }

// Healthy records the watchdog's verdict.
func (m *Metrics) Healthy(ok bool) {
	if ok {
		m.healthy.Set(1)
	} else {
		m.healthy.Set(0)
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dOutbox     = desc("kiumtap_outbox_events", "Events stored and not yet acknowledged by the portal.")
	dOutboxAge  = desc("kiumtap_outbox_oldest_age_seconds", "Age of the oldest event the portal has not acknowledged; 0 when none waits.")
	dLastSeq    = desc("kiumtap_events_last_seq", "Sequence number of the last event stored.")
	dLinkUp     = desc("kiumtap_link_up", "1 while connected to the broker, 0 otherwise.")
	dReconnects = desc("kiumtap_link_reconnects_total", "Connections to the broker made after the first since kiumtapd started.")
	dPublished  = desc("kiumtap_link_published_total", "Events messages published to the portal since kiumtapd started.")
	dAcked      = desc("kiumtap_link_acks_total", "Acknowledgements from the portal that deleted events, since kiumtapd started.")
	dRefused    = desc("kiumtap_link_refused", "1 while the portal refuses this terminal's events (kiumctl status says why).")
	dRejected   = desc("kiumtap_link_rejected_total", "Messages from the portal this terminal refused (bad signature, stale, malformed).")
	dRevision   = desc("kiumtap_roster_revision", "Revision of the roster the terminal decides with; 0: none yet.")
	dRosterAge  = desc("kiumtap_roster_age_seconds", "Time since the roster in use was received.")
	dSynced     = desc("kiumtap_clock_synced", "1 when the wall clock is believed (NTP in sync and past 2024), 0 otherwise: events are stamped for correction.")
	dDiskFree   = desc("kiumtap_disk_free_bytes", "Free space on the store's file system, for kiumtapd.")
	dStoreSize  = desc("kiumtap_store_bytes", "Size of the store's database file.")
	dJournal    = desc("kiumtap_journal_pending_batches", "Batches of taps in the journal that the database does not have yet.")
	dJournalLag = desc("kiumtap_journal_lag_seconds", "Age of the oldest batch in the journal not yet in the database; 0 when none.")
	dReaderUp   = desc("kiumtap_reader_up", "1 while the MFRC522 answers, 0 while it does not (kiumtapd retries it).")
	dRecoveries = desc("kiumtap_reader_recoveries_total", "Hard resets of the reader chip through RST since kiumtapd started.")
	dReaderErrs = desc("kiumtap_reader_errors_total", "Reader errors since kiumtapd started, by kind: spi, bad_frame, collision, stuck, reset_failure.", "kind")
	dFrames     = desc("kiumtap_reader_frames_total", "Frames exchanged with cards since kiumtapd started.")
	dBuild      = desc("kiumtap_build_info", "1, with the build's version.", "version")
)

// state reads the parts at each scrape.
type state struct{ src Sources }

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dOutbox, dOutboxAge, dLastSeq, dLinkUp, dReconnects, dPublished, dAcked, dRefused, dRejected,
		dRevision, dRosterAge, dSynced, dDiskFree, dStoreSize, dJournal, dJournalLag, dReaderUp, dRecoveries, dReaderErrs, dFrames, dBuild} {
		ch <- d
	}
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	now := s.src.Now()
	age := func(t time.Time) float64 {
		if t.IsZero() || now.Before(t) {
			return 0
		}
		return now.Sub(t).Seconds()
	}
	gauge(dBuild, 1, s.src.Version)
	if st := s.src.Store; st != nil {
		if o, err := st.Outbox(); err == nil {
			gauge(dOutbox, float64(o.Depth))
			gauge(dLastSeq, float64(o.LastSeq))
			if o.Depth > 0 {
				gauge(dOutboxAge, age(o.Oldest))
			} else {
				gauge(dOutboxAge, 0)
			}
		} else {
			ch <- prometheus.NewInvalidMetric(dOutbox, err)
		}
		if r, received, err := st.Roster(); err == nil {
			gauge(dRevision, float64(r.Revision))
			gauge(dRosterAge, age(received))
		} else {
			gauge(dRevision, 0)
		}
		n, oldest := st.JournalLag()
		gauge(dJournal, float64(n))
		gauge(dJournalLag, age(oldest))
		if size, err := st.Size(); err == nil {
			gauge(dStoreSize, float64(size))
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(st.Path()), &fs); err == nil {
			gauge(dDiskFree, float64(fs.Bavail)*float64(fs.Bsize))
		} else {
			ch <- prometheus.NewInvalidMetric(dDiskFree, err)
		}
	}
	if s.src.Synced != nil {
		gauge(dSynced, b2f(s.src.Synced()))
	}
	if s.src.Link != nil {
		l := s.src.Link()
		gauge(dLinkUp, b2f(l.Connected))
		gauge(dRefused, b2f(l.Refused != nil))
	}
	if s.src.Uplink != nil {
		u := s.src.Uplink()
		counter(dReconnects, float64(max(u.Connects-1, 0)))
		counter(dPublished, float64(u.Published))
		counter(dAcked, float64(u.Acked))
		counter(dRejected, float64(u.Rejected))
	}
	if s.src.ReaderUp != nil {
		gauge(dReaderUp, b2f(s.src.ReaderUp()))
	}
	if s.src.Reader != nil {
		r := s.src.Reader()
		counter(dRecoveries, float64(r.Recoveries))
		counter(dFrames, float64(r.Frames))
		for kind, v := range map[string]uint64{"spi": r.SPIErrors, "bad_frame": r.BadFrames, "collision": r.Collisions, "stuck": r.Stuck, "reset_failure": r.ResetFailures} {
			counter(dReaderErrs, float64(v), kind)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
