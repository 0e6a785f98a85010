package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
)

// Sources are read at every scrape. A nil source's metrics are left out.
type Sources struct {
	Bridge func() bridge.Stats
	Acks   func() map[devices.AckStatus]uint64
	Lamps  func() int // lamps identified and connected now
	Broker func() broker.Info
	// Upstream is the connection to an external broker in cluster mode;
	// nil with the embedded broker.
	Upstream func() Upstream
}

// Upstream is the state of the connection to an external broker.
type Upstream struct {
	Connected     bool
	Buffered      int   // publishes waiting for the connection
	BufferDropped int64 // publishes dropped, buffer full, ever
}

// Metrics is a Prometheus registry with lampgw's metrics and the Go
// runtime's.
type Metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
}

// New returns the metrics for src.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lampgw", Subsystem: "bridge", Name: "report_publish_seconds",
			Help: "Time from a lamp frame's arrival to the last MQTT publish it caused.",
			// 25 µs to about 0.8 s: in-process publishes take tens of
			// microseconds; a slow one is the news.
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}),
	}
	m.reg.MustRegister(m.latency, &collector{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveReport records one report's latency; it is the bridge's
// Options.ObserveReport.
func (m *Metrics) ObserveReport(d time.Duration) { m.latency.Observe(d.Seconds()) }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("lampgw", subsystem, name), help, labels, nil)
}

var (
	lampsDesc       = desc("bridge", "lamps_connected", "Lamps identified and connected now.")
	connsDesc       = desc("bridge", "connections", "Lamp sockets open now, identified or not.")
	framesInDesc    = desc("bridge", "frames_received_total", "Frames from lamps, by result: ok, partial (some keys refused), bad (nothing usable).", "result")
	framesOutDesc   = desc("bridge", "frames_sent_total", "Frames written to lamps, by kind: command or error.", "kind")
	endsDesc        = desc("bridge", "disconnects_total", "Ended lamp connections, by reason.", "reason")
	refusedDesc     = desc("bridge", "connections_refused_total", "Lamp connections refused by a limit: total or per_addr.", "limit")
	rateDesc        = desc("bridge", "frames_rate_limited_total", "Frames held back by the per-lamp frame rate.")
	authFailDesc    = desc("bridge", "auth_failures_total", "Refused lamp identifications.")
	acksDesc        = desc("commands", "acks_total", "Command progress steps, by status; confirmed, unconfirmed, superseded, expired and rejected are final.", "status")
	clientsDesc     = desc("mqtt", "clients_connected", "MQTT clients connected now.")
	msgsInDesc      = desc("mqtt", "messages_received_total", "PUBLISH packets received from MQTT clients.")
	msgsOutDesc     = desc("mqtt", "messages_sent_total", "PUBLISH packets sent to MQTT clients.")
	msgsDroppedDesc = desc("mqtt", "messages_dropped_total", "Messages dropped for MQTT clients too slow to take them.")
	retainedDesc    = desc("mqtt", "retained_messages", "Retained messages held by the broker now.")
	subsDesc        = desc("mqtt", "subscriptions", "Subscriptions held by the broker now.")
	upConnDesc      = desc("upstream", "connected", "1 while the connection to the external broker (--broker-url) is up.")
	upBufDesc       = desc("upstream", "buffered_messages", "Publishes waiting for the external broker to be reachable again.")
	upDropDesc      = desc("upstream", "buffer_dropped_total", "Publishes dropped while the external broker was unreachable and the buffer full.")
)

// collector reads the sources at scrape time.
type collector struct{ src Sources }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lampsDesc, connsDesc, framesInDesc, framesOutDesc, endsDesc, refusedDesc,
		rateDesc, authFailDesc, acksDesc, clientsDesc, msgsInDesc, msgsOutDesc, msgsDroppedDesc, retainedDesc, subsDesc,
		upConnDesc, upBufDesc, upDropDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if c.src.Lamps != nil {
		gauge(lampsDesc, float64(c.src.Lamps()))
	}
	if c.src.Bridge != nil {
		s := c.src.Bridge()
		gauge(connsDesc, float64(s.Connections))
		counter(framesInDesc, float64(s.FramesOK), "ok")
		counter(framesInDesc, float64(s.FramesPartial), "partial")
		counter(framesInDesc, float64(s.BadFrames), "bad")
		counter(framesOutDesc, float64(s.CommandFrames), "command")
		counter(framesOutDesc, float64(s.ErrorLines), "error")
		for reason, n := range s.Disconnects {
			counter(endsDesc, float64(n), reason)
		}
		counter(refusedDesc, float64(s.RefusedTotal), "total")
		counter(refusedDesc, float64(s.RefusedPerAddr), "per_addr")
		counter(rateDesc, float64(s.RateLimited))
		counter(authFailDesc, float64(s.AuthFailures))
	}
	if c.src.Acks != nil {
		acks := c.src.Acks()
		for _, st := range devices.Statuses {
			counter(acksDesc, float64(acks[st]), string(st))
		}
	}
	if c.src.Broker != nil {
		i := c.src.Broker()
		gauge(clientsDesc, float64(i.ClientsConnected))
		counter(msgsInDesc, float64(i.MessagesReceived))
		counter(msgsOutDesc, float64(i.MessagesSent))
		counter(msgsDroppedDesc, float64(i.MessagesDropped))
		gauge(retainedDesc, float64(i.Retained))
		gauge(subsDesc, float64(i.Subscriptions))
	}
	if c.src.Upstream != nil {
		u := c.src.Upstream()
		up := 0.0
		if u.Connected {
			up = 1
		}
		gauge(upConnDesc, up)
		gauge(upBufDesc, float64(u.Buffered))
		counter(upDropDesc, float64(u.BufferDropped))
	}
}
