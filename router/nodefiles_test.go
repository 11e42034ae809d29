package router

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/loadgen"
	"github.com/logrouter/logrouter/router/nodefiles"
)

// nodeLog is a node file a test writes and rotates: like kube-apiserver's lumberjack (rename to
// a timestamped backup, create the file again, delete old backups) or logrotate's copytruncate.
type nodeLog struct {
	t    testing.TB
	dir  string
	name string // e.g. audit.log
	f    *os.File
	rot  int
}

func newNodeLog(t testing.TB, dir, name string) *nodeLog {
	l := &nodeLog{t: t, dir: dir, name: name}
	l.open()
	t.Cleanup(func() { l.f.Close() })
	return l
}

func (l *nodeLog) path() string { return filepath.Join(l.dir, l.name) }

func (l *nodeLog) open() {
	f, err := os.OpenFile(l.path(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	l.f = f
}

func (l *nodeLog) write(line string) {
	if _, err := l.f.WriteString(line + "\n"); err != nil {
		l.t.Error(err)
	}
}

// rotateRename renames the file to <base>-<n>.<ext> (lumberjack's backup name) and creates it
// again; it keeps the newest keep backups.
func (l *nodeLog) rotateRename(keep int) {
	l.f.Close()
	ext := filepath.Ext(l.name)
	l.rot++
	backup := filepath.Join(l.dir, fmt.Sprintf("%s-%06d%s", strings.TrimSuffix(l.name, ext), l.rot, ext))
	if err := os.Rename(l.path(), backup); err != nil {
		l.t.Fatal(err)
	}
	l.open()
	old, _ := filepath.Glob(filepath.Join(l.dir, strings.TrimSuffix(l.name, ext)+"-*"+ext))
	sort.Strings(old)
	if len(old) > keep {
		for _, p := range old[:len(old)-keep] {
			os.Remove(p)
		}
	}
}

// rotateCopyTruncate copies the file to <name>.<n> and truncates it (logrotate copytruncate).
func (l *nodeLog) rotateCopyTruncate() {
	l.rot++
	src, err := os.Open(l.path())
	if err != nil {
		l.t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(fmt.Sprintf("%s.%d", l.path(), l.rot))
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		l.t.Fatal(err)
	}
	dst.Close()
	if err := l.f.Truncate(0); err != nil {
		l.t.Fatal(err)
	}
}

// nodeTestConfig is testConfig with node file sources and no container writing.
func nodeTestConfig(t testing.TB, brokers string, srcs ...nodefiles.Source) Config {
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, node, brokers)
	cfg.NodeFiles.Sources = srcs
	return cfg
}

// TestNodeFilesRotation writes node files continuously while they rotate, by rename-and-create
// with old backups deleted (kube-apiserver's audit log) and by copytruncate (logrotate), in
// rounds of the same size (a file truncated and written again to the size it was read to is
// told by its content): every line arrives in its source's topic once, and in order for rename
// rotation. Copytruncate's order is checked by TestNodeFilesCopyTruncateSameSize: here the
// collector may be behind by more than one rotation, which keeps no order (docs/collector.md).
func TestNodeFilesRotation(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	renDir, truncDir := t.TempDir(), t.TempDir()
	cfg := nodeTestConfig(t, brokers,
		nodefiles.Source{Name: "apiserver", Paths: []string{filepath.Join(renDir, "audit*.log")}},
		nodefiles.Source{Name: "auditd", Paths: []string{filepath.Join(truncDir, "audit.log*")}, Topic: "logs.platform.auditd"})
	r := startCollector(t, cfg)
	ren, trunc := newNodeLog(t, renDir, "audit.log"), newNodeLog(t, truncDir, "audit.log")

	var wg sync.WaitGroup
	counts := map[string]int{}
	var mu sync.Mutex
	for _, w := range []struct {
		key    string
		l      *nodeLog
		rotate func()
	}{{"ren", ren, func() { ren.rotateRename(2) }}, {"trunc", trunc, trunc.rotateCopyTruncate}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for round := range 8 {
				for range 300 {
					w.l.write(loadgen.SeqMessage(w.key, n, 100))
					n++
				}
				if round < 7 {
					time.Sleep(150 * time.Millisecond) // let the collector see some rotations live, not all
					w.rotate()
				}
			}
			mu.Lock()
			counts[w.key] = n
			mu.Unlock()
		}()
	}
	wg.Wait()
	got := consume(t, brokers, counts["ren"]+counts["trunc"], 60*time.Second)
	var renGot, truncGot []consumed
	for _, g := range got {
		key, _, ok := loadgen.ParseSeq(g.rec.Message)
		switch {
		case !ok:
			t.Errorf("unexpected record %s", g.value)
		case key == "ren":
			renGot = append(renGot, g)
			if g.topic != "logs.node-apiserver" || g.rec.Namespace != "node-apiserver" || g.headers["namespace"] != "node-apiserver" {
				t.Fatalf("rename source's record in topic %s, namespace %q, header %q; want logs.node-apiserver, node-apiserver", g.topic, g.rec.Namespace, g.headers["namespace"])
			}
		default:
			truncGot = append(truncGot, g)
			if g.topic != "logs.platform.auditd" {
				t.Fatalf("copytruncate source's record in topic %s, want its configured logs.platform.auditd", g.topic)
			}
		}
		if g.rec.Stream != "" || g.rec.Node != "node-1" || g.rec.ParseError != "" || !strings.HasPrefix(g.rec.File, renDir) && !strings.HasPrefix(g.rec.File, truncDir) {
			t.Fatalf("node record: stream %q node %q parse_error %q file %q", g.rec.Stream, g.rec.Node, g.rec.ParseError, g.rec.File)
		}
	}
	// Rename rotation keeps order also when a scan missed a backup while it was live (the
	// scans of a loaded machine can be far apart): the new live file waits for the old one.
	if dups := checkSequences(t, renGot, map[string]int{"ren": counts["ren"]}); dups != 0 {
		t.Errorf("rename rotation: %d duplicates without a crash", dups)
	}
	if dups := checkSequencesOrder(t, truncGot, map[string]int{"trunc": counts["trunc"]}, map[string]bool{"trunc": true}); dups != 0 {
		t.Errorf("copytruncate: %d duplicates (no line is written between copy and truncation)", dups)
	}
	t.Logf("%d + %d lines; rotations: rename %v truncate %v copy %v", counts["ren"], counts["trunc"],
		testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("rename")),
		testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("truncate")),
		testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("copy")))
}

