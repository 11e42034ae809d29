package router

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/assemble"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// Node files (router/nodefiles) are read by the container-log tailer itself: a scan adds their
// globs' matches as candidates, so they have the same rotation handling (rename, copytruncate),
// checkpoints, restart read-back and loss accounting. What differs is decided per source: the
// topic, the record's source fields, the parser, and the fixed policy (no tenant's policy,
// limits or pipelines apply). Each source is one participant of the byte budget's fair share.

// nodeSource is one configured node file source, resolved.
type nodeSource struct {
	cfg         nodefiles.Source
	parser      nodefiles.Parser
	participant string // its name in the budget and the per-namespace metrics
	namespace   string // the platform namespace in its records and headers
	topic       string
	topicErr    error
	key         []byte
	pol         *nsPolicy
	parseErrors *prometheus.CounterVec // by reason
	// missing holds the globs' directories the last scan did not find (scans only), and
	// dirsMissing is their number, per source.
	missing     map[string]bool
	dirsMissing prometheus.Gauge
}

// newNodeSources resolves the configured sources (cfg is valid).
func (c *Collector) newNodeSources(reg prometheus.Registerer) {
	if len(c.cfg.NodeFiles.Sources) == 0 {
		return
	}
	parseErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "logrouter", Subsystem: "collector", Name: "node_file_parse_errors_total",
		Help: "Node file lines their source's parser (json, kube-audit) could not parse, shipped unchanged with parse_error, per source and reason."}, []string{"source", "reason"})
	dirsMissing := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "logrouter", Subsystem: "collector", Name: "node_file_dirs_missing",
		Help: "Directories of a node file source's globs that did not exist at the last scan (their files are read once they appear), per source."}, []string{"source"})
	reg.MustRegister(parseErrors, dirsMissing)
	c.nodeDirLog = newErrLog(c.log, slog.LevelWarn, time.Minute)
	c.nodeSrcs = map[string]*nodeSource{}
	for _, s := range c.cfg.NodeFiles.Sources {
		ns := &nodeSource{cfg: s, parser: s.ParserOf(), participant: s.Participant(), namespace: topic.NodeSource(s.Name),
			key: []byte(c.cfg.Node + "/" + s.Name), pol: &nsPolicy{}, parseErrors: parseErrors,
			missing: map[string]bool{}, dirsMissing: dirsMissing.WithLabelValues(s.Name)}
		ns.pol.Collected = true
		ns.topic = s.Topic
		if ns.topic == "" {
			ns.topic, ns.topicErr = c.tmpl.Render(ns.namespace, nil)
			if ns.topicErr != nil {
				ns.topicErr = fmt.Errorf("node file source %s: %w (set its topic when --topic-template uses namespace labels)", s.Name, ns.topicErr)
			}
		}
		c.nodeSrcs[ns.participant] = ns
		c.nodeOrder = append(c.nodeOrder, ns)
	}
}

// nodeSource returns the node source whose participant is ns (nil: a namespace's file).
func (c *Collector) nodeSource(ns string) *nodeSource {
	if c.nodeSrcs == nil {
		return nil
	}
	return c.nodeSrcs[ns]
}

// fileTopic is the topic of the records of files under budget name ns: a node source's, or the
// namespace's under the template (without labels).
func (c *Collector) fileTopic(ns string) (string, error) {
	if n := c.nodeSource(ns); n != nil {
		return n.topic, n.topicErr
	}
	return c.tmpl.Render(ns, nil)
}

// scanNodeFiles adds the files the node sources' globs match. In each glob the most recently
// modified file is the live one, the others rotated (read first, oldest first). A file that is
// wrongly taken for rotated is let go at its end and read on from its position when it grows.
func (c *Collector) scanNodeFiles(add func(candidate), covered map[string]bool) {
	for _, ns := range c.nodeOrder {
		for _, glob := range ns.cfg.Paths {
			ms := c.globMatches(ns, glob, covered)
			newest := -1
			for i, m := range ms {
				if newest < 0 || newer(m.mtime, m.path, ms[newest].mtime, ms[newest].path) {
					newest = i
				}
			}
			for i, m := range ms {
				add(candidate{path: m.path, meta: filemeta.PathMeta{Namespace: ns.participant, File: m.path}, live: i == newest,
					group: ns.participant + ":" + glob, node: ns})
			}
		}
		ns.dirsMissing.Set(float64(len(ns.missing)))
	}
}

type nodeMatch struct {
	path  string
	mtime time.Time
}

