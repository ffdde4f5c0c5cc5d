// Package metrics defines Quibly's Prometheus metrics in one registry.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector the server updates.
type Metrics struct {
	Registry *prometheus.Registry

	Connections    prometheus.Gauge
	MessagesTotal  *prometheus.CounterVec // by result: ok, error code
	SendAckSeconds prometheus.Histogram
	// SendStageSeconds splits a send by stage: queue (until the queue confirmed it
	// durable: Kafka acks=all, or stored standalone) and publish (the bus commit).
	SendStageSeconds *prometheus.HistogramVec
	// DeliverySeconds is from a message's publication on the bus to its being queued to
	// this node's clients.
	DeliverySeconds prometheus.Histogram
	Deliveries      prometheus.Counter
	SlowDropped     prometheus.Counter
	Recoveries      *prometheus.CounterVec // by result: recovered, expired
	BatchSize       prometheus.Histogram
	BatchSeconds    prometheus.Histogram
	BatchErrors     prometheus.Counter
	FanoutErrors    prometheus.Counter
	FanoutLate      prometheus.Counter
	// Rechecked counts sockets taken out of a channel by the recheck (chat), each a
	// change whose event was lost.
	Rechecked prometheus.Counter
	// MessagesRejected counts messages the store refused for good (parked).
	MessagesRejected prometheus.Counter
	IsLeader         prometheus.Gauge
}

// New registers Quibly's collectors plus the Go and process collectors. queueLag
// reports messages waiting for the batch writer (Kafka consumer lag when clustered).
// latencyBuckets are the message path's latency buckets: 0.1 ms to 6.6 s, doubling, so
// a stage of a fraction of a millisecond is told from one of a few.
func latencyBuckets() []float64 { return prometheus.ExponentialBuckets(0.0001, 2, 17) }

func New(queueLag func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry:    reg,
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "quibly_connections", Help: "Connected Socket.IO clients on this node."}),
		MessagesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quibly_messages_total",
			Help: "message:send requests by result (ok or the error code); rate() gives messages/s."}, []string{"result"}),
		SendAckSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quibly_send_ack_seconds",
			Help: "Time from receiving message:send to acking it.", Buckets: latencyBuckets()}),
		SendStageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "quibly_send_stage_seconds",
			Help:    "Time of each stage of message:send: accept (validation, nonce claim, order slot), queue (until durable in the queue), publish (the bus commit).",
			Buckets: latencyBuckets()}, []string{"stage"}),
		DeliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quibly_delivery_seconds",
			Help:    "Time from a message's publication on the bus (the bus's clock) to its being queued to this node's clients.",
			Buckets: latencyBuckets()}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_deliveries_total", Help: "Events queued to clients."}),
		SlowDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_slow_clients_dropped_total",
			Help: "Connections dropped because their send queue overflowed."}),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quibly_recoveries_total",
			Help: "Connection state recovery attempts by result."}, []string{"result"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quibly_batch_size",
			Help: "Messages per batch written to the store.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		BatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quibly_batch_write_seconds",
			Help: "Time to write one batch to the store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		BatchErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_batch_errors_total", Help: "Failed batch writes (retried)."}),
		FanoutErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_fanout_errors_total", Help: "Stored messages whose live fan-out failed."}),
		FanoutLate: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_fanout_late_total",
			Help: "Messages committed after their slot was given up, so delivered out of id order."}),
		MessagesRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_messages_rejected_total",
			Help: "Messages the store refused for good (their author or channel is gone), parked in rejected_messages."}),
		Rechecked: prometheus.NewCounter(prometheus.CounterOpts{Name: "quibly_recheck_evictions_total",
			Help: "Sockets taken out of a channel by the periodic membership recheck: changes whose event never reached the channel's order."}),
		IsLeader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "quibly_batch_writer_leader", Help: "1 when this node runs the batch writer."}),
	}
	reg.MustRegister(m.Connections, m.MessagesTotal, m.SendAckSeconds, m.SendStageSeconds, m.DeliverySeconds, m.Deliveries, m.SlowDropped, m.Recoveries,
		m.BatchSize, m.BatchSeconds, m.BatchErrors, m.FanoutErrors, m.FanoutLate, m.Rechecked, m.MessagesRejected, m.IsLeader,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quibly_queue_lag_messages",
			Help: "Messages accepted but not yet stored (Kafka consumer lag when clustered)."}, queueLag))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
