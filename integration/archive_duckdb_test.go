package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/internal/topic"
)

// The DuckDB queries of docs/archive.md are run from the markdown itself: a fenced ```sql
// block that the line before it marks with
//
//	<!-- duckdb-test format=parquet|ndjson expect=window -->
//
// is run against an archive the real archiver wrote in that format, with the placeholder
// archive root docRoot replaced by the archive's directory. expect=window: the rows are
// (ts, pod, message) of every line of namespace team-a (its topic and its suffix topic) whose
// own time is in docWindow, in time order. expect=errors: those of them whose pipeline field
// "level" is "error". A ```sql block that calls read_parquet/read_ndjson/read_json without a marker fails
// the test, so a DuckDB query cannot be published untested.
const (
	docRoot      = "s3://logs-archive"
	docMarker    = "<!-- duckdb-test "
	docNamespace = "team-a"
)

var docTopics = []string{"logs.team-0", "logs." + docNamespace, "logs." + docNamespace + ".audit", "logs.team-b"}

var docWindow = [2]time.Time{time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)}

type docQuery struct {
	line           int
	format, expect string
	sql            string
}

// docDuckDBQueries extracts the marked DuckDB queries of a markdown file.
func docDuckDBQueries(t *testing.T, path string) []docQuery {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docQuery
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sql" {
			continue
		}
		start := i + 1
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		sql := strings.Join(body, "\n")
		marker := ""
		if start >= 2 {
			marker = strings.TrimSpace(lines[start-2])
		}
		lower := strings.ToLower(sql)
		reads := strings.Contains(lower, "read_parquet(") || strings.Contains(lower, "read_ndjson(") || strings.Contains(lower, "read_json(")
		if !strings.HasPrefix(marker, docMarker) {
			if reads {
				t.Errorf("%s:%d: a DuckDB query without a %q marker on the line before it: every published query must run in this test", path, start, docMarker+"format=... expect=... -->")
			}
			continue
		}
		q := docQuery{line: start, sql: sql}
		for _, f := range strings.Fields(strings.TrimSuffix(strings.TrimPrefix(marker, docMarker), "-->")) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "format":
				q.format = v
			case "expect":
				q.expect = v
			default:
				t.Errorf("%s:%d: unknown marker field %q", path, start, f)
			}
		}
		if q.format != "parquet" && q.format != "ndjson" || q.expect != "window" && q.expect != "errors" {
			t.Errorf("%s:%d: marker %q: want format=parquet|ndjson expect=window|errors", path, start, marker)
		}
		if !strings.Contains(sql, docRoot) {
			t.Errorf("%s:%d: the query does not read the placeholder archive root %s", path, start, docRoot)
		}
		out = append(out, q)
	}
	return out
}

// duckdbNodeAPI finds the @duckdb/node-api package .ci/provision-duckdb.sh installs, or skips.
// cachedTool is where a .ci/provision-*.sh script installed a tool: $env, else name under
// $LOGROUTER_CACHE (default ~/.cache/logrouter).
func cachedTool(env, name string) string {
	if dir := os.Getenv(env); dir != "" {
		return dir
	}
	cache := os.Getenv("LOGROUTER_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "logrouter")
	}
	return filepath.Join(cache, name)
}

func duckdbNodeAPI(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH; run .ci/provision-duckdb.sh (needs nodejs and npm)")
	}
	dir := cachedTool("LOGROUTER_DUCKDB_DIR", "duckdb")
	pkg := filepath.Join(dir, "node_modules", "@duckdb", "node-api")
	if _, err := os.Stat(filepath.Join(pkg, "package.json")); err != nil {
		t.Skipf("DuckDB (@duckdb/node-api) is not installed in %s; run .ci/provision-duckdb.sh", dir)
	}
	return pkg
}

type duckdbJob struct {
	Setup []string `json:"setup,omitempty"`
	SQL   string   `json:"sql"`
}

type duckdbResult struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Rows    [][]any  `json:"rows"`
	Error   string   `json:"error"`
}