// globMatches lists glob's files with their modification times, as one consistent view: a
// rename between the listing and the stats (the live file rotated away: its new name missing,
// its old name giving the new file) would make a newer file look like the only one, read before
// the rest of the old, so the directory is listed again after the stats until it did not change.
func (c *Collector) globMatches(ns *nodeSource, glob string, covered map[string]bool) []nodeMatch {
	dir, pat := filepath.Split(glob)
	dir = filepath.Clean(dir)
	list := func() []string {
		var names []string
		for _, e := range c.nodeDir(ns, glob, dir) {
			name := e.Name()
			if ok, _ := filepath.Match(pat, name); ok && !nodefiles.Compressed(name) && !covered[filepath.Join(dir, name)] {
				names = append(names, name)
			}
		}
		return names
	}
	names := list()
	var ms []nodeMatch
	for range 5 {
		ms = ms[:0]
		for _, name := range names {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				ms = append(ms, nodeMatch{p, fi.ModTime()})
			}
		}
		again := list()
		if slices.Equal(names, again) {
			break
		}
		names = again
	}
	return ms
}

// nodeDir lists the directory of a node source's glob. A missing one is no scan error (the
// kube-apiserver's audit directory exists on control-plane nodes only, one DaemonSet runs on
// all) but is reported: logged when it goes missing and when it appears (at a bounded rate),
// and counted in the source's node_file_dirs_missing gauge while missing. Its files are read
// from their start once it appears, as every scan lists it again.
func (c *Collector) nodeDir(ns *nodeSource, glob, dir string) []os.DirEntry {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !ns.missing[dir] {
			ns.missing[dir] = true
			c.nodeDirLog.Log("node file directory missing: its files are read once it appears", "source", ns.cfg.Name, "glob", glob, "dir", dir, "err", err)
		}
		return nil
	case err != nil:
		c.metrics.scanErrors.WithLabelValues("node").Inc()
		c.scanLog.Log("log directory cannot be read: the files in it are not collected", "dir", dir, "source", ns.cfg.Name, "err", err)
	case ns.missing[dir]:
		delete(ns.missing, dir)
		c.nodeDirLog.Log("node file directory appeared: its files are read", "source", ns.cfg.Name, "glob", glob, "dir", dir)
	}
	return ents
}

// newer reports whether file a is taken for newer than b: modified later, or, at the same
// modification time (a coarse clock: rotated and written again within one tick), the shorter
// name, as the live file's name is in every rotation scheme (audit.log, audit.log.1,
// audit-2026-12-01T19-40-00.000.log).
func newer(at time.Time, a string, bt time.Time, b string) bool {
	if !at.Equal(bt) {
		return at.After(bt)
	}
	return len(a) < len(b) || len(a) == len(b) && a < b
}

// nodeHandle is a node file's metadata: its source's namespace, the node and the file.
func (c *Collector) nodeHandle(ns *nodeSource, m filemeta.PathMeta) filemeta.Handle {
	src := record.Source{Namespace: ns.namespace, Node: c.cfg.Node, Cluster: c.cfg.Cluster, File: m.File, Src: m.Src}
	return filemeta.Static(&filemeta.Snapshot{Fragment: src.Fragment(), Namespace: ns.participant, Key: string(ns.key)})
}

// nodeView makes v a node source's view: its topic, key and headers.
func (ns *nodeSource) view(v *fileView) {
	v.node = ns
	v.topic, v.topicOK = ns.topic, ns.topicErr
	v.key = ns.key
	v.headers = []kgo.RecordHeader{
		{Key: record.HeaderNamespace, Value: []byte(ns.namespace)},
		{Key: record.HeaderSchema, Value: record.SchemaHeaderValue},
	}
	v.pol, v.polSrc = ns.pol, nil
}

// parseLine applies the source's parser to line o of record l: fields and ts from the line, or
// parse_error (the line ships unchanged). Node records have no stream.
func (f *file) parseNodeLine(ch *chunk, ns *nodeSource, o *assemble.Output, l *record.Line) {
	l.Stream = ""
	if ns.parser == nodefiles.ParserRaw || o.ParseError != "" {
		return
	}
	if o.Split {
		// Only the whole line is an object or an event: its chunks ship as they are.
		if o.Index == 0 {
			l.FieldsError = string(ns.parser) + ": line longer than the largest record message: shipped split, without fields"
		}
		return
	}
	fields, ts, err := ns.parser.Fields(f.fieldsBuf[:0], o.Msg)
	f.fieldsBuf = fields[:0]
	if err != nil {
		var pe *nodefiles.ParseError
		reason := "unknown"
		if errors.As(err, &pe) {
			reason = pe.Reason
		}
		ns.parseErrors.WithLabelValues(ns.cfg.Name, reason).Inc()
		ch.counts.parseErrs++
		l.ParseError = err.Error()
		return
	}
	// The fields come on top of the message: a record that would exceed what the topic takes
	// ships without them (the message has every byte) rather than fail.
	frag := len(ch.view.snap.Fragment)
	lineMax := f.lineMax
	if lineMax == 0 {
		lineMax = f.c.cfg.MaxLineBytes
	}
	if record.MaxValueLen(len(o.Msg), frag+len(`,"fields":`)+len(fields)) > record.MaxValueLen(lineMax, frag) {
		l.FieldsError = string(ns.parser) + ": fields left out: with them the record would exceed the topic's max.message.bytes"
		return
	}
	l.Fields = fields
	if ts != nil {
		l.TS = ts
	}
}
