package router

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logrouter/logrouter/pipeline/counters"
)

type metrics struct {
	linesRead, bytesRead, linesAcked, bytesAcked *prometheus.CounterVec
	produceErrors, topicErrors, splitLines       *prometheus.CounterVec
	parseErrors, invalidUTF8, excludedLines      *prometheus.CounterVec
	refusedLines                                 *prometheus.CounterVec
	alreadyInKafka, limitLines                   *prometheus.CounterVec
	retentionRefused                             *prometheus.CounterVec
	rotations, pathErrors                        *prometheus.CounterVec
	scanErrors, unreadableFiles, kafkaErrors     *prometheus.CounterVec
	unreadableNow                                *prometheus.GaugeVec
	lostBytes, lostFiles                         *prometheus.CounterVec
	readbackErrors                               prometheus.Counter
	inFlight                                     prometheus.Gauge
	openFiles                                    prometheus.Gauge
	bytesBehind                                  *prometheus.GaugeVec
	checkpointAge                                prometheus.Gauge
	checkpointErrors                             prometheus.Counter
	applies, applyRefused                        prometheus.Counter
	appliedNamespaces                            prometheus.Gauge
	pipeLines                                    *prometheus.CounterVec
	pipes                                        map[counters.Key]*pipeMetrics
	mu                                           sync.Mutex
	ns                                           map[string]*nsMetrics
}

