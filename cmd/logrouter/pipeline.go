//go:build !collector

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/load"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/cri"
	"github.com/logrouter/logrouter/router/dockerjson"
	"github.com/logrouter/logrouter/router/logline"
)

func init() {
	commands["pipeline"] = command{summary: "check a team's LogPipelines offline (validate|test): for CI and for trying them on sample lines", run: runPipeline,
		actions: []string{"validate", "test"}}
}

const pipelineUsage = `usage:
  logrouter pipeline validate -f FILE|DIR [-f ...] [--policy FILE] [--namespace NS]
  logrouter pipeline test -f FILE|DIR [-f ...] --input FILE|- [--format auto|cri|docker|raw] [--explain]
                          [--namespace NS] [--pod NAME] [--container NAME] [--labels k=v,...] [--policy FILE]

validate prints one line per pipeline, "ok" or each problem (the message the controller puts in
the pipeline's Accepted condition), and exits 1 when any is invalid. test prints, as JSON lines,
the records the pipelines would produce from the sample lines; with --explain, a "#" line before
each record says what each step did. See docs/pipelines.md.`

func runPipeline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, pipelineUsage)
		return errors.New("missing action")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stderr, pipelineUsage+"\n\nRun 'logrouter pipeline ACTION -h' for an action's flags.")
		return flag.ErrHelp
	}
	action, args := args[0], args[1:]
	fs := cli.NewFlagSet("pipeline "+action, stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, pipelineUsage+"\n\nflags:")
		fs.PrintDefaults()
	}
	var files multiFlag
	fs.Var(&files, "f", "a file of LogPipeline (and LogRouterPolicy) documents, or a directory of them (repeat for several)")
	policyFile := fs.String("policy", "", "a file with the platform's LogRouterPolicy (default: one found among -f, else the defaults)")
	namespace := fs.String("namespace", "", "namespace of pipelines without metadata.namespace (validate; default \"default\"), or of the sample lines (test; default: the pipelines' namespace)")
	var t testOptions
	switch action {
	case "validate":
	case "test":
		fs.StringVar(&t.input, "input", "", "sample log lines: a file, or - for stdin")
		fs.StringVar(&t.format, "format", "auto", "format of the sample: auto (from the first line), cri, docker (json-file) or raw")
		fs.BoolVar(&t.explain, "explain", false, `before each record, print a "#" line saying what each step changed, dropped or held`)
		fs.StringVar(&t.meta.Pod, "pod", "sample", "pod name of the sample lines")
		fs.StringVar(&t.meta.Container, "container", "app", "container name of the sample lines (selector.containers)")
		fs.StringVar(&t.labels, "labels", "", "pod labels of the sample lines, k=v,k2=v2 (selector.pods)")
	default:
		fmt.Fprintln(stderr, pipelineUsage)
		return fmt.Errorf("unknown action %q", action)
	}
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("-f: give at least one file or directory")
	}
	docs, loadErr := loadPipelineDocs(files, *policyFile)
	switch action {
	case "validate":
		return pipelineValidate(docs, loadErr, *namespace, stdout)
	default:
		if loadErr != nil {
			return loadErr
		}
		if t.input == "" {
			return errors.New("--input: give a file of sample lines (or - for stdin)")
		}
		return pipelineTest(ctx, docs, *namespace, t, os.Stdin, stdout, stderr)
	}
}

// pipelineDocs are the documents of the files given with -f.
type pipelineDocs struct {
	pipelines []pipelineDoc
	policy    *v1alpha1.LogRouterPolicy
	policyAt  string
}

type pipelineDoc struct {
	where string // file:line
	p     *v1alpha1.LogPipeline
}

