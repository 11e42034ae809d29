package hostile_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logrouter/logrouter/integration/hostile"
	"github.com/logrouter/logrouter/router/loadgen"
)

const ns = "hostile"

// steady is the well-behaved file next to the hostile ones: a CRI container in its own
// namespace writing a sequence-numbered line every 20 ms for the whole test.
type steady struct {
	c       *loadgen.Container
	written atomic.Int64
	stopc   chan struct{}
	done    chan struct{}
}

func startSteady(t *testing.T, node *loadgen.Node) *steady {
	c, err := node.AddContainer("steady", "steady", "app", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	s := &steady{c: c, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			if err := c.Write(time.Now(), "stdout", loadgen.SeqMessage("steady", seq, 120)); err != nil {
				t.Error(err)
				return
			}
			s.written.Store(int64(seq + 1))
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *steady) stop() {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
}

// flowing waits until the steady file's lines written by now are in Kafka: after each hostile
// case, the well-behaved file must keep flowing.
func (p *pipeline) flowing(s *steady, after string) {
	p.t.Helper()
	n := int(s.written.Load())
	p.waitFor("steady file after "+after, 90*time.Second, func() string {
		got := map[int]bool{}
		for _, r := range p.kafka.pod("steady", "steady") {
			if _, seq, ok := loadgen.ParseSeq(r.R.Message); ok {
				got[seq] = true
			}
		}
		for i := 0; i < n; i++ {
			if !got[i] {
				return fmt.Sprintf("steady line %d of %d not in Kafka", i, n)
			}
		}
		return ""
	})
}

// TestHostileCorpus feeds the bad-input corpus through the real collector into kfake, then the
// archiver (Parquet read back with parquet-go) and the gateway (NDJSON and SSE), with a
// well-behaved file flowing throughout (docs/reliability.md#bad-input-corpus).
func TestHostileCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("real binaries, 40 MiB of records")
	}
	root := t.TempDir()
	node, err := loadgen.NewNode(root)
	if err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, node.LogDir, node.PodsDir)
	st := startSteady(t, node)
	p.flowing(st, "start")

	// 1. Content: every case's file as its runtime would have left it, then rotated away.
	cases := hostile.Cases()
	for _, c := range cases {
		data := c.Data
		if !c.Big {
			if data, err = os.ReadFile(filepath.Join("testdata", c.File())); err != nil {
				t.Fatal(err) // the checked-in corpus is what is fed (TestCorpusCheckedIn: = Cases)
			}
		}
		f := loadgen.CRI
		if c.Format == hostile.Docker {
			f = loadgen.Docker
		}
		ct, err := node.AddContainer(ns, c.Name, "c", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := ct.WriteRaw(data); err != nil {
			t.Fatal(err)
		}
		if _, err := ct.RotateRename(); err != nil {
			t.Fatal(err)
		}
	}
	p.flowing(st, "the content cases")
	for _, c := range cases {
		p.waitFor("case "+c.Name, 3*time.Minute, func() string {
			got, problem := join(p.kafka.pod(ns, c.Name))
			if problem != "" {
				return problem
			}
			if len(got) < len(c.Want) {
				return fmt.Sprintf("%d of %d lines in Kafka", len(got), len(c.Want))
			}
			return ""
		})
		checkCase(t, c, p.kafka.pod(ns, c.Name))
	}

	// 2. Filesystem cases, one after another, the steady file checked after each.
	fsCases := map[string]func(){
		"vanish":            func() { vanish(t, p, node) },
		"truncate-mid-line": func() { truncateMidLine(t, p, node) },
		"symlink-loop":      func() { symlinkLoops(t, p, node) },
		"replaced-by-dir":   func() { replaced(t, p, node, "dir") },
		"replaced-by-fifo":  func() { replaced(t, p, node, "fifo") },
		"names":             func() { names(t, p, node) },
	}
	for _, l := range hostile.Layouts() {
		run, ok := fsCases[l.Name]
		if !ok {
			t.Fatalf("filesystem case %s is not staged", l.Name)
		}
		run()
		p.flowing(st, l.Name)
		t.Logf("CORPUS %s: steady file still flowing (%d lines)", l.Name, st.written.Load())
	}

	// 3. Nothing in Kafka that is not a record; the metrics of what was shipped marked.
	st.stop()
	p.flowing(st, "the end")
	if len(p.kafka.bad) > 0 {
		t.Errorf("Kafka values that are not JSON: %v", p.kafka.bad)
	}
	checkContentMetrics(t, p, cases)

	// 4. Archive and gateway: every record of both namespaces, byte-exact, framing intact.
	checkArchive(t, p, []string{"logs." + ns, "logs.steady"})
	checkGateway(t, p)
}

