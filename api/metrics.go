package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/api/live"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	streams       prometheus.Gauge
	recordsSent   prometheus.Counter
	bytesSent     prometheus.Counter
	recordsHidden *prometheus.CounterVec
	retentionSkip prometheus.Counter
	archiveErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logrouter_gateway_requests_total",
			Help: "Requests by endpoint, HTTP status and problem code (empty on success).",
		}, []string{"endpoint", "status", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logrouter_gateway_request_duration_seconds",
			Help:    "Request duration by endpoint (streams last as long as the client stays).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"endpoint"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "logrouter_gateway_streams_active",
			Help: "Open live streams.",
		}),
		recordsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_records_sent_total",
			Help: "Records sent to clients (live and archive).",
		}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_response_bytes_total",
			Help: "Response body bytes sent.",
		}),
		recordsHidden: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logrouter_gateway_records_not_sent_total",
			Help: "Records read from Kafka and not sent, by reason: filtered (the client's filters), foreign_namespace (namespace header differs from the path), bad_schema, bad_value.",
		}, []string{"reason"}),
		retentionSkip: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_retention_skipped_records_total",
			Help: "Records a client's position pointed at that retention had already deleted (reported to it as skipped events).",
		}),
		archiveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logrouter_gateway_archive_errors_total",
			Help: "Archive queries that failed after the response started.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.streams, m.recordsSent, m.bytesSent, m.recordsHidden, m.retentionSkip, m.archiveErrors} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register gateway metrics: %w", err)
		}
	}
	for _, r := range live.Reasons[1:] {
		m.recordsHidden.WithLabelValues(r)
	}
	return m, nil
}
