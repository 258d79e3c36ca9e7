// Package telemetry owns kiumbridge's Prometheus metrics: their names, what
// each measures and where its value comes from. Attempts to send texts are
// counted as the providers answer them (Texted); everything else — events
// stored and refused, the text queue, terminals, the broker, rosters — is
// read from the bridge and its store at each scrape, through the same code
// that answers kiumbridge status and kiumbridge texts, so a scrape never
// sees a stale copy and never disagrees with them. A scrape only reads: it
// never writes to the store nor waits for the broker. docs/operations.md
// lists every name.
package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"kiumtap/portal/api"
	"kiumtap/portal/sms"
	"kiumtap/portal/store"
)

// Sources are what the metrics read at each scrape; a nil source's
// metrics are left out.
type Sources struct {
	// Status is the bridge's status now (bridge.Bridge.Status): its
	// connection, centres, counts, refusals and stalled logs.
	Status func() api.Status
	// Terminals counts the terminals the bridge holds a status of, and
	// those online (bridge.Bridge.TerminalCount).
	Terminals func() (known, online int)
	// Queue reads the texts still to send (store.TextQueue.Queue).
	Queue func() (store.Queue, error)
	// Provider is the name of the text provider (sms.Provider.Name): its
	// counters are there from the start, at 0.
	Provider string
	// Now is the clock for ages; default time.Now.
	Now func() time.Time
	// Version of the build.
	Version string
}

// Reasons a text's attempt failed, the reason label of
// kiumbridge_texts_failed_total (Reason tells them apart).
const (
	// Refused: the provider refused the text for good (a number, the
	// sender number, the credentials); it is not sent again, and staff
	// must look (kiumbridge texts -state failed).
	Refused = "refused"
	// Timeout: no answer in time; sent again with the same key (the
	// parent may get it twice with a provider that has no idempotency
	// key).
	Timeout = "timeout"
	// Unreachable: the text could not be handed over (no connection, a
	// name not resolved, the console not written); sent again.
	Unreachable = "unreachable"
	// ProviderError: the provider answered with an error worth another
	// attempt (5xx, 429) or with what it does not document; sent again.
	ProviderError = "provider_error"
)

// Reasons are every reason, in their order.
var Reasons = []string{Refused, Timeout, Unreachable, ProviderError}

// Reason is the reason label of a failed attempt's error (sms.Error, as
// every provider returns).
func Reason(err error) string {
	var e *sms.Error
	var t interface{ Timeout() bool }
	switch {
	case sms.IsPermanent(err):
		return Refused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &t) && t.Timeout():
		return Timeout
	case errors.As(err, &e) && e.Status == 0 && e.Err != nil:
		return Unreachable
	}
	return ProviderError
}

// Metrics is kiumbridge's registry and the counters it keeps itself.
type Metrics struct {
	// Registry holds every metric, the Go runtime's and the process's
	// too; serve it with internal/metrics.
	Registry *prometheus.Registry

	sent, failed *prometheus.CounterVec
	healthy      prometheus.Gauge
}

