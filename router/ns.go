package router

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/pipeline"
)

// nsState is one namespace's state on this node: its metrics, its compiled pipelines, its rate
// limiter and what the policy says about it. There is one per namespace for the collector's
// life: files come and go and pipelines and the policy are swapped, but the token buckets stay,
// so neither a reload nor a new file gives a namespace a fresh burst.
//
// A file loads its namespace's Set and policy once per chunk (atomic loads): the hot path takes
// no lock, and an apply never waits for a file.
type nsState struct {
	name string
	m    *nsMetrics
	set  atomic.Pointer[pipeline.Set]
	// pol is the namespace's policy as last computed (nsPolicy.src tells from which Policy).
	pol atomic.Pointer[nsPolicy]

	limitMu sync.Mutex // serializes limit changes (not reads)
	limits  pipeline.Limits
	// Token buckets of lines and bytes per second; nil: unlimited. A bucket made when a limit
	// first appears starts full; later changes keep its tokens.
	lines, bytes atomic.Pointer[rate.Limiter]
	now          func() time.Time
}

// nsPolicy is a namespace's policy computed from one Policy.
type nsPolicy struct {
	src *pipeline.Policy
	pipeline.NamespacePolicy
}

func newNSState(name string, m *nsMetrics, now func() time.Time) *nsState {
	s := &nsState{name: name, m: m, now: now}
	s.pol.Store(&nsPolicy{NamespacePolicy: pipeline.NamespacePolicy{Collected: true}})
	return s
}

// namespace returns ns's state, creating it on first use.
func (c *Collector) namespace(ns string) *nsState {
	c.nsMu.Lock()
	defer c.nsMu.Unlock()
	s := c.nss[ns]
	if s == nil {
		s = newNSState(ns, c.metrics.forNamespace(ns), c.now)
		if set := c.desired[ns]; set != nil {
			s.set.Store(set)
		}
		c.nss[ns] = s
	}
	return s
}

// policy computes what policy p (nil: the defaults) says about the namespace with its labels
// (nil: unknown, path metadata only). Files call it when the policy or their snapshot changed;
// the limits it sets take effect on the namespace's existing token buckets.
func (s *nsState) policy(p *pipeline.Policy, labels map[string]string) *nsPolicy {
	np := &nsPolicy{src: p, NamespacePolicy: pipeline.NamespacePolicy{Collected: true}}
	if p != nil {
		np.NamespacePolicy = p.For(s.name, labels)
	}
	s.setLimits(np.Limits)
	s.pol.Store(np)
	return np
}

// setLimits changes the token buckets' rates and bursts, keeping their state.
func (s *nsState) setLimits(l pipeline.Limits) {
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	if s.limits == l {
		return
	}
	s.limits = l
	now := s.now()
	setBucket(&s.lines, l.LinesPerSecond, l.BurstLines, now)
	setBucket(&s.bytes, l.BytesPerSecond, l.BurstBytes, now)
}

func setBucket(p *atomic.Pointer[rate.Limiter], perSecond float64, burst int, now time.Time) {
	if perSecond <= 0 {
		p.Store(nil)
		return
	}
	if burst <= 0 {
		burst = int(math.Ceil(perSecond)) // one second's worth
	}
	b := p.Load()
	if b == nil {
		b = rate.NewLimiter(rate.Limit(perSecond), burst)
		b.SetBurstAt(now, burst) // starts full at now
		p.Store(b)
		return
	}
	b.SetBurstAt(now, burst)
	b.SetLimitAt(now, rate.Limit(perSecond))
}

// limited reports whether the namespace has a limit at all (the common case is not: then the
// hot path does not touch the buckets).
func (p *nsPolicy) limited() bool {
	return p.Limits.LinesPerSecond > 0 || p.Limits.BytesPerSecond > 0
}
