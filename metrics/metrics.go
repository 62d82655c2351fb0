// Package metrics exposes a server.Helper to Prometheus: every counter and
// gauge of server.Stats, read when Prometheus scrapes, plus four histograms
// fed as things happen (callback latency by callback, Redis publish
// latency, connect-to-connected time, outbox bytes at enqueue).
//
// Nothing is registered globally. In an fx app, provide a
// prometheus.Registerer and the component registers a Metrics on it; without
// fx:
//
//	m := metrics.New()
//	opts.Observer = m
//	h, err := server.New(opts)
//	…
//	m.Attach(h)
//	reg.MustRegister(m)
//
// Every name starts with wscomponent_ and carries its unit. To tell
// instances or helpers apart, wrap the registerer
// (prometheus.WrapRegistererWith).
package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ignis-go/wscomponent/server"
)

const namespace = "wscomponent"

// Metrics is a prometheus.Collector over one Helper and the
// server.Observer that feeds its histograms. Give it to server.Options as
// Observer before New, then Attach the Helper.
type Metrics struct {
	helper atomic.Pointer[server.Helper]

	callback *prometheus.HistogramVec
	publish  prometheus.Histogram
	connect  prometheus.Histogram
	outbox   prometheus.Histogram
	// Cached children of callback for the names the Helper uses, so the hot
	// path does not look the label up.
	callbackByName map[string]prometheus.Observer
}

// Callback names the Helper reports (the callback label's values).
var callbackNames = []string{
	"authenticate", "handshake", "validate room", "client connected",
	"client disconnected", "disconnect hook", "message",
	"outbound transformer", "inbound transformer",
}

// New returns a Metrics with empty histograms and no Helper attached.
func New() *Metrics {
	m := &Metrics{
		callback: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "callback_duration_seconds",
			Help:      "Time spent in application callbacks, by callback (errors and panics included).",
			Buckets:   []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"callback"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "redis_publish_duration_seconds",
			Help:      "Time from a publish call until Redis answered, queueing for the shared pipeline included.",
			Buckets:   []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}),
		connect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "connect_duration_seconds",
			Help:      "Time from the WebSocket upgrade until the client was sent connected.",
			Buckets:   []float64{.001, .005, .01, .05, .1, .5, 1, 5, 15},
		}),
		outbox: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "outbox_bytes",
			Help:      "Bytes waiting in a client's outbox when a frame was queued (frames written at once are not counted).",
			Buckets:   prometheus.ExponentialBuckets(256, 4, 8), // 256 B … 4 MiB
		}),
		callbackByName: make(map[string]prometheus.Observer, len(callbackNames)),
	}
	for _, n := range callbackNames {
		m.callbackByName[n] = m.callback.WithLabelValues(n)
	}
	return m
}

// Attach sets the Helper whose Stats the collector reports. Until then only
// the histograms are reported.
func (m *Metrics) Attach(h *server.Helper) { m.helper.Store(h) }

// ObserveCallback implements server.Observer.
func (m *Metrics) ObserveCallback(name string, d time.Duration) {
	o, ok := m.callbackByName[name]
	if !ok {
		o = m.callback.WithLabelValues(name)
	}
	o.Observe(d.Seconds())
}

// ObservePublish implements server.Observer.
func (m *Metrics) ObservePublish(d time.Duration, _ error) { m.publish.Observe(d.Seconds()) }

// ObserveConnected implements server.Observer.
func (m *Metrics) ObserveConnected(d time.Duration) { m.connect.Observe(d.Seconds()) }

// ObserveOutbox implements server.Observer.
func (m *Metrics) ObserveOutbox(bytes int) { m.outbox.Observe(float64(bytes)) }

// stat is one value of server.Stats as a Prometheus metric.
type stat struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *server.Stats) float64
}

func counter(name, help string, v func(s *server.Stats) uint64) stat {
	return stat{
		desc:  prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil),
		kind:  prometheus.CounterValue,
		value: func(s *server.Stats) float64 { return float64(v(s)) },
	}
}

func gauge(name, help string, v func(s *server.Stats) float64) stat {
	return stat{
		desc:  prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil),
		kind:  prometheus.GaugeValue,
		value: v,
	}
}

var connectionsDesc = prometheus.NewDesc(namespace+"_connections", "Connections right now, by state.", []string{"state"}, nil)