// checkCase compares what Kafka holds for a content case with what it must deliver.
func checkCase(t *testing.T, c hostile.Case, recs []*rec) {
	t.Helper()
	got, problem := join(recs)
	if problem != "" {
		t.Errorf("%s: %s", c.Name, problem)
		return
	}
	if len(got) != len(c.Want) {
		var b strings.Builder
		for _, g := range got {
			fmt.Fprintf(&b, "  %s parse_error=%q\n", short(g.msg), g.parseError)
		}
		t.Errorf("%s: %d lines in Kafka, want %d (duplicates or lines split differently):\n%s", c.Name, len(got), len(c.Want), b.String())
		return
	}
	for i, w := range c.Want {
		g := got[i]
		if !bytes.Equal(g.msg, w.Message) {
			t.Errorf("%s line %d: message %s, want %s", c.Name, i, short(g.msg), short(w.Message))
		}
		if (g.parseError != "") != w.ParseError {
			t.Errorf("%s line %d (%s): parse_error %q, want one: %v", c.Name, i, short(w.Message), g.parseError, w.ParseError)
		}
		if g.stream != w.Stream {
			t.Errorf("%s line %d (%s): stream %q, want %q", c.Name, i, short(w.Message), g.stream, w.Stream)
		}
		// A held line may be cut by a full buffer: split, but never a long line unsplit.
		if g.split != w.Split && !(w.Held && g.split) {
			t.Errorf("%s line %d: split %v, want %v", c.Name, i, g.split, w.Split)
		}
		for _, r := range g.recs {
			// message_base64 exactly when the record's bytes are not UTF-8 (a chunk can cut a
			// character: then it is that chunk's bytes).
			valid := r.R.MessageBase64 == nil
			if want := isUTF8(r.bytes()); valid != want {
				t.Errorf("%s line %d: record at %d has message_base64: %v, want %v", c.Name, i, r.R.Offset, !valid, !want)
			}
		}
	}
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "") == string(b) }

// checkContentMetrics: the collector counted what it marked: parse errors, invalid UTF-8,
// split lines, as the records show.
func checkContentMetrics(t *testing.T, p *pipeline, cases []hostile.Case) {
	t.Helper()
	var parse, invalid, split float64
	for _, r := range p.kafka.topic("logs." + ns) {
		if r.R.ParseError != "" {
			parse++
		}
		if r.R.MessageBase64 != nil {
			invalid++
		}
		if r.R.Split != nil && r.R.Split.Index == 0 {
			split++
		}
	}
	m := p.metrics()
	for name, want := range map[string]float64{
		`logrouter_collector_parse_errors_total{namespace="hostile"}`:       parse,
		`logrouter_collector_invalid_utf8_lines_total{namespace="hostile"}`: invalid,
		`logrouter_collector_truncated_lines_total{namespace="hostile"}`:    split,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v (the records so marked)", name, m[name], want)
		}
	}
	var wantParse int
	for _, c := range cases {
		for _, w := range c.Want {
			if w.ParseError {
				wantParse++
			}
		}
	}
	if int(parse) < wantParse {
		t.Errorf("%v records with parse_error, the corpus has %d", parse, wantParse)
	}
	t.Logf("CORPUS metrics: parse_errors %v, invalid_utf8 %v, truncated (split) lines %v", parse, invalid, split)
}

