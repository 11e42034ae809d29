// Package load decodes files of LogPipeline and LogRouterPolicy objects (YAML or JSON, several
// documents separated by ---) strictly, the way `kubectl apply --validate=strict` reads them:
// apiVersion and kind are checked, unknown and duplicate fields are refused, and every error
// names the file, the line and the document. `--pipelines-dir` and `logrouter pipeline
// validate|test` read pipelines through it.
//
// Decoding is not validation: the schema rules of the CRD (patterns, enums, CEL) and the
// semantic checks are pipeline.Compile's job, which both the controller and the collector run.
package load

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

// Kinds this package decodes.
const (
	KindLogPipeline     = "LogPipeline"
	KindLogRouterPolicy = "LogRouterPolicy"
)

// MaxFileBytes bounds one file: a pipeline is a few KiB; a bigger file is a mistake (a log
// file in the pipelines directory), not something to hold in memory.
const MaxFileBytes = 4 << 20

// Object is one decoded document: exactly one of Pipeline and Policy is set.
type Object struct {
	// File is the name the data was read under (the path for File and Dir).
	File string
	// Doc is the document's index in the file, from 1; Line is its first line, from 1.
	Doc, Line int
	Pipeline  *v1alpha1.LogPipeline
	Policy    *v1alpha1.LogRouterPolicy
}

// String names the object as messages do: file:line: LogPipeline team-a/web.
func (o Object) String() string {
	switch {
	case o.Pipeline != nil:
		return fmt.Sprintf("%s:%d: %s %s/%s", o.File, o.Line, KindLogPipeline, o.Pipeline.Namespace, o.Pipeline.Name)
	case o.Policy != nil:
		return fmt.Sprintf("%s:%d: %s %s", o.File, o.Line, KindLogRouterPolicy, o.Policy.Name)
	}
	return fmt.Sprintf("%s:%d: empty", o.File, o.Line)
}

// Error is the error of one document. Errors of several documents are joined (errors.Join);
// errors.As finds each.
type Error struct {
	File      string
	Doc, Line int // the document, and the line of the problem (the document's first line when unknown)
	Err       error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: document %d: %v", e.File, e.Line, e.Doc, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinels callers may branch on (wrapped in *Error).
var (
	ErrKind         = errors.New("not a LogPipeline or LogRouterPolicy")
	ErrUnknownField = errors.New("unknown field")
	ErrTooLarge     = errors.New("file too large")
)

// Bytes decodes every document of data, read from the file called name (used in messages).
// It returns the documents that decoded, in order, and an error joining one *Error per
// document that did not: a bad document does not hide the good ones. Empty documents (only
// comments or blank lines) are skipped.
func Bytes(name string, data []byte) ([]Object, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{File: name, Doc: 1, Line: 1, Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxFileBytes)}
	}
	docs, err := split(data)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &Error{File: name, Doc: se.doc, Line: se.line, Err: se.err}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var objs []Object
	var errs []error
	for _, d := range docs {
		o, err := decode(d)
		if err != nil {
			var le *lineError
			line := d.line
			if errors.As(err, &le) {
				// The YAML parser reports an unexpected end as the line after the last.
				line = min(max(le.line, d.line), d.line+bytes.Count(d.data, []byte("\n")))
				err = le.err
			}
			errs = append(errs, &Error{File: name, Doc: d.index, Line: line, Err: err})
			continue
		}
		if o == nil {
			continue
		}
		o.File, o.Doc, o.Line = name, d.index, d.line
		objs = append(objs, *o)
	}
	return objs, errors.Join(errs...)
}

// File reads and decodes the file at path, as Bytes does.
func File(path string) ([]Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than the limit, so that Bytes sees a file is too large without reading
	// all of a huge one.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Bytes(path, data)
}

// FileResult is what Dir found in one file.
type FileResult struct {
	Path    string
	Objects []Object
	// Err joins the problems of the file's documents (or says why it could not be read).
	// Objects holds the documents that decoded even when Err is set.
	Err error
}

// Extensions Dir reads; other files (READMEs, editors' backups) are ignored.
var Extensions = []string{".yaml", ".yml", ".json"}