// TestNodeFilesCheckpoint stops the collector between writes and rotations: the next run
// resumes every node file from its checkpoint (nothing sent twice, nothing skipped), also for
// a file rotated away (renamed) while it was stopped.
func TestNodeFilesCheckpoint(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	dir := t.TempDir()
	cfg := nodeTestConfig(t, brokers, nodefiles.Source{Name: "audit", Paths: []string{filepath.Join(dir, "audit*.log")}})
	l := newNodeLog(t, dir, "audit.log")
	n := 0
	write := func(k int) {
		for range k {
			l.write(loadgen.SeqMessage("a", n, 80))
			n++
		}
	}
	write(500)
	for run := range 4 {
		r := startCollector(t, cfg)
		consume(t, brokers, n, 30*time.Second) // this run caught up
		write(200)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		// While stopped: more lines, and a rotation in every other run, with the rotated file
		// still holding lines the stopped collector never read.
		write(100)
		if run%2 == 0 {
			l.rotateRename(10)
		}
		write(50)
	}
	startCollector(t, cfg)
	got := consume(t, brokers, n, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"a": n}); dups != 0 {
		t.Errorf("%d duplicates across graceful restarts", dups)
	}
}

// TestNodeFilesParsers: each source's parser makes its records; a line its parser cannot
// parse ships unchanged with parse_error and is counted by reason.
func TestNodeFilesParsers(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	dir := t.TempDir()
	cfg := nodeTestConfig(t, brokers,
		nodefiles.Source{Name: "raw", Paths: []string{filepath.Join(dir, "raw.log")}},
		nodefiles.Source{Name: "json", Paths: []string{filepath.Join(dir, "json.log")}, Parser: nodefiles.ParserJSON},
		nodefiles.Source{Name: "audit", Paths: []string{filepath.Join(dir, "audit.log")}, Parser: nodefiles.ParserKubeAudit})
	cfg.MaxLineBytes = 1024
	event := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"6c2f4c1e-0d3b-4c4e-9b5e-2f0a1b2c3d4e","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/pods?limit=500","verb":"list","user":{"username":"alice","groups":["devs","system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.34.4","objectRef":{"resource":"pods","namespace":"team-a","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-01T19:40:00.123456Z","stageTimestamp":"2026-12-01T19:40:00.125000Z"}`
	long := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","requestURI":"/` + strings.Repeat("a", 2000) + `"}`
	files := map[string][]string{
		"raw.log":   {"plain text line", `{"not":"parsed"}`},
		"json.log":  {`{"level":"info", "msg":"hello", "n":1}`, `not json`, `[1,2]`},
		"audit.log": {event, `{"kind":"Status"}`, long},
	}
	for name, lines := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := startCollector(t, cfg)
	got := consume(t, brokers, 2+3+2+3, 30*time.Second) // the long event is three chunks
	byTopic := map[string][]consumed{}
	for _, g := range got {
		byTopic[g.topic] = append(byTopic[g.topic], g)
	}
	check := func(topic string, i int, msg, parseErr, fieldsErr string, fields map[string]any) {
		t.Helper()
		recs := byTopic[topic]
		if i >= len(recs) {
			t.Errorf("%s: %d records, want more than %d", topic, len(recs), i)
			return
		}
		rec := recs[i].rec
		if msg != "" && rec.Message != msg || rec.ParseError != parseErr || rec.FieldsError != fieldsErr {
			t.Errorf("%s record %d: message %.80q parse_error %q fields_error %q; want %.80q, %q, %q", topic, i, rec.Message, rec.ParseError, rec.FieldsError, msg, parseErr, fieldsErr)
		}
		if fmt.Sprint(rec.Fields) != fmt.Sprint(fields) {
			t.Errorf("%s record %d: fields %v, want %v", topic, i, rec.Fields, fields)
		}
	}
	check("logs.node-raw", 0, "plain text line", "", "", nil)
	check("logs.node-raw", 1, `{"not":"parsed"}`, "", "", nil)
	check("logs.node-json", 0, `{"level":"info", "msg":"hello", "n":1}`, "", "", map[string]any{"level": "info", "msg": "hello", "n": 1.0})
	check("logs.node-json", 1, "not json", "json: not an object", "", nil)
	check("logs.node-json", 2, "[1,2]", "json: not an object", "", nil)
	check("logs.node-audit", 0, event, "", "", map[string]any{
		"audit_id": "6c2f4c1e-0d3b-4c4e-9b5e-2f0a1b2c3d4e", "stage": "ResponseComplete", "level": "Metadata", "verb": "list",
		"user": "alice", "groups": []any{"devs", "system:authenticated"}, "api_version": "v1", "resource": "pods", "namespace": "team-a",
		"code": 200.0, "request_uri": "/api/v1/namespaces/team-a/pods?limit=500", "source_ips": []any{"10.0.0.7"}, "user_agent": "kubectl/v1.34.4"})
	if ts := byTopic["logs.node-audit"][0].rec.Time; !ts.Equal(time.Date(2026, 12, 1, 19, 40, 0, 125000000, time.UTC)) {
		t.Errorf("audit record ts %v, want the event's stageTimestamp", ts)
	}
	// docs/record.md's node file example is this event's record (where it was read aside).
	if recs := byTopic["logs.node-audit"]; len(recs) > 0 {
		doc := docRecord(t, "### Node files")
		got := recs[0].rec
		if doc.Message != got.Message || !doc.Time.Equal(got.Time) || doc.Namespace != got.Namespace || fmt.Sprint(doc.Fields) != fmt.Sprint(got.Fields) || doc.Stream != got.Stream {
			t.Errorf("docs/record.md's node file example differs from the record the collector made:\n doc %+v\n got %+v", doc, got)
		}
	}
	check("logs.node-audit", 1, `{"kind":"Status"}`, `kube-audit: not an audit event: kind "Status", apiVersion ""`, "", nil)
	check("logs.node-audit", 2, "", "", "kube-audit: line longer than the largest record message: shipped split, without fields", nil)
	if recs := byTopic["logs.node-audit"]; len(recs) == 5 {
		var joined string
		for _, g := range recs[2:] {
			joined += g.rec.Message
			if g.rec.Split == nil {
				t.Errorf("chunk of the long event not marked split")
			}
		}
		if joined != long {
			t.Errorf("long event's chunks do not join to the line")
		}
	} else {
		t.Errorf("logs.node-audit: %d records, want 5", len(recs))
	}
	for _, c := range []struct {
		source, reason string
		want           float64
	}{{"json", "not an object", 2}, {"audit", "not an audit event", 1}} {
		if n := testutil.ToFloat64(r.c.nodeOrder[0].parseErrors.WithLabelValues(c.source, c.reason)); n != c.want {
			t.Errorf("node_file_parse_errors_total{source=%q,reason=%q} = %v, want %v", c.source, c.reason, n, c.want)
		}
	}
}

// docRecord decodes the first JSON example after heading in docs/record.md.
func docRecord(t *testing.T, heading string) record.Record {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "docs", "record.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("docs/record.md has no %q", heading)
	}
	s = s[i:]
	s = s[strings.Index(s, "```json\n")+len("```json\n"):]
	s = s[:strings.Index(s, "```")]
	rec, err := record.Decode([]byte(s))
	if err != nil {
		t.Fatalf("docs/record.md example after %q: %v", heading, err)
	}
	return rec
}

// TestNodeFilesCopyTruncateSameSize rotates a node file by copytruncate in rounds that all
// write the same number of same-size lines, so the file is truncated and written again to the
// very size the reader had read it to (the case only its content tells apart, not its size):
// every line arrives once and in order. Each rotation waits until the round was acknowledged:
// a collector behind by more than one copytruncate reads the copy in between as a file of its
// own (no loss, no duplicate, but out of order: docs/collector.md#rotation, known limits).
func TestNodeFilesCopyTruncateSameSize(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	dir := t.TempDir()
	cfg := nodeTestConfig(t, brokers, nodefiles.Source{Name: "auditd", Paths: []string{filepath.Join(dir, "audit.log*")}})
	r := startCollector(t, cfg)
	l := newNodeLog(t, dir, "audit.log")
	const rounds, perRound = 8, 300
	n := 0
	for round := range rounds {
		for range perRound {
			l.write(loadgen.SeqMessage("trunc", n, 100))
			n++
		}
		if round < rounds-1 {
			waitFor(t, 30*time.Second, func() bool { return metricValue(r.c.metrics.linesAcked, "node-file:auditd") >= float64(n) })
			l.rotateCopyTruncate()
		}
	}
	got := consume(t, brokers, n, 60*time.Second)
	if dups := checkSequences(t, got, map[string]int{"trunc": n}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	t.Logf("rotations: truncate %v copy %v", testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("truncate")),
		testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("copy")))
}

