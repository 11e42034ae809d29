package router

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/logrouter/logrouter/pipeline/counters"
)

// PipelineCounters is the collector as the source of a counters.Publisher.
func (c *Collector) PipelineCounters() counters.Source { return pipelineCounters{c} }

type pipelineCounters struct{ c *Collector }

// Totals returns this collector's cumulative counts per tenant pipeline since it started,
// read from its own per-pipeline counters (logrouter_collector_pipeline_lines_total), in the
// form counters.Publisher publishes. A pipeline stays in the map after it is removed until
// Forget deletes its series. Lines a runner holds (multiline) are counted when their record
// is emitted.
//
// Selected is every line that reached the pipeline: the records it emitted, dropped or sampled
// out, the lines joined into them, the lines that bypassed its steps and the lines its
// namespace's limit dropped. Throttled are the lines that waited for the namespace's limit (each
// once): they are not in Selected until they are read and reach the pipeline.
func (s pipelineCounters) Totals() map[counters.Key]counters.Counts {
	m := s.c.metrics
	m.mu.Lock()
	pipes := make(map[counters.Key]*pipeMetrics, len(m.pipes))
	for k, pm := range m.pipes {
		pipes[counters.Key{Namespace: k[0], Pipeline: k[1]}] = pm
	}
	m.mu.Unlock()
	out := make(map[counters.Key]counters.Counts, len(pipes))
	var d dto.Metric
	for k, pm := range pipes {
		var n [numOutcomes]int64
		for i, ctr := range pm {
			d.Reset()
			if ctr.Write(&d) == nil {
				n[i] = int64(d.GetCounter().GetValue())
			}
		}
		out[k] = counters.Counts{
			Selected:      n[outEmitted] + n[outDropped] + n[outSampledOut] + n[outJoined] + n[outBypassed] + n[outLimitDropped],
			Emitted:       n[outEmitted],
			Dropped:       n[outDropped],
			SampledOut:    n[outSampledOut],
			Throttled:     n[outLimitThrottled],
			LimitDropped:  n[outLimitDropped],
			ParseFailures: n[outParseFailed],
		}
	}
	return out
}

// Exists says whether the last applied state has pipeline k (running or not); known is
// false before the first Apply.
func (s pipelineCounters) Exists(k counters.Key) (exists, known bool) {
	st := s.c.state.Load()
	if st == nil {
		return false, false
	}
	return st.Exists(k.Namespace, k.Pipeline), true
}

// Forget deletes the series of pipeline k (logrouter_collector_pipeline_lines_total, every
// outcome), unless it exists again. A file still running the deleted version counts into
// series no longer exported until its next chunk drops the runner.
func (s pipelineCounters) Forget(k counters.Key) {
	if exists, _ := s.Exists(k); exists {
		return
	}
	m := s.c.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{k.Namespace, k.Pipeline}
	if _, ok := m.pipes[key]; !ok {
		return
	}
	delete(m.pipes, key)
	for _, o := range outcomeNames {
		m.pipeLines.DeleteLabelValues(k.Namespace, k.Pipeline, o)
	}
}