// checkArchive: every Kafka record of topics is in exactly one archived row, with its exact
// message, bytes, parse error and split index; no row is not in Kafka.
func checkArchive(t *testing.T, p *pipeline, topics []string) {
	t.Helper()
	var recs []*rec
	for _, tp := range topics {
		recs = append(recs, p.kafka.topic(tp)...)
	}
	var rows map[[3]string][]archRow
	var objects int
	p.waitFor("archive", 3*time.Minute, func() string {
		rows, objects = readArchive(t, p.bucketDir)
		for _, r := range recs {
			if len(rows[posKey(r)]) == 0 {
				var problems []string
				for k, v := range scrape(p.arAddr) {
					if v != 0 && (strings.Contains(k, "error") || strings.Contains(k, "lag") || strings.Contains(k, "refused") || strings.Contains(k, "invalid")) {
						problems = append(problems, fmt.Sprintf("%s %v", k, v))
					}
				}
				return fmt.Sprintf("%v (pod %s, %d bytes) not archived (%d objects); archiver: %v", posKey(r), r.R.Pod, len(r.Value), objects, problems)
			}
		}
		return ""
	})
	for _, r := range recs {
		got := rows[posKey(r)]
		if len(got) != 1 {
			t.Errorf("%v archived %d times", posKey(r), len(got))
			continue
		}
		a := got[0]
		if a.message != r.R.Message {
			t.Errorf("%v: archived message %s, Kafka %s", posKey(r), short([]byte(a.message)), short([]byte(r.R.Message)))
		}
		// message_bytes is null unless the record has message_base64 (an empty, not null, one
		// was parquet-go's: archiver/objectformat TestOptionalColumnsNullWhereUnset).
		if a.hasBytes != (r.R.MessageBase64 != nil) || !bytes.Equal(a.bytes, r.R.MessageBase64) {
			t.Errorf("%v: archived message_bytes %v %s, Kafka message_base64 %s", posKey(r), a.hasBytes, short(a.bytes), short(r.R.MessageBase64))
		}
		if a.parseError != r.R.ParseError {
			t.Errorf("%v: archived parse_error %q, Kafka %q", posKey(r), a.parseError, r.R.ParseError)
		}
		if a.hasSplit != (r.R.Split != nil) || (a.hasSplit && int(a.splitIndex) != r.R.Split.Index) {
			t.Errorf("%v: archived split %v/%d, Kafka %+v", posKey(r), a.hasSplit, a.splitIndex, r.R.Split)
		}
	}
	n := 0
	for k, rs := range rows {
		n += len(rs)
		if p.kafka.at(k[0], int32(atoi(k[1])), int64(atoi(k[2]))) == nil && (k[0] == topics[0] || k[0] == topics[1]) {
			t.Errorf("archived row %v is not in Kafka", k)
		}
	}
	t.Logf("CORPUS archive: %d records in Kafka, %d rows in %d Parquet objects", len(recs), n, objects)
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// checkGateway reads the hostile namespace through the gateway as NDJSON and SSE streams and
// from the archive endpoint: every event is one frame, every record byte-exact.
func checkGateway(t *testing.T, p *pipeline) {
	t.Helper()
	tok := p.token(ns)
	recs := p.kafka.topic("logs." + ns)
	n := len(recs)
	path := fmt.Sprintf("/v1/namespaces/%s/logs?from=earliest&limit=%d", ns, n)

	// NDJSON: every line one JSON object; records verbatim.
	body := p.get(path, tok, "application/x-ndjson")
	seen := map[[3]string]bool{}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	var ends int
	for i, l := range lines {
		var ev struct {
			Type      string          `json:"type"`
			Partition int32           `json:"partition"`
			Offset    int64           `json:"offset"`
			Record    json.RawMessage `json:"record"`
			Reason    string          `json:"reason"`
		}
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Errorf("NDJSON line %d is not one JSON object (%v): %s", i, err, short(l))
			continue
		}
		switch ev.Type {
		case "record":
			r := p.kafka.at("logs."+ns, ev.Partition, ev.Offset)
			if r == nil {
				t.Errorf("NDJSON record %d@%d is not in Kafka", ev.Partition, ev.Offset)
				continue
			}
			if !bytes.Equal(ev.Record, r.Value) {
				t.Errorf("NDJSON record %d@%d: %s, Kafka %s", ev.Partition, ev.Offset, short(ev.Record), short(r.Value))
			}
			seen[posKey(r)] = true
		case "end":
			ends++
			if ev.Reason != "limit" {
				t.Errorf("NDJSON end: %s", l)
			}
		case "heartbeat":
		default:
			t.Errorf("NDJSON line %d: type %q", i, ev.Type)
		}
	}
	if len(seen) != n || ends != 1 {
		t.Errorf("NDJSON: %d of %d records, %d end events", len(seen), n, ends)
	}

	// SSE: parsed as a browser does; each record event's data is the record, verbatim.
	events := parseSSE(p.get(path, tok, "text/event-stream"))
	var records int
	seenSSE := map[string]bool{}
	for i, ev := range events {
		switch ev.event {
		case "":
			if !ev.hasData {
				continue // heartbeat id-only block
			}
			records++
			if ev.id == "" {
				t.Errorf("SSE event %d: no id", i)
			}
			if !json.Valid([]byte(ev.data)) {
				t.Errorf("SSE event %d: data is not one JSON value: %s", i, short([]byte(ev.data)))
				continue
			}
			seenSSE[ev.data] = true
		case "end":
			if !strings.Contains(ev.data, `"limit"`) {
				t.Errorf("SSE end: %s", ev.data)
			}
		default:
			t.Errorf("SSE event %d: event %q: %s", i, ev.event, short([]byte(ev.data)))
		}
	}
	for _, r := range recs {
		if !seenSSE[string(r.Value)] {
			t.Errorf("SSE: record %v not served verbatim: %s", posKey(r), short(r.Value))
		}
	}
	if records != n {
		t.Errorf("SSE: %d record events, want %d", records, n)
	}

	// Archive endpoint: NDJSON lines, each record's message the archived one.
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body = p.get("/v1/namespaces/"+ns+"/archive?since=2026-01-01T00:00:00Z&until="+until, tok, "application/x-ndjson")
	var archived int
	for i, l := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		var ev struct {
			Type      string `json:"type"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Reason    string `json:"reason"`
			Record    struct {
				Message       string `json:"message"`
				MessageBase64 []byte `json:"message_base64"`
				ParseError    string `json:"parse_error"`
			} `json:"record"`
		}
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Errorf("archive NDJSON line %d is not one JSON object (%v): %s", i, err, short(l))
			continue
		}
		if ev.Type == "end" {
			if ev.Reason != "complete" {
				t.Errorf("archive end: %s", l)
			}
			continue
		}
		r := p.kafka.at("logs."+ns, ev.Partition, ev.Offset)
		if r == nil {
			t.Errorf("archive record %d@%d is not in Kafka", ev.Partition, ev.Offset)
			continue
		}
		archived++
		if ev.Record.Message != r.R.Message || !bytes.Equal(ev.Record.MessageBase64, r.R.MessageBase64) || ev.Record.ParseError != r.R.ParseError {
			t.Errorf("archive record %d@%d: %s %s %q, Kafka %s %s %q", ev.Partition, ev.Offset,
				short([]byte(ev.Record.Message)), short(ev.Record.MessageBase64), ev.Record.ParseError,
				short([]byte(r.R.Message)), short(r.R.MessageBase64), r.R.ParseError)
		}
	}
	if archived != n {
		t.Errorf("archive endpoint: %d records, Kafka has %d", archived, n)
	}
	t.Logf("CORPUS gateway: %d records served as NDJSON, SSE and from the archive", n)
}

// counter returns the value of a collector metric series (0 when absent).
func (p *pipeline) counter(series string) float64 { return p.metrics()[series] }

// waitCounter waits until series reaches at least want.
func (p *pipeline) waitCounter(series string, want float64) {
	p.t.Helper()
	p.waitFor(series, time.Minute, func() string {
		if v := p.counter(series); v < want {
			return fmt.Sprintf("%s = %v, want %v", series, v, want)
		}
		return ""
	})
}

// seqLines writes n sequence-numbered lines of about size bytes into c as one write.
func seqLines(c *loadgen.Container, key string, from, n, size int) []byte {
	var b []byte
	for i := from; i < from+n; i++ {
		b = append(b, c.Line(time.Now(), "stdout", false, loadgen.SeqMessage(key, i, size))...)
	}
	return b
}

// seqs returns the sequence numbers of a pod's records, and how many there were.
func (p *pipeline) seqs(pod string) (map[int]int, int) {
	got := map[int]int{}
	recs := p.kafka.pod(ns, pod)
	for _, r := range recs {
		if _, seq, ok := loadgen.ParseSeq(r.R.Message); ok {
			got[seq]++
		}
	}
	return got, len(recs)
}

func (p *pipeline) waitSeqs(pod string, want []int) {
	p.t.Helper()
	p.waitFor(pod+" lines", 2*time.Minute, func() string {
		got, _ := p.seqs(pod)
		for _, s := range want {
			if got[s] == 0 {
				return fmt.Sprintf("%s line %d not in Kafka (%d lines there)", pod, s, len(got))
			}
		}
		return ""
	})
}

func seqRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// vanish: a 4 MiB file deleted (with its pod directory and symlink, as when a pod is removed)
// once the collector has begun reading it: the open descriptor keeps it; every line ships.
func vanish(t *testing.T, p *pipeline, node *loadgen.Node) {
	c, err := node.AddContainer(ns, "vanish", "c", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4096
	if err := c.WriteRaw(seqLines(c, "vanish", 0, n, 1000)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("vanish: first line", time.Minute, func() string {
		if got, _ := p.seqs("vanish"); len(got) == 0 {
			return "nothing read yet"
		}
		return ""
	})
	got, _ := p.seqs("vanish")
	links, _ := filepath.Glob(filepath.Join(node.LogDir, "vanish_*"))
	for _, l := range links {
		if err := os.Remove(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Dir(filepath.Dir(c.Path()))); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	t.Logf("CORPUS vanish: deleted after %d of %d lines were in Kafka", len(got), n)
	p.waitSeqs("vanish", seqRange(0, n))
	if got, recs := p.seqs("vanish"); recs != n {
		t.Errorf("vanish: %d records for %d lines (%d distinct)", recs, n, len(got))
	}
}

// truncateMidLine: a file truncated in the middle of a line the collector has read, then
// written on. The collector reads it from the start again (copytruncate, docs/collector.md):
// every line before the cut ships (those before it twice), the cut line's head joins the next
// line written (which is what the file now holds), and every later line ships.
func truncateMidLine(t *testing.T, p *pipeline, node *loadgen.Node) {
	c, err := node.AddContainer(ns, "truncate", "c", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	head := seqLines(c, "truncate", 0, 20, 200)
	if err := c.WriteRaw(head); err != nil {
		t.Fatal(err)
	}
	p.waitSeqs("truncate", seqRange(0, 20))
	before := p.counter(`logrouter_collector_rotations_total{kind="truncate"}`)
	// Cut in the middle of line 10.
	lines := bytes.SplitAfter(head, []byte("\n"))
	cut := len(bytes.Join(lines[:10], nil)) + len(lines[10])/2
	if err := os.Truncate(c.Path(), int64(cut)); err != nil {
		t.Fatal(err)
	}
	p.waitCounter(`logrouter_collector_rotations_total{kind="truncate"}`, before+1)
	next := seqLines(c, "truncate", 20, 5, 200)
	if err := c.WriteRaw(next); err != nil {
		t.Fatal(err)
	}
	p.waitSeqs("truncate", seqRange(21, 25))
	glued := append(append([]byte(nil), lines[10][:len(lines[10])/2]...), next[:bytes.IndexByte(next, '\n')]...)
	glued = glued[bytes.Index(glued, []byte(" F "))+3:]
	p.waitFor("truncate: the cut line", time.Minute, func() string {
		for _, r := range p.kafka.pod(ns, "truncate") {
			if r.R.Message == string(glued) {
				return ""
			}
		}
		return "no record " + short(glued)
	})
	got, recs := p.seqs("truncate")
	for s := 0; s < 10; s++ {
		if got[s] != 2 {
			t.Errorf("truncate: line %d (before the cut) shipped %d times, want twice (read again from the start)", s, got[s])
		}
	}
	t.Logf("CORPUS truncate-mid-line: %d records for 25 lines written (lines 0-9 twice, line 10's head joined with line 20)", recs)
}

// symlinkLoops: /var/log/containers links to themselves and to each other: counted as
// unreadable (symlink_loop) and logged with their path, once each.
func symlinkLoops(t *testing.T, p *pipeline, node *loadgen.Node) {
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	a := filepath.Join(node.LogDir, "loop-self_"+ns+"_c-"+id('a')+".log")
	b := filepath.Join(node.LogDir, "loop-b_"+ns+"_c-"+id('b')+".log")
	c := filepath.Join(node.LogDir, "loop-c_"+ns+"_c-"+id('c')+".log")
	for _, l := range [][2]string{{a, a}, {b, c}, {c, b}} {
		if err := os.Symlink(l[1], l[0]); err != nil {
			t.Fatal(err)
		}
	}
	series := `logrouter_collector_unreadable_files_total{namespace="hostile",reason="symlink_loop"}`
	p.waitCounter(series, 3)
	for _, l := range []string{a, b, c} {
		if !p.logged(l) {
			t.Errorf("symlink loop %s: no log line names it", l)
		}
	}
	time.Sleep(500 * time.Millisecond) // a few more scans: still counted once each
	if v := p.counter(series); v != 3 {
		t.Errorf("%s = %v after more scans, want 3", series, v)
	}
}

// logged reports whether a WARN or ERROR line of the collector names path.
func (p *pipeline) logged(path string) bool {
	q, _ := json.Marshal(path)
	for _, l := range strings.Split(p.collector.Stderr.String(), "\n") {
		if strings.Contains(l, string(q)) && (strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`)) {
			return true
		}
	}
	return false
}

