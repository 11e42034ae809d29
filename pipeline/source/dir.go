package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/logrouter/logrouter/pipeline"
	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
	"github.com/logrouter/logrouter/pipeline/load"
)

// DirConfig configures a Dir source.
type DirConfig struct {
	// Dir holds the pipeline files: *.yaml, *.yml and *.json, not in subdirectories; names
	// starting with "." are skipped (a Kubernetes ConfigMap mount's ..data works as is).
	Dir string
	// Interval between two reads of the directory.
	Interval time.Duration
}

// DefaultDirConfig returns the defaults.
func DefaultDirConfig() DirConfig { return DirConfig{Interval: time.Second} }

// Validate reports every problem of the configuration.
func (c DirConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("pipelines dir: empty"))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("pipelines interval %v: must be positive", c.Interval))
	}
	return errors.Join(errs...)
}

// Dir is the --pipelines-dir source. It reads the directory every Interval; a read that finds
// any file added, changed or removed builds the whole state and applies it once (so a burst
// of edits between two reads is one apply), and a read that finds nothing changed applies
// nothing. A changed file is used when two reads in a row agree, so that a file read in the
// middle of a write is never applied: a change takes effect within two intervals. The last valid version of each pipeline (per file and name) is kept in memory: a
// file edited into an invalid pipeline, or into a file that does not decode at all, keeps the
// previous version running; after a restart only what is valid on disk runs.
type Dir struct {
	cfg  DirConfig
	out  pipeline.Applier
	log  *slog.Logger
	m    *metrics
	fErr prometheus.Counter
	b    *builder
	lim  *rate.Limiter

	// tick replaces the ticker in tests: each receive is one read of the directory.
	tick <-chan time.Time

	files    map[string]*dirFile
	gens     map[fileKey]generation
	lastGood map[fileKey]*v1alpha1.AcceptedSpec
	policy   *pipeline.Policy
	polJSON  string // of the policy in force
	badJSON  string // of the last invalid policy, reported once
}

type dirFile struct {
	data    []byte        // the content last used
	used    bool          // data was used (a file may be empty)
	pending *[]byte       // a changed content read once, used when the next read agrees
	docs    []load.Object // the last version of the file that decoded
}

type fileKey struct{ file, ns, name string }

type generation struct {
	gen  int64
	spec string
}

// NewDir returns a Dir source pushing to out. The directory must exist.
func NewDir(cfg DirConfig, out pipeline.Applier, reg prometheus.Registerer, log *slog.Logger) (*Dir, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("pipelines dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("pipelines dir %s: not a directory", cfg.Dir)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	fErr := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logrouter_collector_pipeline_file_errors_total",
		Help: "Versions of files in --pipelines-dir that could not be read or decoded; the pipelines of the file's last good version keep running.",
	})
	if err := reg.Register(fErr); err != nil {
		return nil, fmt.Errorf("register pipeline source metrics: %w", err)
	}
	log = log.With("source", "dir", "dir", cfg.Dir)
	return &Dir{
		cfg: cfg, out: out, log: log, m: m, fErr: fErr, b: newBuilder(log, m),
		lim:   rate.NewLimiter(rate.Every(time.Minute), 3),
		files: map[string]*dirFile{}, gens: map[fileKey]generation{}, lastGood: map[fileKey]*v1alpha1.AcceptedSpec{},
	}, nil
}

// Run reads the directory now and then every Interval, until ctx ends.
func (d *Dir) Run(ctx context.Context) error {
	tick := d.tick
	if tick == nil {
		t := time.NewTicker(d.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	d.scan(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			d.scan(false)
		}
	}
}

// scan reads the directory and applies the state when anything changed (or first).
func (d *Dir) scan(first bool) {
	names, err := d.list()
	if err != nil {
		// A directory that cannot be read (an unmounted volume) is not "every pipeline
		// deleted": the state stays as it is.
		if d.lim.Allow() {
			d.log.Error("cannot read the pipelines directory; pipelines stay as they are", "error", err.Error())
		}
		return
	}
	changed := first
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
		data, err := readFile(filepath.Join(d.cfg.Dir, name))
		f := d.files[name]
		if f == nil {
			f = &dirFile{}
			d.files[name] = f
		}
		if err != nil {
			// Unreadable now: keep what it held, try again at the next read.
			f.pending = nil
			if d.lim.Allow() {
				d.fileError(name, err)
			}
			continue
		}
		if f.used && bytes.Equal(f.data, data) {
			f.pending = nil
			continue
		}
		// A changed file is used once two reads in a row agree (or at the first read of
		// all): a file caught in the middle of a write is never applied.
		if !first && (f.pending == nil || !bytes.Equal(*f.pending, data)) {
			f.pending = &data
			continue
		}
		changed = true
		f.pending, f.data, f.used = nil, data, true
		docs, err := load.Bytes(name, data)
		if err != nil {
			// One bad document makes the whole file invalid: its pipelines keep their last
			// valid versions (a document that does not decode has no trustworthy name).
			d.fileError(name, err)
			continue
		}
		f.docs = docs
	}
	for name := range d.files {
		if !seen[name] {
			changed = true
			delete(d.files, name)
			d.log.Info("pipeline file removed: its pipelines stop", "file", name)
		}
	}
	if !changed {
		return
	}
	d.apply()
}

