package router

import (
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
)

var _ pipeline.Applier = (*Collector)(nil)

// Apply makes st the collector's desired state (pipeline.Applier): each namespace whose Set
// changed gets the new one by an atomic swap, which its files pick up at their next chunk.
// Nothing restarts, no file pauses and the hot path takes no lock: Apply costs a map walk over
// the namespaces, under a lock only Apply and a file's first chunk of a new namespace take.
//
// A Set is changed when it is another *Set whose pipelines are not the same compiled
// *Pipeline values: sources reuse the compiled pipelines and Sets of unchanged namespaces, so a
// file's multiline state survives applies that do not concern its namespace.
//
// A Set filed under another namespace than its own is refused (logged and counted): lines of a
// namespace run only that namespace's pipelines.
func (c *Collector) Apply(st *pipeline.State) {
	if st == nil {
		st = &pipeline.State{}
	}
	desired := make(map[string]*pipeline.Set, len(st.Namespaces))
	for ns, set := range st.Namespaces {
		if set != nil && set.Namespace != ns {
			c.metrics.applyRefused.Inc()
			c.log.Error("pipeline set refused: it belongs to another namespace (a bug in the pipeline source)", "namespace", ns, "set_namespace", set.Namespace)
			continue
		}
		if set != nil && len(set.Pipelines) == 0 {
			set = nil
		}
		if set != nil {
			desired[ns] = set
		}
	}
	c.nsMu.Lock()
	changed := 0
	for ns, s := range c.nss {
		cur, next := s.set.Load(), desired[ns]
		if !sameSet(cur, next) {
			s.set.Store(next)
			changed++
		}
	}
	c.desired = desired
	c.nsMu.Unlock()
	c.policy.Store(st.Policy)
	c.state.Store(st)
	c.metrics.applies.Inc()
	c.metrics.appliedNamespaces.Set(float64(len(desired)))
	c.appliedOnce.Do(func() { close(c.applied) })
	c.log.Debug("pipelines applied", "namespaces", len(desired), "changed_open", changed)
}

// sameSet reports whether a and b run the same compiled pipelines.
func sameSet(a, b *pipeline.Set) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || len(a.Pipelines) != len(b.Pipelines) {
		return false
	}
	for i := range a.Pipelines {
		if a.Pipelines[i] != b.Pipelines[i] {
			return false
		}
	}
	return true
}

// ExpectPipelines makes files wait, before their first read, for the first Apply: with a
// pipeline source configured, lines read before it delivered would ship without their
// namespace's pipelines (unredacted, unparsed). Call it before Run.
func (c *Collector) ExpectPipelines() { c.gate = true }

// suffixTopics are the output topics of namespace ns's pipelines other than its own topic t.
func (c *Collector) suffixTopics(ns, t string) []string {
	c.nsMu.Lock()
	set := c.desired[ns]
	c.nsMu.Unlock()
	var out []string
	if set == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, p := range set.Pipelines {
		st := topic.WithSuffix(t, p.Suffix)
		if p.Suffix != "" && !seen[p.Suffix] && c.topicRefusal(st) == "" {
			seen[p.Suffix] = true
			out = append(out, st)
		}
	}
	return out
}