// nsMetrics caches one namespace's series so the hot path never looks labels up.
type nsMetrics struct {
	linesRead, bytesRead, linesAcked, bytesAcked prometheus.Counter
	produceErrors, topicErrors, splitLines       prometheus.Counter
	parseErrors, invalidUTF8, excludedLines      prometheus.Counter
	alreadyInKafka, retentionRefused             prometheus.Counter
	refusedLines                                 prometheus.Counter
	limitDropped, limitThrottled                 prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, budgetUsed, oldestUnacked func() float64) *metrics {
	const ns, sub = "logrouter", "collector"
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	g := func(name, help string) prometheus.Gauge {
		v := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
		reg.MustRegister(v)
		return v
	}
	m := &metrics{
		linesRead:        cv("lines_read_total", "Log lines (or chunks of cut lines) read, per namespace.", "namespace"),
		bytesRead:        cv("bytes_read_total", "Message bytes read, per namespace.", "namespace"),
		linesAcked:       cv("lines_acked_total", "Lines acknowledged by Kafka, per namespace.", "namespace"),
		bytesAcked:       cv("bytes_acked_total", "Message bytes acknowledged by Kafka, per namespace.", "namespace"),
		produceErrors:    cv("produce_errors_total", "Records Kafka did not accept (they are read again after a backoff), per namespace.", "namespace"),
		topicErrors:      cv("topic_errors_total", "Failures to create, configure or name a namespace's topic, or to read its max.message.bytes, and reads held back because that limit is too small for one record, per namespace.", "namespace"),
		splitLines:       cv("truncated_lines_total", "Lines longer than --max-line-bytes, shipped as split chunks, per namespace.", "namespace"),
		parseErrors:      cv("parse_errors_total", "Lines whose CRI or docker framing could not be parsed (shipped raw with parse_error), per namespace.", "namespace"),
		invalidUTF8:      cv("invalid_utf8_lines_total", "Lines with invalid UTF-8 (shipped with message_base64), per namespace.", "namespace"),
		excludedLines:    cv("excluded_lines_total", "Lines skipped because their namespace opted out, per namespace.", "namespace"),
		refusedLines:     cv("refused_lines_total", "Container log lines refused (read, not produced) because their namespace is a node source's (node-system, node-<source>) or their topic (or, for lines a tenant pipeline selects, its output topic) is a node source's topic, per namespace.", "namespace"),
		retentionRefused: cv("retention_refused_topics_total", "Topics whose namespace's logrouter.io/retention Kafka refused to set (no ALTER_CONFIGS for the collector): their lines are produced with the topic's current retention; counted once per topic and retention, per namespace.", "namespace"),
		alreadyInKafka:   cv("lines_already_in_kafka_total", "Lines read again (after a restart or a produce failure) and not sent, because Kafka already had their records, per namespace.", "namespace"),
		limitLines:       cv("limit_lines_total", "Physical lines beyond the namespace's limit on this node (LogRouterPolicy limits), per namespace and action: throttled (left in the file and read later: each line counted once, when Kafka has it) or dropped (read, not produced: each line counted once, with the lines after it when Kafka has them).", "namespace", "action"),
		rotations:        cv("rotations_total", "Rotations seen, by kind (rename, truncate, copy).", "kind"),
		pathErrors:       cv("path_errors_total", "Log files skipped because their path could not be parsed.", "dir"),
		scanErrors:       cv("scan_errors_total", "Failed reads of a log directory (the files in it are not collected): dir is containers (--log-dir), pods (--pods-dir and its subdirectories) or node (a node file source's directory; one that does not exist is no error: logrouter_collector_node_file_dirs_missing).", "dir"),
		unreadableFiles:  cv("unreadable_files_total", "Log files found that cannot be read (permission, not a regular file, symlink loop, dangling symlink), counted when first seen so, per namespace and reason.", "namespace", "reason"),
		kafkaErrors:      cv("kafka_errors_total", "Checks (every second) that found lines waiting longer than --ack-timeout for Kafka: reason unreachable (no broker answered) or no_ack (a broker answered).", "reason"),
		unreadableNow: func() *prometheus.GaugeVec {
			v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "unreadable_files", Help: "Log files that cannot be read at the last scan, per namespace."}, []string{"namespace"})
			reg.MustRegister(v)
			return v
		}(),
		lostBytes:      cv("lost_bytes_total", "Bytes of log files deleted before they were read (found at start: gone since their checkpoint), per namespace and reason.", "namespace", "reason"),
		lostFiles:      cv("lost_files_total", "Log files deleted before they were read to their end, per namespace and reason.", "namespace", "reason"),
		readbackErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "readback_errors_total", Help: "Failed steps of the restart read-back (lines it could not look up are sent again)."}),
		inFlight:       g("records_in_flight", "Records produced and not yet acknowledged."),
		openFiles:      g("open_files", "Log files open."),
		bytesBehind: func() *prometheus.GaugeVec {
			v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "file_bytes_behind", Help: "File size minus its checkpoint, per open file."}, []string{"namespace", "pod", "container", "file"})
			reg.MustRegister(v)
			return v
		}(),
		checkpointAge:     g("checkpoint_age_seconds", "Seconds since the checkpoints were last saved."),
		checkpointErrors:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "checkpoint_errors_total", Help: "Failed checkpoint saves."}),
		ns:                map[string]*nsMetrics{},
		pipes:             map[counters.Key]*pipeMetrics{},
		pipeLines:         cv("pipeline_lines_total", "Records and lines per tenant pipeline and outcome: emitted (records, a joined one once), dropped (keep/drop condition), sampled_out, parse_failed (records marked with fields_error), panicked (a step panicked: shipped raw), held_flushed (joined records a flush emitted: timeout, rotation, shutdown, pipeline change), joined (input lines joined into a record after its first), bypassed (split chunks and lines with unparseable framing, shipped raw without the pipeline), limit_dropped (lines beyond the namespace's limit, action drop), limit_throttled (lines that waited for the namespace's limit, action throttle, before they were read: each counted once, when Kafka has it, along with whatever the pipeline did with it).", "namespace", "pipeline", "outcome"),
		applies:           prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "pipeline_applies_total", Help: "Desired states of the tenant pipelines and policy applied (each a whole state from the pipeline source)."}),
		applyRefused:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "pipeline_sets_refused_total", Help: "Pipeline sets refused at apply because they were filed under another namespace than their own."}),
		appliedNamespaces: g("pipeline_namespaces", "Namespaces with pipelines in the last applied state."),
	}
	reg.MustRegister(m.checkpointErrors, m.readbackErrors, m.applies, m.applyRefused)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "oldest_unacked_line_age_seconds", Help: "Age of the oldest line produced and not yet acknowledged by Kafka (0: none waiting)."}, oldestUnacked))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "buffered_bytes", Help: "Bytes held in the budget (read, not yet acknowledged)."}, budgetUsed))
	return m
}

func (m *metrics) forNamespace(ns string) *nsMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.ns[ns]; n != nil {
		return n
	}
	n := &nsMetrics{
		linesRead: m.linesRead.WithLabelValues(ns), bytesRead: m.bytesRead.WithLabelValues(ns),
		linesAcked: m.linesAcked.WithLabelValues(ns), bytesAcked: m.bytesAcked.WithLabelValues(ns),
		produceErrors: m.produceErrors.WithLabelValues(ns), topicErrors: m.topicErrors.WithLabelValues(ns),
		splitLines: m.splitLines.WithLabelValues(ns), parseErrors: m.parseErrors.WithLabelValues(ns),
		invalidUTF8: m.invalidUTF8.WithLabelValues(ns), excludedLines: m.excludedLines.WithLabelValues(ns),
		refusedLines:   m.refusedLines.WithLabelValues(ns),
		alreadyInKafka: m.alreadyInKafka.WithLabelValues(ns), retentionRefused: m.retentionRefused.WithLabelValues(ns),
		limitDropped: m.limitLines.WithLabelValues(ns, "dropped"), limitThrottled: m.limitLines.WithLabelValues(ns, "throttled"),
	}
	m.ns[ns] = n
	return n
}
