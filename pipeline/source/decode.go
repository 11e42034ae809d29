package source

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Document is one LogPipeline or LogRouterPolicy document of a file.
type Document struct {
	// Line is where the document starts in its file (1-based).
	Line     int
	Pipeline *v1alpha1.LogPipeline
	Policy   *v1alpha1.LogRouterPolicy
}

// DecodeFile decodes every document of a YAML (or JSON) file strictly: the kind must be
// LogPipeline or LogRouterPolicy of logrouter.io/v1alpha1, and unknown fields are refused.
// The error names the file and the line.
//
// It is a small private decoder until pipeline/load lands on main.
func DecodeFile(name string, data []byte) ([]Document, error) {
	var docs []Document
	for _, chunk := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(chunk.data))) == 0 {
			continue
		}
		d, err := decodeDocument(chunk.data)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, chunk.line, err)
		}
		d.Line = chunk.line
		docs = append(docs, d)
	}
	return docs, nil
}

type chunk struct {
	line int
	data []byte
}

// splitDocuments splits at lines that are exactly "---" (optionally followed by a comment).
func splitDocuments(data []byte) []chunk {
	var out []chunk
	start, startLine := 0, 1
	line := 1
	for i := 0; i <= len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		end := len(data)
		if j >= 0 {
			end = i + j
		}
		l := strings.TrimRight(string(data[i:end]), "\r")
		if l == "---" || strings.HasPrefix(l, "--- ") {
			out = append(out, chunk{line: startLine, data: data[start:i]})
			start, startLine = end+1, line+1
		}
		if j < 0 {
			break
		}
		i = end + 1
		line++
	}
	if start <= len(data) {
		out = append(out, chunk{line: startLine, data: data[min(start, len(data)):]})
	}
	return out
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

func decodeDocument(b []byte) (Document, error) {
	var probe struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &probe); err != nil {
		return Document{}, err
	}
	if probe.APIVersion != v1alpha1.GroupVersion.String() {
		return Document{}, fmt.Errorf("apiVersion %q: want %s", probe.APIVersion, v1alpha1.GroupVersion)
	}
	switch probe.Kind {
	case "LogPipeline":
		p := &v1alpha1.LogPipeline{}
		if err := yaml.UnmarshalStrict(b, p); err != nil {
			return Document{}, fmt.Errorf("LogPipeline: %w", err)
		}
		return Document{Pipeline: p}, nil
	case "LogRouterPolicy":
		p := &v1alpha1.LogRouterPolicy{}
		if err := yaml.UnmarshalStrict(b, p); err != nil {
			return Document{}, fmt.Errorf("LogRouterPolicy: %w", err)
		}
		return Document{Policy: p}, nil
	}
	return Document{}, fmt.Errorf("kind %q: want LogPipeline or LogRouterPolicy", probe.Kind)
}
