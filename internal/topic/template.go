// Package topic is the one definition of logrouter's Kafka topic names: a namespace's topic
// (DefaultTemplate, logs.<namespace>, or the operator's --topic-template), Kafka's naming rules,
// and the pattern that finds namespace topics among a cluster's topics. The collector, the
// archiver and the gateway all use it, so they cannot disagree on where a namespace's logs are.
// It also defines suffix topics (<namespace topic>.<suffix>, where a tenant pipeline may send a
// namespace's records) and the names of logrouter's own topics.
package topic

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultTemplate is the topic of a namespace unless an operator sets another template.
const DefaultTemplate = "logs.{namespace}"

// Template names a namespace's topic: literal text with {namespace} and {label:<name>} (a
// namespace label, from the enricher) placeholders. Default DefaultTemplate.
type Template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	label string // "" with lit; "\x00ns" for {namespace}
}

const nsPart = "\x00ns"

// Parse parses a topic template.
func Parse(s string) (Template, error) {
	var t Template
	rest := s
	hasNS := false
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return Template{}, fmt.Errorf("topic template %q: unclosed '{'", s)
		}
		name := rest[i+1 : i+j]
		switch {
		case name == "namespace":
			t.parts = append(t.parts, tmplPart{label: nsPart})
			hasNS = true
		case strings.HasPrefix(name, "label:") && len(name) > len("label:"):
			t.parts = append(t.parts, tmplPart{label: name[len("label:"):]})
		default:
			return Template{}, fmt.Errorf("topic template %q: unknown placeholder {%s} (want {namespace} or {label:<name>})", s, name)
		}
		rest = rest[i+j+1:]
	}
	if !hasNS {
		return Template{}, fmt.Errorf("topic template %q: must contain {namespace} so every namespace has its own topic", s)
	}
	for _, p := range t.parts {
		if p.label == "" {
			if err := validTopicChars(p.lit); err != nil {
				return Template{}, fmt.Errorf("topic template %q: %w", s, err)
			}
		}
	}
	return t, nil
}

// ErrMissingLabel is returned when the namespace lacks a label the template uses.
var ErrMissingLabel = errors.New("namespace label missing")

// Render returns the topic of a namespace. The result is checked against Kafka's naming rules.
func (t Template) Render(namespace string, labels map[string]string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.label {
		case "":
			b.WriteString(p.lit)
		case nsPart:
			b.WriteString(namespace)
		default:
			v, ok := labels[p.label]
			if !ok {
				return "", fmt.Errorf("topic for namespace %s: %w: %s", namespace, ErrMissingLabel, p.label)
			}
			b.WriteString(v)
		}
	}
	topic := b.String()
	if err := Valid(topic); err != nil {
		return "", fmt.Errorf("topic for namespace %s: %w", namespace, err)
	}
	return topic, nil
}

// UsesLabels reports whether the template needs namespace labels to render, which only the
// collector (through the enricher) has.
func (t Template) UsesLabels() bool {
	for _, p := range t.parts {
		if p.label != "" && p.label != nsPart {
			return true
		}
	}
	return false
}

// Of is namespace's topic under the default template.
func Of(namespace string) string { return "logs." + namespace }

// Valid checks Kafka's rules for topic names.
func Valid(t string) error {
	if t == "" || t == "." || t == ".." {
		return fmt.Errorf("invalid Kafka topic name %q", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("invalid Kafka topic name %q: longer than 249 characters", t)
	}
	return validTopicChars(t)
}

func validTopicChars(t string) error {
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid Kafka topic name %q: character %q (allowed: ASCII letters, digits, '.', '_', '-')", t, c)
		}
	}
	return nil
}

// NamespacePattern matches a Kubernetes namespace name (an RFC 1123 label).
const NamespacePattern = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`

// DefaultPattern matches the topics of DefaultTemplate; its group "namespace" is the namespace.
const DefaultPattern = `^logs\.(?P<namespace>` + NamespacePattern + `)$`

// CountersTopic is the compacted topic on which collectors publish per-pipeline counters and
// the controller folds them into each LogPipeline's status (pipeline/counters).
const CountersTopic = "logrouter.pipeline-counters"

// MaxSuffixLen bounds a suffix: one RFC 1123 label. With it the longest default suffix topic,
// logs.<63>.<63>, is 132 characters, well within Kafka's 249.
const MaxSuffixLen = 63

// ErrInvalidSuffix is wrapped by ValidSuffix's errors.
var ErrInvalidSuffix = errors.New("invalid topic suffix")

// ValidSuffix checks that s can name a suffix topic: one lowercase RFC 1123 label of at most
// MaxSuffixLen characters. Dots are refused, and namespaces contain none, so a namespace topic
// with a suffix (WithSuffix) can never be another namespace's topic or its suffix topic.
// Underscores are refused as well: Kafka treats '.' and '_' as the same in metric names.
func ValidSuffix(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSuffix)
	}
	if len(s) > MaxSuffixLen {
		return fmt.Errorf("%w %q: %d characters, at most %d allowed", ErrInvalidSuffix, s, len(s), MaxSuffixLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("%w %q: want a lowercase RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit; no dots)", ErrInvalidSuffix, s)
		}
	}
	return nil
}

// WithSuffix is the suffix topic "<t>.<suffix>" of namespace topic t; an empty suffix is t
// itself. The suffix must have passed ValidSuffix.
func WithSuffix(t, suffix string) string {
	if suffix == "" {
		return t
	}
	return t + "." + suffix
}

// SuffixPattern matches the topics of DefaultTemplate with an optional suffix: logs.<namespace>
// and logs.<namespace>.<suffix>. Its groups "namespace" and "suffix" ("" for the plain topic)
// name them.
const SuffixPattern = `^logs\.(?P<namespace>` + NamespacePattern + `)(?:\.(?P<suffix>` + NamespacePattern + `))?$`

var (
	suffixRe       = regexp.MustCompile(SuffixPattern)
	suffixReNS     = suffixRe.SubexpIndex("namespace")
	suffixReSuffix = suffixRe.SubexpIndex("suffix")
)

// ParseDefault splits a topic of DefaultTemplate, with or without a suffix, into its namespace
// and suffix; ok is false for any other topic. Length bounds are checked too (a namespace and a
// suffix are each at most 63 characters).
func ParseDefault(t string) (namespace, suffix string, ok bool) {
	m := suffixRe.FindStringSubmatch(t)
	if m == nil {
		return "", "", false
	}
	namespace, suffix = m[suffixReNS], m[suffixReSuffix]
	if len(namespace) > 63 || len(suffix) > MaxSuffixLen {
		return "", "", false
	}
	return namespace, suffix, true
}

// NodeSystem is the namespace under which the collector ships the node's own logs (the systemd
// journal): its topic is the template rendered for it, logs.node-system by default. It is not a
// tenant's: the platform team maps it to a namespace for the gateway when a team is to read it.
const NodeSystem = "node-system"

// NodeSource is the platform namespace of node file source name (router/nodefiles): its topic is
// the template rendered for it, logs.node-<name> by default (logs.node-audit for the audit log).
// Like NodeSystem it is the platform team's, mapped to a namespace for the gateway when a team
// is to read it.
func NodeSource(name string) string { return "node-" + name }
