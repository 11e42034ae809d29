package router

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/logrouter/logrouter/pipeline/counters"
)

// PipelineTotals returns this collector's cumulative counts per tenant pipeline since it
// started, read from its own per-pipeline counters (logrouter_collector_pipeline_lines_total),
// in the form counters.Publisher publishes. A pipeline stays in the map after it is removed:
// its totals do not change any more. Lines a runner holds (multiline) are counted when their
// record is emitted.
//
// Selected is every line that reached the pipeline: the records it emitted, dropped or sampled
// out, the lines joined into them, the lines that bypassed its steps and the lines its
// namespace's limit dropped. Throttled are the lines that waited for the namespace's limit (each
// once): they are not in Selected until they are read and reach the pipeline.
func (c *Collector) PipelineTotals() map[counters.Key]counters.Counts {
	m := c.metrics
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