// TestNodeFileRewrittenSameSize: a node file read to its end is copied away and written again
// in place to exactly its size (copytruncate whose truncation and rewrite both fell between two
// polls, made deterministic: the reader never sees it shorter). Only the content tells it from
// a file left alone; the new lines arrive, the old ones are not sent again.
func TestNodeFileRewrittenSameSize(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	dir := t.TempDir()
	cfg := nodeTestConfig(t, brokers, nodefiles.Source{Name: "auditd", Paths: []string{filepath.Join(dir, "audit.log*")}})
	path := filepath.Join(dir, "audit.log")
	content := func(from, n int) []byte {
		var b strings.Builder
		for i := range n {
			b.WriteString(loadgen.SeqMessage("s", from+i, 100) + "\n")
		}
		return []byte(b.String())
	}
	old := content(0, 50)
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	r := startCollector(t, cfg)
	consume(t, brokers, 50, 30*time.Second)
	// The reader is at the file's end once its lines are acknowledged; a scan has seen the file.
	if err := os.WriteFile(path+".1", old, 0o644); err != nil {
		t.Fatal(err)
	}
	again := content(50, 50)
	if len(again) != len(old) {
		t.Fatalf("rewrite is %d bytes, want %d (the same size)", len(again), len(old))
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(again, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := consume(t, brokers, 100, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"s": 100}); dups != 0 {
		t.Errorf("%d lines sent twice", dups)
	}
	if n := testutil.ToFloat64(r.c.metrics.rotations.WithLabelValues("truncate")); n != 1 {
		t.Errorf("rotations_total{kind=truncate} = %v, want 1", n)
	}
}

// TestNodeFilesDirMissing: a source whose glob's directory does not exist (the audit log's on a
// worker node) is reported, once while it stays missing (a log line and the
// node_file_dirs_missing gauge), not as a scan error, and its files are read from their start
// once it appears. Another source's lines flow meanwhile.
func TestNodeFilesDirMissing(t *testing.T) {
	cl := newCluster(t)
	brokers := cl.ListenAddrs()[0]
	root, other := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "kube-apiserver")
	cfg := nodeTestConfig(t, brokers,
		nodefiles.Source{Name: "audit", Paths: []string{filepath.Join(dir, "audit*.log")}},
		nodefiles.Source{Name: "other", Paths: []string{filepath.Join(other, "other.log")}})
	var logged syncbuf.Buffer
	r := startLogged(t, cfg, &logged)
	ol := newNodeLog(t, other, "other.log")
	for i := range 20 {
		ol.write(loadgen.SeqMessage("other", i, 100))
	}
	gauge := func() float64 { return testutil.ToFloat64(r.c.nodeOrder[0].dirsMissing) }
	scans := func() uint64 { r.c.mu.Lock(); defer r.c.mu.Unlock(); return r.c.scanGen }
	waitFor(t, 30*time.Second, func() bool { return gauge() == 1 })
	// Several scans later it was reported once, and is no scan error.
	s0 := scans()
	waitFor(t, 30*time.Second, func() bool { return scans() >= s0+5 })
	if n := strings.Count(logged.String(), "node file directory missing"); n != 1 {
		t.Errorf("%d log lines say the directory is missing, want 1:\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), `"dir":"`+dir+`"`) {
		t.Errorf("the log does not name the directory %s:\n%s", dir, logged.String())
	}
	if n := testutil.ToFloat64(r.c.metrics.scanErrors.WithLabelValues("node")); n != 0 {
		t.Errorf("scan_errors_total{dir=node} = %v, want 0 (a missing directory is no error)", n)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	al := newNodeLog(t, dir, "audit.log")
	for i := range 30 {
		al.write(loadgen.SeqMessage("audit", i, 100))
	}
	got := consume(t, brokers, 50, 30*time.Second)
	if dups := checkSequences(t, got, map[string]int{"other": 20, "audit": 30}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	if g := gauge(); g != 0 {
		t.Errorf("node_file_dirs_missing{source=audit} = %v once it exists, want 0", g)
	}
	if n := strings.Count(logged.String(), "node file directory appeared"); n != 1 {
		t.Errorf("%d log lines say the directory appeared, want 1", n)
	}
	if g := testutil.ToFloat64(r.c.nodeOrder[1].dirsMissing); g != 0 {
		t.Errorf("node_file_dirs_missing{source=other} = %v, want 0", g)
	}
}