// Dir decodes every .yaml, .yml and .json file directly in dir (not in subdirectories, and not
// hidden files: editors and Kubernetes ConfigMap mounts keep their temporary files and the
// ..data link there), sorted by name. Each file has its own result: one bad file never hides
// the others. The error is set only when dir itself cannot be read.
func Dir(dir string) ([]FileResult, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []FileResult
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !hasExt(n) {
			continue
		}
		p := filepath.Join(dir, n)
		// Follow symbolic links (ConfigMap mounts link each key), skip directories.
		st, err := os.Stat(p)
		if err != nil {
			out = append(out, FileResult{Path: p, Err: err})
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		objs, err := File(p)
		out = append(out, FileResult{Path: p, Objects: objs, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func hasExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// document is one document's text and where it starts.
type document struct {
	index, line int
	data        []byte
}

type syntaxError struct {
	doc, line int
	err       error
}

func (e *syntaxError) Error() string { return e.err.Error() }

// split cuts data at document separators the way kubectl's YAML reader
// (k8s.io/apimachinery/pkg/util/yaml) does: a line starting with --- followed by nothing but
// spaces or a comment. Content after --- on the same line is refused, as kubectl does. A
// leading UTF-8 byte order mark is dropped.
func split(data []byte) ([]document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []document
	cur := document{index: 1, line: 1}
	start := 0
	line := 1
	for i := 0; i < len(data); line++ {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			end += i
			next = end + 1
		} else {
			end = len(data)
		}
		l := bytes.TrimRight(data[i:end], "\r")
		if rest, ok := bytes.CutPrefix(l, []byte("---")); ok {
			t := bytes.TrimSpace(rest)
			if len(t) > 0 && t[0] != '#' {
				return nil, &syntaxError{doc: cur.index, line: line, err: fmt.Errorf("content after the document separator ---: put it on the next line")}
			}
			cur.data = data[start:i]
			docs = append(docs, cur)
			cur = document{index: cur.index + 1, line: line + 1}
			start = next
		}
		i = next
	}
	cur.data = data[min(start, len(data)):]
	docs = append(docs, cur)
	// Documents are numbered as written, empty ones included, so "document 3" is the third
	// one a reader counts.
	return docs, nil
}

// lineError carries the line of a problem inside a document.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }

var (
	yamlLine     = regexp.MustCompile(`^(?:error converting YAML to JSON: )?yaml: (?:unmarshal errors:\n\s*)?line (\d+): ([^\n]*)`)
	jsonType     = regexp.MustCompile(`json: cannot unmarshal (\w+) into Go struct field \w+\.(\S+) of type (\S+)`)
	goTypeNames  = strings.NewReplacer("int32", "integer", "int64", "integer", "bool", "boolean", "[]", "list of ", "v1alpha1.", "", "v1.", "")
	jsonPrefixes = []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: "}
)

// decode decodes one document; it returns nil for an empty one.
func decode(d document) (*Object, error) {
	if empty(d.data) {
		return nil, nil
	}
	var probe map[string]any
	if err := yaml.Unmarshal(d.data, &probe); err != nil {
		return nil, yamlError(d, err)
	}
	if probe == nil {
		return nil, fmt.Errorf("%w: the document is not a mapping", ErrKind)
	}
	apiVersion, _ := probe["apiVersion"].(string)
	kind, _ := probe["kind"].(string)
	if apiVersion != v1alpha1.GroupVersion.String() {
		if apiVersion == "" {
			return nil, fmt.Errorf("%w: apiVersion is missing: want %s", ErrKind, v1alpha1.GroupVersion)
		}
		return nil, fmt.Errorf("%w: apiVersion %q: want %s", ErrKind, apiVersion, v1alpha1.GroupVersion)
	}
	var target any
	o := &Object{}
	switch kind {
	case KindLogPipeline:
		o.Pipeline = &v1alpha1.LogPipeline{}
		target = o.Pipeline
	case KindLogRouterPolicy:
		o.Policy = &v1alpha1.LogRouterPolicy{}
		target = o.Policy
	case "":
		return nil, fmt.Errorf("%w: kind is missing: want %s or %s", ErrKind, KindLogPipeline, KindLogRouterPolicy)
	default:
		return nil, fmt.Errorf("%w: kind %q: want %s or %s (one object per document, separated by ---)", ErrKind, kind, KindLogPipeline, KindLogRouterPolicy)
	}
	// Unknown fields, with their path and line, as the API server names them.
	if err := unknownFields(d, target); err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(d.data, target); err != nil {
		return nil, yamlError(d, err)
	}
	if err := checkMeta(o); err != nil {
		return nil, err
	}
	return o, nil
}

// checkMeta checks what the API server would refuse in metadata, since a directory has no API
// server in front of it.
func checkMeta(o *Object) error {
	var errs []error
	if o.Pipeline != nil {
		m := o.Pipeline.ObjectMeta
		if m.Name == "" {
			errs = append(errs, errors.New("metadata.name: Required value"))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
				errs = append(errs, fmt.Errorf("metadata.name: Invalid value: %q: %s", m.Name, msg))
			}
		}
		if m.Namespace != "" {
			for _, msg := range validation.IsDNS1123Label(m.Namespace) {
				errs = append(errs, fmt.Errorf("metadata.namespace: Invalid value: %q: %s", m.Namespace, msg))
			}
		}
	}
	if o.Policy != nil {
		if n := o.Policy.Name; n != v1alpha1.PolicyName {
			errs = append(errs, fmt.Errorf("metadata.name: Invalid value: %q: the cluster has one LogRouterPolicy, named %s", n, v1alpha1.PolicyName))
		}
		if o.Policy.Namespace != "" {
			errs = append(errs, fmt.Errorf("metadata.namespace: Invalid value: %q: LogRouterPolicy is cluster-scoped", o.Policy.Namespace))
		}
	}
	return errors.Join(errs...)
}

func empty(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// yamlError turns a YAML parser's "line N" (counted in the document) into the file's line.
func yamlError(d document, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &lineError{line: d.line + n - 1, err: errors.New(m[2])}
	}
	msg := err.Error()
	if m := jsonType.FindStringSubmatch(msg); m != nil {
		// "cannot unmarshal string into Go struct field LogPipeline.spec.steps.sample.oneIn of
		// type int32" names Go types; say it in the API's terms.
		return fmt.Errorf("%s: Invalid value: got a %s, want %s", m[2], m[1], goTypeNames.Replace(m[3]))
	}
	for _, p := range jsonPrefixes {
		msg = strings.TrimPrefix(msg, p)
	}
	return errors.New(msg)
}