// loadPipelineDocs reads every file (directories: the files pipeline/load.Dir reads). The
// documents that decoded are returned with the problems of those that did not (file:line).
func loadPipelineDocs(paths []string, policyFile string) (*pipelineDocs, error) {
	var objs []load.Object
	var errs []error
	if policyFile != "" {
		o, err := load.File(policyFile)
		objs, errs = append(objs, o...), append(errs, err)
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !st.IsDir() {
			o, err := load.File(p)
			objs, errs = append(objs, o...), append(errs, err)
			continue
		}
		res, err := load.Dir(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range res {
			objs, errs = append(objs, r.Objects...), append(errs, r.Err)
		}
	}
	out := &pipelineDocs{}
	for _, o := range objs {
		where := fmt.Sprintf("%s:%d", o.File, o.Line)
		if o.Policy != nil {
			if out.policy != nil {
				errs = append(errs, fmt.Errorf("%s: a second LogRouterPolicy (the first is at %s): the cluster has one", where, out.policyAt))
				continue
			}
			out.policy, out.policyAt = o.Policy, where
			continue
		}
		out.pipelines = append(out.pipelines, pipelineDoc{where: where, p: o.Pipeline})
	}
	return out, errors.Join(errs...)
}

func (d *pipelineDocs) compilePolicy() (*pipeline.Policy, error) {
	if d.policy == nil {
		return nil, nil
	}
	p, err := pipeline.CompilePolicy(&d.policy.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s: LogRouterPolicy: %w", d.policyAt, err)
	}
	return p, nil
}

// errInvalid is returned when a pipeline is invalid (the problems are printed already).
var errInvalid = errors.New("invalid")

func pipelineValidate(docs *pipelineDocs, loadErr error, namespace string, stdout io.Writer) error {
	if namespace == "" {
		namespace = "default"
	}
	bad, badDocs := 0, 0
	// Documents that do not decode are problems like any other: the others are still checked.
	if loadErr != nil {
		for _, l := range strings.Split(loadErr.Error(), "\n") {
			badDocs++
			fmt.Fprintln(stdout, l)
		}
	}
	policy, err := docs.compilePolicy()
	if err != nil {
		return err
	}
	if len(docs.pipelines) == 0 && badDocs == 0 {
		return errors.New("no LogPipeline in the files given")
	}
	seen := map[string]string{}
	perNS := map[string]int{}
	for _, d := range docs.pipelines {
		ns := d.p.Namespace
		if ns == "" {
			ns = namespace
		}
		id := ns + "/" + d.p.Name
		var problems []string
		if first, dup := seen[id]; dup {
			problems = append(problems, "defined twice (first at "+first+")")
		} else {
			seen[id] = d.where
			perNS[ns]++
		}
		if _, err := pipeline.Compile(ns, d.p.Name, max(d.p.Generation, 1), &d.p.Spec, policy); err != nil {
			problems = append(problems, strings.Split(err.Error(), "\n")...)
		}
		if len(problems) == 0 {
			fmt.Fprintf(stdout, "%s: %s: ok\n", d.where, id)
			continue
		}
		bad++
		for _, p := range problems {
			fmt.Fprintf(stdout, "%s: %s: %s\n", d.where, id, p)
		}
	}
	nss := make([]string, 0, len(perNS))
	for ns := range perNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		if err := pipeline.CheckNamespace(ns, perNS[ns], policy); err != nil {
			bad++
			fmt.Fprintf(stdout, "namespace %s: %v\n", ns, err)
		}
	}
	switch {
	case badDocs > 0:
		return fmt.Errorf("%w: %d of %d pipelines have problems, and %d documents do not decode", errInvalid, bad, len(docs.pipelines), badDocs)
	case bad > 0:
		return fmt.Errorf("%w: %d of %d pipelines have problems", errInvalid, bad, len(docs.pipelines))
	}
	return nil
}

type testOptions struct {
	input, format, labels string
	explain               bool
	meta                  pipeline.Meta
}

// testLine is one logical line of the sample.
type testLine struct {
	n      int // line number in the sample
	rec    pipeline.Record
	parseE string
}

