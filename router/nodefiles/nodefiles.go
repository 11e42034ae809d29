// Package nodefiles is the configuration of node files: globs of files on the node (the
// kube-apiserver audit log, /var/log/audit/audit.log) that the collector reads with the same
// tailer, rotation handling and checkpoints as container logs, each glob to its own topic with
// its parser. Only the platform team configures them (flags or a config file); tenants never do.
// See docs/collector.md#node-files.
package nodefiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/audit"
)

// Parser is how a node file's lines become records.
type Parser string

// Parsers.
const (
	// ParserRaw ships each line as the message.
	ParserRaw Parser = "raw"
	// ParserJSON ships each line as the message and its members as the record's fields; a line
	// that is not a JSON object ships with parse_error.
	ParserJSON Parser = "json"
	// ParserKubeAudit ships each Kubernetes audit event (one per line) as one record whose
	// fields are the event's (package router/audit).
	ParserKubeAudit Parser = "kube-audit"
)

// Source is one configured node file source.
type Source struct {
	// Name identifies the source: an RFC 1123 label. Its records go to the platform namespace
	// topic.NodeSource(Name) (node-<name>), its topic unless Topic is set.
	Name string `json:"name"`
	// Paths are absolute globs (path/filepath.Match syntax) of the files, rotated ones included
	// (e.g. /var/log/kube-apiserver/audit*.log). Compressed files (.gz, .zst, .xz, .bz2) are
	// never read.
	Paths []string `json:"paths"`
	// Parser defaults to raw.
	Parser Parser `json:"parser,omitempty"`
	// Topic overrides the topic (default: --topic-template rendered for node-<name>).
	Topic string `json:"topic,omitempty"`
}

// Participant is the source's name in the collector's byte budget and its per-namespace
// metrics: not a possible namespace name (the colon), so no tenant shares its fair share, its
// policy or its pipelines.
func (s *Source) Participant() string { return "node-file:" + s.Name }

// Config is the node file sources. The zero value has none.
type Config struct {
	// File is a YAML (or JSON) file of sources, read by Load.
	File    string   `json:"-"`
	Sources []Source `json:"sources"`
}

// fileFormat is the config file: strict, one key.
type fileFormat struct {
	Sources []Source `json:"sources"`
}

// Register binds the flags.
func (c *Config) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.File, "node-files-config", c.File, "YAML file of node file sources (docs/collector.md#node-files)")
	fs.Func("node-file", "a node file source, NAME=PARSER:GLOB[,GLOB...] (parser raw, json or kube-audit), e.g. audit=kube-audit:/var/log/kube-apiserver/audit*.log; repeatable", func(v string) error {
		s, err := ParseFlag(v)
		if err != nil {
			return err
		}
		c.Sources = append(c.Sources, s)
		return nil
	})
}

// ParseFlag reads one --node-file value.
func ParseFlag(v string) (Source, error) {
	name, rest, ok := strings.Cut(v, "=")
	if !ok {
		return Source{}, fmt.Errorf("%q: want NAME=PARSER:GLOB[,GLOB...]", v)
	}
	parser, globs, ok := strings.Cut(rest, ":")
	if !ok {
		return Source{}, fmt.Errorf("%q: want NAME=PARSER:GLOB[,GLOB...]", v)
	}
	s := Source{Name: name, Parser: Parser(parser)}
	for _, g := range strings.Split(globs, ",") {
		if g = strings.TrimSpace(g); g != "" {
			s.Paths = append(s.Paths, g)
		}
	}
	return s, nil
}

// Load reads File (if set) and adds its sources to those of the flags. Unknown keys are errors.
func (c *Config) Load() error {
	if c.File == "" {
		return nil
	}
	b, err := os.ReadFile(c.File)
	if err != nil {
		return fmt.Errorf("--node-files-config: %w", err)
	}
	srcs, err := Decode(b)
	if err != nil {
		return fmt.Errorf("--node-files-config %s: %w", c.File, err)
	}
	c.Sources = append(c.Sources, srcs...)
	return nil
}

// Decode reads a config file's sources, strictly (an unknown or misspelt key is an error).
func Decode(b []byte) ([]Source, error) {
	var f fileFormat
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, err
	}
	return f.Sources, nil
}

// compressed are the suffixes of rotated files that are never read (compressed by logrotate).
var compressed = []string{".gz", ".zst", ".xz", ".bz2", ".zip", ".lz4"}