// readFile reads at most one byte more than load.MaxFileBytes (load.Bytes refuses the file
// then): a log file dropped into the directory by mistake is not read whole every interval.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, load.MaxFileBytes+1))
}

func (d *Dir) fileError(name string, err error) {
	d.fErr.Inc()
	msg := "pipeline file invalid: the pipelines of its last valid version keep running"
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
		msg = "pipeline file unreadable: the pipelines of its last valid version keep running"
	}
	if d.files[name] == nil || d.files[name].docs == nil {
		msg = "pipeline file invalid: none of its pipelines run"
	}
	d.log.Error(msg, "file", name, "error", err.Error())
}

func (d *Dir) list() ([]string, error) {
	ents, err := os.ReadDir(d.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		if !slices.Contains(load.Extensions, filepath.Ext(n)) {
			continue
		}
		// Stat follows symlinks (ConfigMap mounts link each file into ..data).
		if st, err := os.Stat(filepath.Join(d.cfg.Dir, n)); err != nil || !st.Mode().IsRegular() {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// apply builds the state from the files' documents and hands it to the collector.
func (d *Dir) apply() {
	names := make([]string, 0, len(d.files))
	for n := range d.files {
		names = append(names, n)
	}
	sort.Strings(names)

	var entries []Entry
	var keys []fileKey
	owner := map[key]string{}
	policyFile := ""
	for _, name := range names {
		for _, doc := range d.files[name].docs {
			where := fmt.Sprintf("%s:%d", name, doc.Line)
			if pol := doc.Policy; pol != nil {
				if policyFile != "" {
					d.fErr.Inc()
					d.log.Error("a second LogRouterPolicy is ignored: the cluster has one", "file", where, "first", policyFile)
					continue
				}
				policyFile = where
				d.setPolicy(where, &pol.Spec)
				continue
			}
			p := doc.Pipeline
			if p.Namespace == "" {
				d.fErr.Inc()
				d.log.Error("LogPipeline without metadata.namespace is ignored: a pipelines directory names each pipeline's namespace", "file", where, "pipeline", p.Name)
				continue
			}
			k := key{p.Namespace, p.Name}
			if first, dup := owner[k]; dup {
				d.fErr.Inc()
				d.log.Error("LogPipeline defined twice: the first (by file name) is used", "file", where, "first", first, "namespace", p.Namespace, "pipeline", p.Name)
				continue
			}
			owner[k] = where
			fk := fileKey{name, p.Namespace, p.Name}
			spec, _ := json.Marshal(p.Spec)
			g := d.gens[fk]
			if g.spec != string(spec) {
				g = generation{gen: g.gen + 1, spec: string(spec)}
				d.gens[fk] = g
			}
			acc := d.lastGood[fk]
			version := entryVersion("", g.gen, acc)
			entries = append(entries, Entry{
				Namespace: p.Namespace, Name: p.Name, Generation: g.gen,
				Spec: p.Spec.DeepCopy(), Accepted: acc, Origin: "file " + where, Version: version,
			})
			keys = append(keys, fk)
		}
	}
	if policyFile == "" && d.policy != nil {
		d.log.Info("no LogRouterPolicy in the pipelines directory any more: the defaults apply")
		d.policy, d.polJSON = nil, ""
	}

	st, results := d.b.build(d.policy, entries)
	live := make(map[fileKey]bool, len(keys))
	for i, r := range results {
		fk := keys[i]
		live[fk] = true
		if r.Running == RunningCurrent {
			d.lastGood[fk] = &v1alpha1.AcceptedSpec{Generation: r.Entry.Generation, Spec: *r.Entry.Spec}
		}
	}
	for fk := range d.gens {
		if !live[fk] {
			delete(d.gens, fk)
			delete(d.lastGood, fk)
		}
	}
	d.out.Apply(st)
}

// setPolicy compiles a policy document; an invalid one keeps the previous policy.
func (d *Dir) setPolicy(where string, spec *v1alpha1.LogRouterPolicySpec) {
	js, _ := json.Marshal(spec)
	if string(js) == d.polJSON || string(js) == d.badJSON {
		return
	}
	p, err := pipeline.CompilePolicy(spec)
	if err != nil {
		d.badJSON = string(js)
		d.m.policy.Inc()
		d.log.Error("LogRouterPolicy invalid: the previous policy (or the defaults) stays in force", "file", where, "error", err.Error())
		return
	}
	d.policy, d.polJSON, d.badJSON = p, string(js), ""
}
