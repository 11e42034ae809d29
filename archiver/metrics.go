package archiver

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	lag          *prometheus.GaugeVec
	records      *prometheus.CounterVec
	inputBytes   prometheus.Counter
	objects      *prometheus.CounterVec
	objectBytes  prometheus.Counter
	upload       prometheus.Histogram
	flushes      *prometheus.CounterVec
	errors       *prometheus.CounterVec
	invalid      *prometheus.CounterVec
	conflicts    prometheus.Counter
	spoolBytes   prometheus.Gauge
	partitions   prometheus.Gauge
	stagingSwept prometheus.Counter
	// uploadFailures is the number of consecutive failed archive attempts (0 after a success).
	uploadFailures prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logrouter_archiver_consumer_lag_records",
			Help: "Records in Kafka not yet archived, per topic (high watermark minus archived position)."}, []string{"topic"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_archiver_records_total",
			Help: "Records consumed into spools, per topic."}, []string{"topic"}),
		inputBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_archiver_input_bytes_total",
			Help: "Bytes of record values archived (claimed objects only)."}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_archiver_objects_written_total",
			Help: "Data objects claimed and published, per format."}, []string{"format"}),
		objectBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_archiver_object_bytes_written_total",
			Help: "Bytes of data objects published."}),
		upload: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logrouter_archiver_upload_duration_seconds",
			Help:    "Time from sealing an offset range to its claim and publication.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_archiver_flushes_total",
			Help: "Offset ranges sealed, by reason: size, age, hour, shutdown."}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_archiver_errors_total",
			Help: "Errors by operation: fetch, encode, upload, claim, publish, commit, recover, sweep."}, []string{"op"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logrouter_archiver_invalid_records_total",
			Help: "Records archived with a parse_error because their value or headers were invalid, by reason."}, []string{"reason"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_archiver_claim_conflicts_total",
			Help: "Offset ranges another writer had claimed first (their upload was discarded)."}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_archiver_spool_bytes",
			Help: "Bytes of sealed ranges on local disk waiting for upload."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_archiver_assigned_partitions",
			Help: "Partitions this archiver owns."}),
		stagingSwept: prometheus.NewCounter(prometheus.CounterOpts{Name: "logrouter_archiver_staging_swept_objects_total",
			Help: "Abandoned staging objects deleted."}),
		uploadFailures: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logrouter_archiver_upload_consecutive_failures",
			Help: "Archive attempts (encode, upload, claim, publish) failed in a row, of any range; 0 after a success."}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.records, m.inputBytes, m.objects, m.objectBytes, m.upload, m.flushes,
			m.errors, m.invalid, m.conflicts, m.spoolBytes, m.partitions, m.stagingSwept, m.uploadFailures)
	}
	return m
}

// registerHealth adds the gauges computed when scraped.
func registerHealth(reg prometheus.Registerer, oldestUnarchived, kafkaContact func() float64) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logrouter_archiver_oldest_unarchived_record_age_seconds",
			Help: "Age (by Kafka timestamp) of the oldest record consumed but not yet archived; 0 when none waits."}, oldestUnarchived),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logrouter_archiver_kafka_contact_age_seconds",
			Help: "Seconds since a broker last answered a request."}, kafkaContact),
	)
}
