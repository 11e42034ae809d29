package controller

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reconciles   *prometheus.CounterVec
	duration     prometheus.Histogram
	statusWrites prometheus.Counter
	topicErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_controller_reconciles_total",
			Help: "Pipeline reconciliations by result: ok, invalid, topic_failed, policy_invalid, error."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logrouter_controller_reconcile_duration_seconds",
			Help: "Time to reconcile one pipeline.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_status_writes_total",
			Help: "Pipeline status patches written (a reconciliation that changes nothing writes none)."}),
		topicErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_controller_topic_errors_total",
			Help: "Failed attempts to create or configure a namespace's topics (retried with backoff)."}),
	}
	reg.MustRegister(m.reconciles, m.duration, m.statusWrites, m.topicErrors)
	return m
}