// pipelineTest runs the pipelines on the sample lines and prints the records.
func pipelineTest(ctx context.Context, docs *pipelineDocs, namespace string, o testOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	policy, err := docs.compilePolicy()
	if err != nil {
		return err
	}
	if namespace == "" {
		for _, d := range docs.pipelines {
			if d.p.Namespace != "" {
				namespace = d.p.Namespace
				break
			}
		}
		if namespace == "" {
			namespace = "default"
		}
	}
	o.meta.Namespace = namespace
	if o.labels != "" {
		o.meta.Labels = map[string]string{}
		for _, kv := range strings.Split(o.labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--labels %q: want k=v,k2=v2", o.labels)
			}
			o.meta.Labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var ps []*pipeline.Pipeline
	specs := map[string]*v1alpha1.LogPipelineSpec{}
	for _, d := range docs.pipelines {
		ns := d.p.Namespace
		if ns == "" {
			ns = namespace
		}
		if ns != namespace {
			fmt.Fprintf(stderr, "%s: %s/%s is ignored: the sample's namespace is %s (--namespace)\n", d.where, ns, d.p.Name, namespace)
			continue
		}
		p, err := pipeline.Compile(ns, d.p.Name, max(d.p.Generation, 1), &d.p.Spec, policy)
		if err != nil {
			return fmt.Errorf("%s: %s/%s is invalid (run pipeline validate):\n%w", d.where, ns, d.p.Name, err)
		}
		ps = append(ps, p)
		specs[p.Name] = &d.p.Spec
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	set := pipeline.NewSet(namespace, ps)

	var in io.Reader = stdin
	if o.input != "-" {
		f, err := os.Open(o.input)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("--input: %w", err)
	}
	lines, err := sampleLines(data, o.format)
	if err != nil {
		return err
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	nsTopic := topic.Of(namespace)
	runs := map[*pipeline.Pipeline]*tracedRunner{}
	var order []*tracedRunner
	for _, l := range lines {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.rec.Meta = &o.meta
		p := set.For(&o.meta, l.rec.Stream)
		if p == nil {
			if o.explain {
				fmt.Fprintf(w, "# line %d: no pipeline selects it: shipped unchanged\n", l.n)
			}
			writeTestRecord(w, nsTopic, "", &l.rec)
			continue
		}
		tr := runs[p]
		if tr == nil {
			if tr, err = newTracedRunner(p, specs[p.Name], policy, o.explain); err != nil {
				return err
			}
			runs[p] = tr
			order = append(order, tr)
		}
		tr.process(w, l, topic.WithSuffix(nsTopic, p.Suffix))
	}
	for _, tr := range order {
		tr.flush(w, topic.WithSuffix(nsTopic, tr.p.Suffix))
	}
	return w.Flush()
}

// sampleLines parses the sample into logical lines: CRI and docker lines through the
// collector's own assembler (partial lines joined as the collector joins them), raw lines as
// they are.
func sampleLines(data []byte, format string) ([]testLine, error) {
	var f logline.Format
	switch format {
	case "auto":
		// The first line decides, as in the collector, but only when it parses: a sample of
		// raw JSON lines starts with '{' too.
		first, _, _ := bytes.Cut(data, []byte("\n"))
		first = bytes.TrimSuffix(first, []byte("\r"))
		switch f = logline.Detect(first); f {
		case logline.FormatCRI:
			if _, err := cri.Parse(first, nil); err != nil {
				f = logline.FormatUnknown
			}
		case logline.FormatDocker:
			if _, err := dockerjson.Parse(first, nil); err != nil {
				f = logline.FormatUnknown
			}
		}
	case "cri":
		f = logline.FormatCRI
	case "docker":
		f = logline.FormatDocker
	case "raw":
	default:
		return nil, fmt.Errorf("--format %q: want auto, cri, docker or raw", format)
	}
	var out []testLine
	if f == logline.FormatUnknown {
		off := int64(0)
		for i, l := range bytes.SplitAfter(data, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			msg := bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
			out = append(out, testLine{n: i + 1, rec: pipeline.Record{Stream: "stdout", Message: bytes.Clone(msg), Start: off, End: off + int64(len(l)), Lines: 1}})
			off += int64(len(l))
		}
		return out, nil
	}
	// Physical line numbers, to name a line in --explain.
	lineAt := func(off int64) int { return bytes.Count(data[:min(off, int64(len(data)))], []byte("\n")) + 1 }
	a := assemble.New(assemble.Config{Format: f, MaxLine: 1 << 20, Now: func() []byte { return []byte("1970-01-01T00:00:00.000000000Z") }}, 0, assemble.State{})
	emit := func(o *assemble.Output) {
		ts, _ := time.Parse(time.RFC3339Nano, string(o.TS))
		stream := o.Stream
		if stream == "" { // a malformed line, shipped raw
			stream = "stdout"
		}
		out = append(out, testLine{n: lineAt(o.Start), parseE: o.ParseError,
			rec: pipeline.Record{Time: ts, Stream: stream, Message: bytes.Clone(o.Msg), Start: o.Start, End: o.End, Lines: 1}})
	}
	a.Feed(data, true, emit)
	a.Flush(emit)
	return out, nil
}

// testRecord is what pipeline test prints for a record.
type testRecord struct {
	Topic       string         `json:"topic"`
	Pipeline    string         `json:"pipeline,omitempty"`
	Time        string         `json:"time,omitempty"`
	Stream      string         `json:"stream"`
	Message     string         `json:"message"`
	Fields      map[string]any `json:"fields,omitempty"`
	FieldsError string         `json:"fields_error,omitempty"`
	Lines       int            `json:"lines,omitempty"`
}

func writeTestRecord(w io.Writer, topicName, pipelineName string, r *pipeline.Record) {
	tr := testRecord{Topic: topicName, Pipeline: pipelineName, Stream: r.Stream, Message: string(r.Message), Fields: r.Fields, FieldsError: r.FieldsError}
	if !r.Time.IsZero() {
		tr.Time = r.Time.UTC().Format(time.RFC3339Nano)
	}
	if r.Lines > 1 {
		tr.Lines = r.Lines
	}
	b, _ := json.Marshal(tr)
	w.Write(append(b, '\n'))
}
