package sink

import (
	"errors"
	"fmt"
	"strings"
)

// Template names a namespace's topic: literal text with {namespace} and {label:<name>} (a
// namespace label, from the enricher) placeholders. Default "logs.{namespace}".
type Template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	label string // "" with lit; "\x00ns" for {namespace}
}

const nsPart = "\x00ns"

// ParseTemplate parses a topic template.
func ParseTemplate(s string) (Template, error) {
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
	if err := ValidTopic(topic); err != nil {
		return "", fmt.Errorf("topic for namespace %s: %w", namespace, err)
	}
	return topic, nil
}