// runDuckDB runs jobs through testdata/duckdb_query.js, one node process for all of them.
func runDuckDB(t *testing.T, nodeAPI string, jobs []duckdbJob) []duckdbResult {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"jobs": jobs})
	cmd := exec.Command("node", "testdata/duckdb_query.js")
	cmd.Env = append(os.Environ(), "DUCKDB_NODE_API="+nodeAPI)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb runner: %v\n%s", err, stderr.String())
	}
	var res []duckdbResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(jobs) {
		t.Fatalf("duckdb runner output (%v): %.2000s", err, out)
	}
	return res
}

// docLine is one produced log line.
type docLine struct {
	ns, pod   string
	partition int32
	ts, kafka time.Time
	msg       string
	// What a tenant pipeline made of the line: the "level" field ("" for no fields), a parse
	// failure, and the suffix topic it was sent to ("" for the namespace's topic).
	level, fieldsError, suffix string
}

func (l docLine) topic() string { return topic.WithSuffix(topic.Of(l.ns), l.suffix) }

// fields is the line's fields object, nil without a level.
func (l docLine) fields() []byte {
	if l.level == "" {
		return nil
	}
	return []byte(`{"level":"` + l.level + `","status":` + strconv.Itoa(len(l.msg)) + `}`)
}

// docLines builds the archive's content, in production order, so that every way a line's own
// time and its bucket time (the running maximum of Kafka time) can differ is there:
//   - a node clock 40 minutes ahead: lines of 10:20 that reached Kafka at 09:40, in hour=09;
//   - on-time lines around the window, with 0 to 9 fractional digits (and whole seconds in the
//     first objects, where DuckDB's NDJSON type detection samples), and lines exactly at the
//     window's bounds and a nanosecond inside and outside them;
//   - lines of 10:05-10:53 that a collector shipped late, at 12:30-13:10 (hour=12 and 13), and
//     one of 11:30 after them;
//   - another namespace with lines in the same window, and one (team-0, listed first by the
//     glob) whose lines of the 40 hours before all have whole-second times: DuckDB's NDJSON
//     type detection samples the first 32 files, and then guesses TIMESTAMP for ts;
//   - pipeline output on team-a's and team-b's lines in turn: level error, level info, no
//     fields, a parse failure; and every fifth team-a line in the suffix topic logs.team-a.audit.
func docLines() []docLine {
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	at := func(h, m, s, ns int) time.Time {
		return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(ns))
	}
	var ls []docLine
	add := func(ns string, p int32, ts, kafka time.Time) {
		l := docLine{ns: ns, pod: fmt.Sprintf("web-%d", p), partition: p, ts: ts, kafka: kafka,
			msg: fmt.Sprintf("%s line %d at %s", ns, len(ls), ts.Format(time.RFC3339Nano))}
		switch len(ls) % 4 {
		case 0:
			l.level = "error"
		case 1:
			l.level = "info"
		case 3:
			l.fieldsError = "steps[0].json: invalid character 'l' looking for beginning of value"
		}
		if ns == docNamespace && len(ls)%5 == 4 {
			l.suffix = "audit"
		}
		ls = append(ls, l)
	}
	for i := 0; i < 3*40; i++ { // 40 hours before the window, each hour one object
		ts := at(i/3-40, 0, i%3, 0)
		ls = append(ls, docLine{ns: "team-0", pod: "quiet", partition: 0, ts: ts, kafka: ts.Add(time.Second), msg: "quiet line"})
	}
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 6; i++ { // clock ahead; whole seconds
			k := at(9, 40, int(p)+i*30, 0)
			add(docNamespace, p, k.Add(40*time.Minute), k)
			add(docNamespace, p, k.Add(-2*time.Second), k)
		}
		fractions := []int{0, 500_000_000, 123_000_000, 123_456_000, 123_456_789, 1, 999_999_999}
		for i := 0; i < 85; i++ { // on time, 09:55 to 11:05
			k := at(9, 55, int(p)*7+i*50, 0)
			add(docNamespace, p, k.Add(-2*time.Second+time.Duration(fractions[i%len(fractions)])), k)
		}
		for i, ts := range []time.Time{at(10, 0, 0, 0), at(9, 59, 59, 999_999_999), at(10, 59, 59, 999_999_999), at(11, 0, 0, 0)} {
			if int(p) == i%2 {
				add(docNamespace, p, ts, ts.Add(3*time.Second))
			}
		}
		for i := 0; i < 9; i++ { // shipped late
			add(docNamespace, p, at(10, 5+i*6, int(p), 987_654_321), at(12, 30+i*5, 0, 0))
		}
		add(docNamespace, p, at(11, 30, int(p), 0), at(13, 15, 0, 0))
		for i := 0; i < 10; i++ {
			add("team-b", p, at(10, i*6, int(p), 0), at(10, i*6, int(p)+1, 0))
		}
	}
	return ls
}