// Compressed reports whether path names a compressed file.
func Compressed(path string) bool {
	for _, s := range compressed {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

// ParserOf is s's parser with the default applied.
func (s *Source) ParserOf() Parser {
	if s.Parser == "" {
		return ParserRaw
	}
	return s.Parser
}

// Validate reports every problem at once. dirs are the container log directories, which no
// glob may reach into (their files would be read twice).
func (c *Config) Validate(dirs ...string) error {
	var errs []error
	names := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		what := fmt.Sprintf("node file source %d (%q)", i, s.Name)
		if msgs := validation.IsDNS1123Label(s.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: name: %s", what, strings.Join(msgs, "; ")))
		} else if topic.NodeSource(s.Name) == topic.NodeSystem {
			errs = append(errs, fmt.Errorf("%s: name %q is the journal's (%s)", what, s.Name, topic.NodeSystem))
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: name used twice", what))
		}
		names[s.Name] = true
		if len(s.Paths) == 0 {
			errs = append(errs, fmt.Errorf("%s: paths: at least one glob", what))
		}
		for _, p := range s.Paths {
			if !filepath.IsAbs(p) {
				errs = append(errs, fmt.Errorf("%s: path %q: must be absolute", what, p))
				continue
			}
			if _, err := filepath.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: path %q: %w", what, p, err))
				continue
			}
			if strings.ContainsAny(filepath.Dir(p), "*?[\\") {
				errs = append(errs, fmt.Errorf("%s: path %q: only the file name may have wildcards (rotation is followed within one directory)", what, p))
				continue
			}
			for _, d := range dirs {
				if d != "" && within(filepath.Dir(p), filepath.Clean(d)) {
					errs = append(errs, fmt.Errorf("%s: path %q: inside container log directory %s, whose files the collector reads already", what, p, d))
				}
			}
		}
		switch s.ParserOf() {
		case ParserRaw, ParserJSON, ParserKubeAudit:
		default:
			errs = append(errs, fmt.Errorf("%s: parser %q: want %s, %s or %s", what, s.Parser, ParserRaw, ParserJSON, ParserKubeAudit))
		}
		if s.Topic != "" {
			if err := topic.Valid(s.Topic); err != nil {
				errs = append(errs, fmt.Errorf("%s: topic: %w", what, err))
			}
		}
	}
	return errors.Join(errs...)
}

func within(dir, root string) bool {
	return dir == root || strings.HasPrefix(dir, root+string(filepath.Separator))
}

// ParseError says why a line did not parse with its source's parser. It ships unchanged, with
// the error in parse_error.
type ParseError struct {
	Parser Parser
	Reason string // stable, few: metric label
	Detail string
}

func (e *ParseError) Error() string {
	s := string(e.Parser) + ": " + e.Reason
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Reasons of the json parser.
const (
	ReasonBadJSON     = "bad json"
	ReasonNotObject   = "not an object"
	ReasonInvalidUTF8 = "invalid utf-8"
)

// Fields parses line with parser p: the fields object appended to buf, and the record's ts
// from the line (nil: the time it was read). raw yields neither.
func (p Parser) Fields(buf, line []byte) (fields, ts []byte, err error) {
	switch p {
	case ParserJSON:
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] != '{' {
			return nil, nil, &ParseError{Parser: p, Reason: ReasonNotObject}
		}
		if !utf8.Valid(t) {
			// The record's fields must be valid JSON text; the message keeps the exact bytes.
			return nil, nil, &ParseError{Parser: p, Reason: ReasonInvalidUTF8}
		}
		b := bytes.NewBuffer(buf)
		if err := json.Compact(b, t); err != nil {
			return nil, nil, &ParseError{Parser: p, Reason: ReasonBadJSON, Detail: err.Error()}
		}
		return b.Bytes(), nil, nil
	case ParserKubeAudit:
		e, err := audit.Parse(line)
		if err != nil {
			var ae *audit.Error
			if errors.As(err, &ae) {
				return nil, nil, &ParseError{Parser: p, Reason: ae.Reason, Detail: ae.Detail}
			}
			return nil, nil, &ParseError{Parser: p, Reason: err.Error()}
		}
		return e.AppendFields(buf), e.TS, nil
	}
	return nil, nil, nil
}
