package router

// Counting each line's pipeline outcomes once (logrouter_collector_pipeline_lines_total and
// the totals published for status.counters).
//
// A chunk's outcomes count when Kafka acknowledged the chunk, in read order: in complete(),
// where the checkpoint advances. A chunk that failed is read again from the checkpoint (rewind),
// and its outcomes are counted then, from the read again. Lines before countedTo (the read end
// of the last chunk counted) were counted already: read again after a rewind (the checkpoint
// lies before lines held for joining, and before lines acknowledged past a failed chunk), their
// outcomes are not counted again (countFrom). The outcomes of a line are those of the Process
// call that took it (its own record, or the joined record it completed, or it joining one);
// a flush's are those of the line before it. Reading again from the checkpoint replays the same
// lines into a runner that holds nothing, so the outcomes past countFrom are those the first
// read would have counted, with one exception: a multiline record flushed by its timeout (or to
// make room in the budget) in a chunk that was counted, whose lines are read again without that
// flush, is joined on with the lines after countFrom and emitted (and counted) once more: at most
// one record per pipeline and file per rewind.
//
// After a restart, the lines whose records the read-back found in Kafka (inKafka) were
// acknowledged, so counted, by the previous process: counting starts after the last of them
// (resumedCountFrom). What the previous process counted and did not publish before it was
// killed, and what it had in flight, is not counted by anyone (pipeline/counters: a SIGKILL
// loses at most one publication interval); the outcomes it counted of lines with no record
// (dropped, sampled out) after the last record Kafka has from the file are counted again.
// A clean stop checkpoints what was acknowledged: nothing is read again.

// pipeCount is a chunk's counts of one pipeline object.
type pipeCount struct {
	pm *pipeMetrics
	n  [numOutcomes]int64
}

// takePipeCounts moves counts (of pm) into the chunk and zeroes them.
func (ch *chunk) takePipeCounts(pm *pipeMetrics, counts *[numOutcomes]int64) {
	var pc *pipeCount
	for i := range ch.pipe {
		if ch.pipe[i].pm == pm {
			pc = &ch.pipe[i]
			break
		}
	}
	if pc == nil {
		ch.pipe = append(ch.pipe, pipeCount{pm: pm})
		pc = &ch.pipe[len(ch.pipe)-1]
	}
	for i, n := range counts {
		pc.n[i] += n
	}
	*counts = [numOutcomes]int64{}
}

// addPipeCounts adds the chunk's pipeline outcomes to their metrics (once).
func (ch *chunk) addPipeCounts() {
	for _, pc := range ch.pipe {
		for i, n := range pc.n {
			if n > 0 {
				pc.pm.add(i, n)
			}
		}
	}
	ch.pipe = nil
}

// resumedCountFrom is where a file resumed at start counts from: past the last line whose
// record the read-back found in Kafka.
func resumedCountFrom(inKafka map[[2]int64]uint64) int64 {
	from := int64(0)
	for k := range inKafka {
		from = max(from, k[0]+1)
	}
	return from
}