// docWindowRows is what an expect=window (errors: expect=errors) query must return: micros,
// pod, message.
func docWindowRows(t *testing.T, ls []docLine, errors bool) [][3]string {
	var want []docLine
	for _, l := range ls {
		if l.ns == docNamespace && !l.ts.Before(docWindow[0]) && l.ts.Before(docWindow[1]) && (!errors || l.level == "error") {
			want = append(want, l)
		}
	}
	slices.SortFunc(want, func(a, b docLine) int { return a.ts.Compare(b.ts) })
	out := make([][3]string, len(want))
	for i, l := range want {
		out[i] = [3]string{strconv.FormatInt(l.ts.UnixMicro(), 10), l.pod, l.msg}
		if i > 0 && out[i][0] == out[i-1][0] {
			t.Fatalf("docLines: two lines in the window share a microsecond (ORDER BY ts would leave them in any order): %s", l.msg)
		}
	}
	return out
}

// writeDocArchive archives ls with the real archiver into a file:// bucket in dir.
func writeDocArchive(t *testing.T, kc *kfake.Cluster, group, format, dir string, ls []docLine) {
	t.Helper()
	ctx := context.Background()
	bucketURL := "file://" + dir
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := map[archivetest.Pos]int64{}
	for _, ns := range docTopics {
		for p := int32(0); p < 2; p++ {
			for _, l := range ls {
				if l.topic() == ns && l.partition == p {
					want[archivetest.Pos{Topic: ns, Partition: p}]++
				}
			}
		}
	}
	archiveUntil(t, kc.ListenAddrs(), bucketURL, group, format, b, want)
	// A crash between staging and claiming leaves a complete data object at a staging key:
	// make one (a copy of a published object, as a killed attempt would have uploaded it).
	audit, err := archivetest.Read(ctx, b, "")
	if err != nil || len(audit.Problems) > 0 || len(audit.Count) != len(ls) {
		t.Fatalf("archive: %d of %d records, problems %v, %v", len(audit.Count), len(ls), audit.Problems, err)
	}
	o := audit.Objects[0]
	data, err := b.ReadAll(ctx, o.Key(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, layout.StagingKey("", o, "deadbeefdeadbeef"), data, nil); err != nil {
		t.Fatal(err)
	}
	hours := map[int]bool{}
	for _, o := range audit.Objects {
		if o.Namespace == docNamespace {
			hours[o.Hour.Hour()] = true
		}
	}
	if !hours[9] || !hours[12] || !hours[13] {
		t.Fatalf("bucket hours of %s %v: want 09 (clock ahead) and 12, 13 (shipped late)", docNamespace, hours)
	}
}

// TestArchiveDuckDBDocs runs every DuckDB query of docs/archive.md with DuckDB over archives
// the real archiver wrote (Parquet and NDJSON, late lines, lines from a node whose clock is
// ahead, an upload a crash left in staging), in UTC and in a session time zone with a
// half-hour offset, and checks that each returns exactly the lines of its window in time order.
// It also checks the DuckDB behaviour the layout relies on: ** globs descend into _staging, so
// a staging object must not end in a data extension.
func TestArchiveDuckDBDocs(t *testing.T) {
	nodeAPI := duckdbNodeAPI(t)
	queries := docDuckDBQueries(t, "../docs/archive.md")
	formats := map[string]bool{}
	for _, q := range queries {
		formats[q.format] = true
	}
	if !formats["parquet"] || !formats["ndjson"] {
		t.Fatalf("docs/archive.md has marked DuckDB queries for %v: want Parquet and NDJSON examples", formats)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, docTopics...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ls := docLines()
	var rs []*kgo.Record
	for _, l := range ls {
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: l.ns, Pod: l.pod, Container: "app", Time: l.ts,
			Message: l.msg, KafkaTime: l.kafka, Partition: l.partition, Suffix: l.suffix, Fields: l.fields(), FieldsError: l.fieldsError}))
	}
	if err := archivetest.Produce(context.Background(), cl, rs); err != nil {
		t.Fatal(err)
	}
	roots := map[string]string{}
	for _, format := range []string{"parquet", "ndjson"} {
		roots[format] = t.TempDir()
		writeDocArchive(t, kc, "duckdb-docs-"+format, format, roots[format], ls)
	}
	want := docWindowRows(t, ls, false)
	wantErrors := docWindowRows(t, ls, true)
	if len(wantErrors) == 0 || len(wantErrors) == len(want) {
		t.Fatalf("docLines: %d of %d window lines have level error: the fields query would not be tested", len(wantErrors), len(want))
	}

	// The layout's own promises, in DuckDB's terms, over the archives as the archiver left them.
	hiveTypes := "hive_partitioning = true, hive_types = {'dt': DATE, 'hour': INTEGER}"
	legacy := legacyStagingArchive(t, roots["parquet"])
	checks := []struct {
		name string
		sql  string
		ok   func(duckdbResult) string
	}{
		{"** descends into _staging", "SELECT file FROM glob('" + roots["parquet"] + "/**') WHERE file LIKE '%/\\_staging/%' ESCAPE '\\'",
			func(r duckdbResult) string {
				if r.Error != "" || len(r.Rows) == 0 {
					return "DuckDB's ** did not list _staging/ (the staging object is missing, or DuckDB now skips _ directories)"
				}
				return ""
			}},
		{"**/*.parquet over the whole archive", "SELECT count(*) FROM read_parquet('" + roots["parquet"] + "/**/*.parquet', hive_partitioning = true)",
			countIs(len(ls))},
		{"**/*.ndjson.zst over the whole archive", "SELECT count(*) FROM read_ndjson('" + roots["ndjson"] + "/**/*.ndjson.zst', compression = 'zstd', hive_partitioning = true)",
			countIs(len(ls))},
		// What a staging name with a data extension did (versions before .staged).
		{"an old-style staging name breaks **/*.parquet", "SELECT count(*) FROM read_parquet('" + legacy + "/**/*.parquet', hive_partitioning = true)",
			func(r duckdbResult) string {
				if !strings.Contains(r.Error, "Hive partition") {
					return "want a Hive partition error"
				}
				return ""
			}},
		// Filtering hour to the ts window (what the docs showed first) misses lines: the test
		// data must have such lines, or the documented hour filter is not tested.
		{"hour filter equal to the ts window misses lines", "SELECT count(*) FROM read_parquet('" + roots["parquet"] + "/namespace=*/dt=*/hour=*/*.parquet', " + hiveTypes + ") " +
			"WHERE namespace = 'team-a' AND dt = DATE '2026-11-21' AND hour BETWEEN 10 AND 11 AND ts >= TIMESTAMPTZ '2026-11-21 10:00:00+00' AND ts < TIMESTAMPTZ '2026-11-21 11:00:00+00'",
			func(r duckdbResult) string {
				if n := countOf(r); n < 0 || n >= int64(len(want)) {
					return fmt.Sprintf("%d rows of %d: the test data has no late or clock-ahead lines", n, len(want))
				}
				return ""
			}},
	}
	var jobs []duckdbJob
	for _, c := range checks {
		jobs = append(jobs, duckdbJob{SQL: c.sql})
	}
	for i, r := range runDuckDB(t, nodeAPI, jobs) {
		if msg := checks[i].ok(r); msg != "" {
			t.Errorf("%s: %s (result %+v)", checks[i].name, msg, r)
		}
	}

	// The documented queries read only the hours they filter for: files that are not even
	// Parquet or zstd, in hours far outside the window, must not be opened.
	for format, root := range roots {
		ext := map[string]string{"parquet": ".parquet", "ndjson": ".ndjson.zst"}[format]
		for _, d := range []string{"namespace=team-a/dt=2026-11-19/hour=00", "namespace=team-a/dt=2026-11-23/hour=23"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, d, "garbage"+ext), []byte("not an object"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	jobs = nil
	var names, expects []string
	for _, q := range queries {
		for _, tz := range []string{"UTC", "Asia/Kolkata"} {
			jobs = append(jobs, duckdbJob{Setup: []string{"SET TimeZone = '" + tz + "'"}, SQL: strings.ReplaceAll(q.sql, docRoot, roots[q.format])})
			names = append(names, fmt.Sprintf("docs/archive.md:%d (%s, TimeZone %s)", q.line, q.format, tz))
			expects = append(expects, q.expect)
		}
	}
	res := runDuckDB(t, nodeAPI, jobs)
	t.Logf("%d documented DuckDB queries run twice each (UTC, Asia/Kolkata) over %d lines; %d in the window", len(queries), len(ls), len(want))
	for i, r := range res {
		if r.Error != "" {
			t.Errorf("%s: %s\n%s", names[i], r.Error, jobs[i].SQL)
			continue
		}
		if !slices.Equal(r.Columns, []string{"ts", "pod", "message"}) || !strings.HasPrefix(r.Types[0], "TIMESTAMP") {
			t.Errorf("%s: columns %v %v, want ts (a timestamp), pod, message", names[i], r.Columns, r.Types)
			continue
		}
		got := make([][3]string, len(r.Rows))
		for j, row := range r.Rows {
			got[j] = [3]string{fmt.Sprint(row[0]), fmt.Sprint(row[1]), fmt.Sprint(row[2])}
		}
		w := want
		if expects[i] == "errors" {
			w = wantErrors
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: %d rows, want %d\n%s", names[i], len(got), len(w), diffRows(got, w))
		}
	}
}

// legacyStagingArchive copies one data object of the archive at root into a new directory,
// with a copy at a staging key in the layout of earlier versions (which ended in .parquet).
func legacyStagingArchive(t *testing.T, root string) string {
	t.Helper()
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, "file://"+root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	audit, err := archivetest.Read(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	o := audit.Objects[0]
	data, err := b.ReadAll(ctx, o.Key(""))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, key := range []string{o.Key(""), "_staging/0123456789abcdef/" + o.Namespace + "+" + o.Name()} {
		p := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func countOf(r duckdbResult) int64 {
	if r.Error != "" || len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		return -1
	}
	n, _ := strconv.ParseInt(fmt.Sprint(r.Rows[0][0]), 10, 64)
	return n
}

func countIs(n int) func(duckdbResult) string {
	return func(r duckdbResult) string {
		if got := countOf(r); got != int64(n) {
			return fmt.Sprintf("count %d, want %d", got, n)
		}
		return ""
	}
}

// diffRows describes the first differences between two row lists.
func diffRows(got, want [][3]string) string {
	var w strings.Builder
	in := func(rows [][3]string, r [3]string) bool { return slices.Contains(rows, r) }
	n := 0
	for _, r := range want {
		if !in(got, r) && n < 10 {
			fmt.Fprintf(&w, "  missing %v (%s)\n", r, time.UnixMicro(mustInt(r[0])).UTC().Format(time.RFC3339Nano))
			n++
		}
	}
	for _, r := range got {
		if !in(want, r) && n < 20 {
			fmt.Fprintf(&w, "  unexpected %v\n", r)
			n++
		}
	}
	if n == 0 {
		w.WriteString("  same rows, different order\n")
	}
	return w.String()
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
