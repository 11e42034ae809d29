package system

import (
	"time"
)

// collectorProgress reads the collector's open files, the sum of its open files' bytes behind
// (size minus checkpoint, logrouter_collector_file_bytes_behind) and its records in flight.
func (s *system) collectorProgress() (open, behind, inflight float64, err error) {
	fams, err := s.collectorMetrics()
	if err != nil {
		return 0, 0, 0, err
	}
	if f := fams["logrouter_collector_open_files"]; f != nil && len(f.GetMetric()) > 0 {
		open = f.GetMetric()[0].GetGauge().GetValue()
	}
	if f := fams["logrouter_collector_records_in_flight"]; f != nil && len(f.GetMetric()) > 0 {
		inflight = f.GetMetric()[0].GetGauge().GetValue()
	}
	if f := fams["logrouter_collector_file_bytes_behind"]; f != nil {
		for _, m := range f.GetMetric() {
			behind += m.GetGauge().GetValue()
		}
	}
	return open, behind, inflight, nil
}

// waitCaughtUp waits until the collector has nothing behind and nothing in flight (twice in a
// row), so that the accounting reads Kafka after the backlog of a long outage was shipped, not
// while it still is (a namespace with some counted loss would otherwise end the accounting's
// wait at once, and lines still to be shipped would be reported lost). It gives up when the
// bytes behind have not fallen for a minute.
func (s *system) waitCaughtUp() {
	t0 := time.Now()
	best, bestAt, ok, errs := -1.0, time.Now(), 0, 0
	for time.Since(bestAt) < time.Minute && errs < 10 {
		open, behind, inflight, err := s.collectorProgress()
		switch {
		case err != nil:
			ok = 0
			errs++
		case behind == 0 && inflight == 0:
			if ok++; ok == 2 {
				if d := time.Since(t0); d > 5*time.Second {
					s.t.Logf("collector caught up %s after the workload stopped (%.0f files open)", d.Round(time.Second), open)
				}
				return
			}
		default:
			ok, errs = 0, 0
			if best < 0 || behind < best {
				best, bestAt = behind, time.Now()
			}
			if time.Since(t0) > 10*time.Second && int(time.Since(t0)/time.Second)%30 == 0 {
				s.t.Logf("collector catching up: %.0f bytes behind in %.0f open files, %.0f records in flight", behind, open, inflight)
			}
		}
		time.Sleep(time.Second)
	}
	s.t.Logf("collector not caught up after %s (bytes behind stopped falling): accounting anyway", time.Since(t0).Round(time.Second))
}
