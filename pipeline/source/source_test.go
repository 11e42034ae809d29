package source

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/pipeline"
)

// recorder is the Applier of the tests: it keeps every state it is given.
type recorder struct {
	mu     sync.Mutex
	states []*pipeline.State
	cond   *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) Apply(s *pipeline.State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.states)
}

func (r *recorder) last() *pipeline.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return nil
	}
	return r.states[len(r.states)-1]
}

// waitCount waits until n states were applied (failing the test after a generous time: a
// deadline for a hung test, not a performance assertion).
func (r *recorder) waitCount(t *testing.T, n int) *pipeline.State {
	t.Helper()
	done := make(chan struct{})
	timer := time.AfterFunc(60*time.Second, func() { close(done); r.cond.Broadcast() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.states) < n {
		select {
		case <-done:
			t.Fatalf("%d states applied, waited for %d", len(r.states), n)
		default:
		}
		r.cond.Wait()
	}
	return r.states[n-1]
}

// waitFor waits until the last applied state satisfies ok.
func (r *recorder) waitFor(t *testing.T, what string, ok func(*pipeline.State) bool) *pipeline.State {
	t.Helper()
	done := make(chan struct{})
	timer := time.AfterFunc(60*time.Second, func() { close(done); r.cond.Broadcast() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.states) == 0 || !ok(r.states[len(r.states)-1]) {
		select {
		case <-done:
			t.Fatalf("no applied state has %s (%d applied; last: %s)", what, len(r.states), describe(r.lastLocked()))
		default:
		}
		r.cond.Wait()
	}
	return r.states[len(r.states)-1]
}

func (r *recorder) lastLocked() *pipeline.State {
	if len(r.states) == 0 {
		return nil
	}
	return r.states[len(r.states)-1]
}

// describe prints a state as namespace/pipeline@generation.
func describe(s *pipeline.State) string {
	if s == nil {
		return "none"
	}
	var b bytes.Buffer
	for ns, set := range s.Namespaces {
		for _, p := range set.Pipelines {
			fmt.Fprintf(&b, "%s/%s@%d ", ns, p.Name, p.Generation)
		}
	}
	return b.String()
}

// running returns the pipeline ns/name of s, or nil.
func running(s *pipeline.State, ns, name string) *pipeline.Pipeline {
	if s == nil || s.Namespaces[ns] == nil {
		return nil
	}
	for _, p := range s.Namespaces[ns].Pipelines {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}
