package router

import (
	"github.com/logrouter/logrouter/pipeline/counters"
)

// PipelineCounters is the collector as the source of a counters.Publisher.
func (c *Collector) PipelineCounters() counters.Source { return pipelineCounters{c} }

type pipelineCounters struct{ c *Collector }

// Totals returns this collector's cumulative counts per tenant pipeline object (namespace,
// name, UID) since it started, in the form counters.Publisher publishes. They are the counts
// behind logrouter_collector_pipeline_lines_total, kept per UID as well: a pipeline deleted and
// created again under its name is another key, which starts at zero. A pipeline stays in the
// map after it is removed until Forget deletes it. Lines a runner holds (multiline) are counted
// when their record is emitted.
//
// Selected is every line that reached the pipeline: the records it emitted, dropped or sampled
// out, the lines joined into them, the lines that bypassed its steps and the lines its
// namespace's limit dropped. Throttled are the selected lines that had waited for the namespace's
// limit (each once, when Kafka has it, as every other outcome: limit.go): Throttled <= Selected.
func (s pipelineCounters) Totals() map[counters.Key]counters.Counts {
	m := s.c.metrics
	m.mu.Lock()
	pipes := make(map[counters.Key]*pipeMetrics, len(m.pipes))
	for k, pm := range m.pipes {
		pipes[k] = pm
	}
	m.mu.Unlock()
	out := make(map[counters.Key]counters.Counts, len(pipes))
	for k, pm := range pipes {
		var n [numOutcomes]int64
		for i := range pm.n {
			n[i] = pm.n[i].Load()
		}
		out[k] = counters.Counts{
			Selected:      n[outEmitted] + n[outDropped] + n[outSampledOut] + n[outJoined] + n[outBypassed] + n[outLimitDropped],
			Emitted:       n[outEmitted],
			Dropped:       n[outDropped],
			SampledOut:    n[outSampledOut],
			Throttled:     n[outLimitThrottled],
			LimitDropped:  n[outLimitDropped],
			ParseFailures: n[outParseFailed],
			Panicked:      n[outPanicked],
		}
	}
	return out
}

// Exists says whether the last applied state has pipeline k, that object (its UID), running
// or not; known is false before the first Apply.
func (s pipelineCounters) Exists(k counters.Key) (exists, known bool) {
	st := s.c.state.Load()
	if st == nil {
		return false, false
	}
	return st.Exists(k.Namespace, k.Pipeline, k.UID), true
}

// Forget deletes pipeline k's totals, unless it exists again, and its series
// (logrouter_collector_pipeline_lines_total, every outcome) unless a pipeline of that name
// exists (an object created again under the name counts into the same series). A file still
// running the deleted version counts into totals no longer published until its next chunk
// drops the runner.
func (s pipelineCounters) Forget(k counters.Key) {
	if exists, _ := s.Exists(k); exists {
		return
	}
	m := s.c.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.pipes[k]; !ok {
		return
	}
	delete(m.pipes, k)
	for o := range m.pipes {
		if o.Namespace == k.Namespace && o.Pipeline == k.Pipeline {
			return // the same series
		}
	}
	for _, o := range outcomeNames {
		m.pipeLines.DeleteLabelValues(k.Namespace, k.Pipeline, o)
	}
}