// New registers the metrics over the sources.
func New(src Sources) *Metrics {
	if src.Now == nil {
		src.Now = time.Now
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiumbridge_texts_sent_total",
			Help: "Texts the provider took since kiumbridge started, by provider.",
		}, []string{"provider"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiumbridge_texts_failed_total",
			Help: "Attempts to send a text that failed since kiumbridge started, by provider and reason: refused (for good: not sent again, staff must look), timeout, unreachable, provider_error (each sent again with backoff).",
		}, []string{"provider", "reason"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiumbridge_healthy",
			Help: "1 while the watchdog's checks (the store answers a read, the bridge's state is not locked) pass, 0 while they fail.",
		}),
	}
	// The provider's counters are there from the start, at 0: a rate over
	// a counter that appears late misses its first increase.
	if src.Provider != "" {
		m.sent.WithLabelValues(src.Provider)
		for _, r := range Reasons {
			m.failed.WithLabelValues(src.Provider, r)
		}
	}
	m.healthy.Set(1)
	m.Registry.MustRegister(m.sent, m.failed, m.healthy, &state{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Texted counts one attempt to hand a text to provider: err is nil when
// the provider took it (bridge.Options.Attempted).
func (m *Metrics) Texted(provider string, err error) {
	if err == nil {
		m.sent.WithLabelValues(provider).Inc()
		return
	}
	m.failed.WithLabelValues(provider, Reason(err)).Inc()
}

// Healthy records the watchdog's verdict.
func (m *Metrics) Healthy(ok bool) { m.healthy.Set(b2f(ok)) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dIngested   = desc("kiumbridge_events_ingested_total", "Terminals' events stored, each once and in order, since kiumbridge started.")
	dEvRefused  = desc("kiumbridge_events_refused_total", "Terminals' events taken but not stored since kiumbridge started, by reason: duplicate (stored before: acknowledged again), beyond_gap (after a missing event, dropped: the terminal is asked to send again from the gap).", "reason")
	dMsgRefused = desc("kiumbridge_messages_refused_total", "Events messages refused whole since kiumbridge started (not stored nor acknowledged; the terminal is told why), by reason: malformed (does not decode, or events of another device than its topic's), unknown_centre (no roster source for its centre).", "reason")
	dTermRefuse = desc("kiumbridge_terminals_refused", "Terminals whose events this bridge refuses now, until it stores their events again (kiumbridge status says why).")
	dStalled    = desc("kiumbridge_logs_stalled", "Terminals' event logs whose gap does not fill (events lost at the portal: a store restored from a backup?); an operator must look (kiumctl gaps).")
	dQueue      = desc("kiumbridge_text_queue", "Texts still to send, by state: pending (waiting for their time: new, or after a failed attempt), sending (with the provider now).", "state")
	dQueueAge   = desc("kiumbridge_text_queue_oldest_age_seconds", "Age of the oldest text still to send (since its tap was stored); 0 when none waits.")
	dKnown      = desc("kiumbridge_terminals_known", "Terminals the bridge holds a status of (each terminal's retained status), of every centre.")
	dOnline     = desc("kiumbridge_terminals_online", "Terminals whose status says they are online (connected to the broker).")
	dBrokerUp   = desc("kiumbridge_broker_up", "1 while the bridge is connected to the broker, 0 while it is trying to reach it (its log says why).")
	dCentres    = desc("kiumbridge_centres", "Centres served: the roster sources loaded.")
	dPublished  = desc("kiumbridge_rosters_published_total", "Roster revisions published since kiumbridge started (each change of a centre's source makes one).")
	dBuild      = desc("kiumbridge_build_info", "1, with the build's version.", "version")
)

// state reads the bridge and its store at each scrape.
type state struct{ src Sources }

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dIngested, dEvRefused, dMsgRefused, dTermRefuse, dStalled, dQueue, dQueueAge,
		dKnown, dOnline, dBrokerUp, dCentres, dPublished, dBuild} {
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
	gauge(dBuild, 1, s.src.Version)
	if s.src.Status != nil {
		st := s.src.Status()
		in := st.Stats.Ingest
		counter(dIngested, float64(in.Stored))
		counter(dEvRefused, float64(in.Duplicates), "duplicate")
		counter(dEvRefused, float64(in.OutOfOrder), "beyond_gap")
		counter(dMsgRefused, float64(in.Malformed), "malformed")
		counter(dMsgRefused, float64(in.UnknownCentre), "unknown_centre")
		gauge(dTermRefuse, float64(len(st.Refused)))
		gauge(dStalled, float64(len(st.Stalled)))
		gauge(dBrokerUp, b2f(st.Connected))
		gauge(dCentres, float64(len(st.Centres)))
		counter(dPublished, float64(st.Stats.Published))
	}
	if s.src.Terminals != nil {
		known, online := s.src.Terminals()
		gauge(dKnown, float64(known))
		gauge(dOnline, float64(online))
	}
	if s.src.Queue != nil {
		q, err := s.src.Queue()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(dQueue, err)
			return
		}
		gauge(dQueue, float64(q.Pending), store.JobPending)
		gauge(dQueue, float64(q.Sending), store.JobSending)
		age := 0.0
		if now := s.src.Now(); q.Pending+q.Sending > 0 && now.After(q.Oldest) {
			age = now.Sub(q.Oldest).Seconds()
		}
		gauge(dQueueAge, age)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