// replaced: a live 0.log, being read, renamed away (its lines ship) and replaced by a directory
// or a FIFO: counted unreadable (not_regular) and logged, and the collector does not block on
// the FIFO.
func replaced(t *testing.T, p *pipeline, node *loadgen.Node, kind string) {
	pod := "replaced-by-" + kind
	c, err := node.AddContainer(ns, pod, "c", loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRaw(seqLines(c, pod, 0, 10, 200)); err != nil {
		t.Fatal(err)
	}
	p.waitSeqs(pod, seqRange(0, 5))
	before := p.counter(`logrouter_collector_unreadable_files_total{namespace="hostile",reason="not_regular"}`)
	live := c.Path()
	if err := c.WriteRaw(seqLines(c, pod, 10, 10, 200)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(live, live+".20260101-000001"); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if kind == "dir" {
		err = os.Mkdir(live, 0o755)
	} else {
		err = syscall.Mkfifo(live, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.waitSeqs(pod, seqRange(0, 20))
	p.waitCounter(`logrouter_collector_unreadable_files_total{namespace="hostile",reason="not_regular"}`, before+1)
	if !p.logged(live) {
		t.Errorf("%s: no log line names %s", pod, live)
	}
	after := p.counter(`logrouter_collector_unreadable_files_total{namespace="hostile",reason="not_regular"}`)
	t.Logf("CORPUS %s: 20 lines shipped; unreadable_files_total{reason=not_regular} +%v", pod, after-before)
}

// names: files whose path does not follow the kubelet layout (names Kubernetes cannot give:
// spaces, unicode, a leading dash, upper case, an empty pod) are skipped, counted in
// path_errors_total and logged with their path; the longest pod name whose link fits a file
// name (255 bytes) ships.
func names(t *testing.T, p *pipeline, node *loadgen.Node) {
	before := p.counter(`logrouter_collector_path_errors_total{dir="pods"}`) + p.counter(`logrouter_collector_path_errors_total{dir="containers"}`)
	var bad []string
	for _, pod := range []string{"pod with spaces", "pöd-ünïcode-日本", "-leading-dash", "UPPER", "", "dots..pod", "tab\tpod", "new\nline"} {
		dir := filepath.Join(node.PodsDir, ns+"_"+pod+"_0b7e4d3c-0000-4000-8000-000000000001", "c")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "0.log")
		line := fmt.Sprintf("%s stdout F unusual name %q\n", time.Now().UTC().Format(time.RFC3339Nano), pod)
		if err := os.WriteFile(f, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(node.LogDir, pod+"_"+ns+"_c-"+strings.Repeat("d", 64)+".log")
		if err := os.Symlink(f, link); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, f, link)
	}
	// The longest valid pod name whose /var/log/containers link name is 255 bytes.
	long := strings.Repeat("a", 255-len("_"+ns+"_")-63-1-64-len(".log"))
	container := strings.Repeat("c", 63)
	c, err := node.AddContainer(ns, long, container, loadgen.CRI)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRaw(seqLines(c, "long", 0, 3, 100)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("names: the long pod name", time.Minute, func() string {
		for _, r := range p.kafka.pod(ns, long) {
			if r.R.Container == container {
				return ""
			}
		}
		return "no record of the long pod name"
	})
	p.waitFor("names: bad paths logged", time.Minute, func() string {
		for _, b := range bad {
			if !p.logged(b) {
				return "no log line names " + b
			}
		}
		return ""
	})
	after := p.counter(`logrouter_collector_path_errors_total{dir="pods"}`) + p.counter(`logrouter_collector_path_errors_total{dir="containers"}`)
	if int(after-before) != len(bad) {
		t.Errorf("path_errors_total went up by %v for %d bad paths", after-before, len(bad))
	}
	for _, r := range p.kafka.topic("logs." + ns) {
		if strings.Contains(r.R.Message, "unusual name") {
			t.Errorf("a file with a bad path shipped: %s", short(r.Value))
		}
	}
	t.Logf("CORPUS names: %d bad paths skipped and counted, the %d-character pod name shipped", len(bad), len(long))
}
