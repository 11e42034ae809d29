package enricher

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	pods, namespaces, filesOpen, filesWaiting, synced prometheus.Gauge
	partialFiles, renders, podsExpired                prometheus.Counter
	invalidAnnotations, apiErrors                     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		pods: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_enricher_cached_pods",
			Help: "Pods whose metadata is held, deleted pods in their grace period included."}),
		namespaces: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_enricher_cached_namespaces",
			Help: "Namespaces whose labels and settings are held."}),
		filesOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_enricher_open_files",
			Help: "Log files the collector tracks through the enricher."}),
		filesWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_enricher_waiting_files",
			Help: "Files held back waiting (at most --kubernetes-metadata-wait) for their pod's metadata."}),
		synced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_enricher_informers_synced",
			Help: "1 once the pod and namespace informers have listed once."}),
		partialFiles: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_enricher_partial_files_total",
			Help: "Files that started shipping with path metadata only because their pod was not known in time."}),
		renders: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_enricher_snapshot_renders_total",
			Help: "Snapshots rendered (on open and on pod or namespace changes)."}),
		podsExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_enricher_expired_pods_total",
			Help: "Deleted pods dropped after their files were read and the grace period passed."}),
		invalidAnnotations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_enricher_invalid_annotations_total",
			Help: "Namespace annotations with an invalid value, ignored."}, []string{"annotation"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_enricher_api_errors_total",
			Help: "Failed lists and watches of the Kubernetes API (the informers retry with backoff)."}, []string{"resource"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.pods, m.namespaces, m.filesOpen, m.filesWaiting, m.synced,
		m.partialFiles, m.renders, m.podsExpired, m.invalidAnnotations, m.apiErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("enricher: register metrics: %w", err)
		}
	}
	return m, nil
}
