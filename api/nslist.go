package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"k8s.io/apimachinery/pkg/util/validation"
)

// topicNamespaces lists the namespaces the gateway has logs of: the Kafka topics that the topic
// template renders for some namespace name. They are the candidates of a Kubernetes identity's
// namespace list (GET /v1/namespaces); a namespace without a topic has nothing to read. The
// topic list is cached for ttl: every console start asks for it.
type topicNamespaces struct {
	adm            *kadm.Client
	prefix, suffix string // around {namespace} in the template
	ttl            time.Duration
	now            func() time.Time

	mu      sync.Mutex
	list    []string
	fetched time.Time
}

func newTopicNamespaces(adm *kadm.Client, template string, ttl time.Duration, now func() time.Time) *topicNamespaces {
	prefix, suffix, _ := strings.Cut(template, "{namespace}") // Validate: exactly once
	return &topicNamespaces{adm: adm, prefix: prefix, suffix: suffix, ttl: ttl, now: now}
}

// Namespaces returns the namespaces with a topic, sorted.
func (t *topicNamespaces) Namespaces(ctx context.Context) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock() // one listing at a time; the others wait for its answer
	if t.list != nil && t.now().Sub(t.fetched) < t.ttl {
		return t.list, nil
	}
	topics, err := t.adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Kafka topics: %w", err)
	}
	out := []string{}
	for _, name := range topics.Names() {
		if ns, ok := t.namespace(name); ok {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	t.list, t.fetched = slices.Compact(out), t.now()
	return t.list, nil
}

// namespace inverts the template: the namespace whose topic name is, if any. Suffix topics
// (<topic>.<suffix>) and other topics do not name a namespace (a namespace has no dots).
func (t *topicNamespaces) namespace(topic string) (string, bool) {
	ns, ok := strings.CutPrefix(topic, t.prefix)
	if !ok {
		return "", false
	}
	if ns, ok = strings.CutSuffix(ns, t.suffix); !ok {
		return "", false
	}
	return ns, len(validation.IsDNS1123Label(ns)) == 0
}
