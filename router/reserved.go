package router

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/logrouter/logrouter/internal/topic"
)

// The platform's own topics (the journal's, each node file source's) take no tenant's lines: a
// Kubernetes namespace named like a node source (node-system, node-<source>), or whose topic
// under the template (namespace labels included) is a node source's, would otherwise write into
// the platform's topic, which the gateway never grants to a tenant identity as its own. Such
// container logs are refused: read and not produced (their files do not fill the node's disk
// held open, and nothing else waits), counted per namespace, and logged as errors.

// reserved is the collector's record of the platform's namespaces and topics.
type reserved struct {
	namespaces map[string]string // namespace -> whose
	topics     map[string]string // topic -> whose
	log        *errLog
}

func newReserved(log *slog.Logger) *reserved {
	return &reserved{namespaces: map[string]string{topic.NodeSystem: "the node journal's"}, topics: map[string]string{},
		log: newErrLog(log, slog.LevelError, time.Minute)}
}

// ReserveTopic makes t a platform topic that no container log may be produced to: for a node
// source the collector does not run itself (the journal's --journal-topic). Call it before Run.
func (c *Collector) ReserveTopic(t, whose string) { c.reserved.topics[t] = whose }

// reserveNodeSources reserves the default journal topic and every node file source's namespace
// and topic.
func (c *Collector) reserveNodeSources() {
	if t, err := c.tmpl.Render(topic.NodeSystem, nil); err == nil {
		c.reserved.topics[t] = "the node journal's"
	}
	for _, ns := range c.nodeOrder {
		whose := fmt.Sprintf("node file source %s's", ns.cfg.Name)
		c.reserved.namespaces[ns.namespace] = whose
		if ns.topicErr == nil {
			c.reserved.topics[ns.topic] = whose
		}
	}
}

// refusal says why a container log of namespace ns, whose records would go to topic t (empty
// when it has none), is refused; "" when it is not.
func (c *Collector) refusal(ns, t string) string {
	if whose, ok := c.reserved.namespaces[ns]; ok {
		return fmt.Sprintf("namespace %s is %s", ns, whose)
	}
	return c.topicRefusal(t)
}

// topicRefusal says why records to topic t are refused (it is a platform topic); "" when
// they are not. A tenant pipeline's output topic (the namespace's topic plus its suffix) can
// be a node source's explicit topic: logs.platform plus suffix auditd is logs.platform.auditd.
func (c *Collector) topicRefusal(t string) string {
	if whose, ok := c.reserved.topics[t]; ok && t != "" {
		return fmt.Sprintf("topic %s is %s", t, whose)
	}
	return ""
}

// reportPipelineRefused logs, once per runner (at a bounded rate), that the lines pipeline
// s selects are refused: its output topic is the platform's.
func (f *file) reportPipelineRefused(s *runSlot) {
	if s.refusedLogged {
		return
	}
	s.refusedLogged = true
	f.c.reserved.log.Log("pipeline output refused: its output topic is the platform's; the lines it selects are read and not produced (change the pipeline's output suffix, or the LogRouterPolicy's allowedSuffixes)",
		"path", f.curPath(), "namespace", f.meta.Namespace, "pipeline", s.p.Name, "topic", s.topic, "reason", s.refused)
}

// reportRefused logs, once per file and reason (at a bounded rate), that f's lines are refused.
func (f *file) reportRefused() {
	why := f.view.refused
	if why == "" || why == f.refusedLogged {
		return
	}
	f.refusedLogged = why
	f.c.reserved.log.Log("container log refused: its namespace or topic is the platform's; its lines are read and not produced (rename the namespace, or change --topic-template)",
		"path", f.curPath(), "namespace", f.meta.Namespace, "pod", f.meta.Pod, "container", f.meta.Container, "reason", why)
}