// stats lists every Stats field but the per-state connection counts,
// which share connectionsDesc.
var stats = []stat{
	gauge("encrypted_connections", "Connections whose messages go through the outbound transformer.", func(s *server.Stats) float64 { return float64(s.Encrypted) }),
	gauge("backpressured_connections", "Connections over BackpressureLimit right now.", func(s *server.Stats) float64 { return float64(s.Backpressured) }),
	gauge("users", "Users with at least one local connection.", func(s *server.Stats) float64 { return float64(s.Users) }),
	gauge("rooms", "Rooms with at least one local member.", func(s *server.Stats) float64 { return float64(s.Rooms) }),
	gauge("redis_subscribed", "1 while the Redis subscription is live.", func(s *server.Stats) float64 {
		if s.RedisSubscribed {
			return 1
		}
		return 0
	}),
	gauge("redis_last_gap_seconds", "Length of the last Redis subscription outage.", func(s *server.Stats) float64 { return s.RedisLastGap.Seconds() }),
	{
		desc:  prometheus.NewDesc(namespace+"_redis_downtime_seconds_total", "Time the Redis subscription was down, finished outages.", nil, nil),
		kind:  prometheus.CounterValue,
		value: func(s *server.Stats) float64 { return s.RedisDowntime.Seconds() },
	},
	counter("connections_accepted_total", "Connections upgraded.", func(s *server.Stats) uint64 { return s.Accepted }),
	counter("connections_closed_total", "Connections ended.", func(s *server.Stats) uint64 { return s.Closed }),
	counter("auth_successes_total", "Clients authenticated.", func(s *server.Stats) uint64 { return s.AuthSuccesses }),
	counter("auth_failures_total", "Authenticate calls that rejected or failed.", func(s *server.Stats) uint64 { return s.AuthFailures }),
	counter("auth_timeouts_total", "4001 closes after authenticate was sent.", func(s *server.Stats) uint64 { return s.AuthTimeouts }),
	counter("handshake_failures_total", "Encryption handshakes that failed (4004).", func(s *server.Stats) uint64 { return s.HandshakeFailures }),
	counter("heartbeat_timeouts_total", "4002 closes.", func(s *server.Stats) uint64 { return s.HeartbeatTimeouts }),
	counter("messages_in_total", "Frames read from clients.", func(s *server.Stats) uint64 { return s.MessagesIn }),
	counter("messages_out_total", "Frames queued or written for clients.", func(s *server.Stats) uint64 { return s.MessagesOut }),
	counter("messages_dropped_total", "Frames not delivered (backpressure, transformer errors, closing).", func(s *server.Stats) uint64 { return s.MessagesDropped }),
	counter("backpressure_events_total", "Times a client went over BackpressureLimit.", func(s *server.Stats) uint64 { return s.BackpressureEvents }),
	counter("redis_published_total", "Messages Redis took.", func(s *server.Stats) uint64 { return s.RedisPublished }),
	counter("redis_publish_errors_total", "Publishes that failed.", func(s *server.Stats) uint64 { return s.RedisPublishErrors }),
	counter("redis_received_total", "Messages received from Redis.", func(s *server.Stats) uint64 { return s.RedisReceived }),
	counter("redis_malformed_total", "Malformed Redis messages dropped.", func(s *server.Stats) uint64 { return s.RedisMalformed }),
	counter("redis_outages_total", "Times the Redis subscription was lost.", func(s *server.Stats) uint64 { return s.RedisOutages }),
	counter("redis_resubscribes_total", "Times the Redis subscription came back.", func(s *server.Stats) uint64 { return s.RedisResubscribes }),
	counter("rate_limited_total", "Clients closed for sending too fast.", func(s *server.Stats) uint64 { return s.RateLimited }),
	counter("refused_upgrades_total", "Upgrades refused over MaxPendingConnections.", func(s *server.Stats) uint64 { return s.RefusedUpgrades }),
	counter("callback_errors_total", "Application callbacks that returned an error.", func(s *server.Stats) uint64 { return s.CallbackErrors }),
	counter("callback_panics_total", "Application callbacks that panicked.", func(s *server.Stats) uint64 { return s.CallbackPanics }),
	counter("control_received_total", "Fleet-wide control messages acted on.", func(s *server.Stats) uint64 { return s.ControlReceived }),
	counter("control_malformed_total", "Malformed control messages dropped.", func(s *server.Stats) uint64 { return s.ControlMalformed }),
	counter("sessions_expired_total", "4006 closes at AuthResult.ExpiresAt.", func(s *server.Stats) uint64 { return s.SessionsExpired }),
	counter("refreshes_total", "Successful session refreshes.", func(s *server.Stats) uint64 { return s.Refreshes }),
	counter("refresh_failures_total", "Refused or failed session refreshes.", func(s *server.Stats) uint64 { return s.RefreshFailures }),
	counter("log_lines_suppressed_total", "Log lines left out by sampling.", func(s *server.Stats) uint64 { return s.LogLinesSuppressed }),
	counter("presence_errors_total", "Presence writes Redis refused (repaired by the next refresh).", func(s *server.Stats) uint64 { return s.PresenceErrors }),
	counter("catch_up_messages_total", "History-room messages missed during Redis gaps and delivered from the streams.", func(s *server.Stats) uint64 { return s.CatchUpMessages }),
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	for _, st := range stats {
		ch <- st.desc
	}
	m.callback.Describe(ch)
	m.publish.Describe(ch)
	m.connect.Describe(ch)
	m.outbox.Describe(ch)
}

// Collect implements prometheus.Collector. It takes one Stats snapshot per
// scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	if h := m.helper.Load(); h != nil {
		s := h.Stats()
		for _, st := range []struct {
			state string
			n     int
		}{
			{"unauthorized", s.Unauthorized}, {"authenticating", s.Authenticating},
			{"handshaking", s.Handshaking}, {"authenticated", s.Authenticated},
		} {
			ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(st.n), st.state)
		}
		for _, st := range stats {
			ch <- prometheus.MustNewConstMetric(st.desc, st.kind, st.value(&s))
		}
	}
	m.callback.Collect(ch)
	m.publish.Collect(ch)
	m.connect.Collect(ch)
	m.outbox.Collect(ch)
}

var (
	_ prometheus.Collector = (*Metrics)(nil)
	_ server.Observer      = (*Metrics)(nil)
)
