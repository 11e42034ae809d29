package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// archive

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/internal/logscmd"
	"github.com/logrouter/logrouter/internal/syncbuf"
)

// logsEnv is the environment `logrouter logs` sees in these tests: no config file, no
// kubeconfig, no terminal, unless a test says otherwise.
func logsEnv(t testing.TB, vars ...string) logscmd.Env {
	m := map[string]string{}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	return logscmd.Env{Home: t.TempDir(), Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

// runLogs runs `logrouter logs args...` in-process and returns stdout, stderr (with the
// error last, as the binary prints it) and the exit code.
func runLogs(ctx context.Context, env logscmd.Env, args ...string) (string, string, int) {
	var stdout, stderr syncbuf.Buffer
	err := logscmd.Run(ctx, args, env, &stdout, &stderr)
	if err != nil {
		fmt.Fprintf(&stderr, "logrouter logs: %v\n", err)
	}
	return stdout.String(), stderr.String(), exitCode(err)
}

func exitCode(err error) int {
	var ee *logscmd.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

var seqRE = regexp.MustCompile(`team-a-seq-(\d+)`)

// seqs returns the sequence numbers of the json output's records, in output order.
func seqs(t testing.TB, stdout string) []int {
	t.Helper()
	var out []int
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		m := seqRE.FindStringSubmatch(r.Message)
		if m == nil {
			t.Fatalf("unexpected message %q", r.Message)
		}
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// checkOnce fails unless got holds each of 0..n-1 exactly once.
func checkOnce(t testing.TB, got []int, n int) {
	t.Helper()
	seen := make([]int, n)
	for _, s := range got {
		if s < 0 || s >= n {
			t.Fatalf("sequence %d out of range", s)
		}
		seen[s]++
	}
	var missing, dup []int
	for i, c := range seen {
		switch {
		case c == 0:
			missing = append(missing, i)
		case c > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%d records: missing %v, duplicated %v", len(got), missing, dup)
	}
}

// archiveBucket opens an empty fileblob archive: its URL for the archiver, the bucket for the
// gateway.
func archiveBucket(t testing.TB) (string, *blob.Bucket) {
	t.Helper()
	u := "file://" + filepath.Join(t.TempDir(), "bucket")
	bkt, err := blob.OpenBucket(context.Background(), u+"?create_dir=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bkt.Close() })
	return u, bkt
}

// TestLogsSeam: `logrouter logs --since 2h` over a namespace whose oldest records Kafka's
// retention has deleted shows every sequence-numbered line exactly once: the deleted part from
// the archive (written by the real archiver to fileblob), the rest from Kafka, joined at
// offsets. The lines' own times run up to 4.5 minutes behind their Kafka times and out of
// offset order, so a seam by timestamp would lose or repeat lines.
func TestLogsSeam(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bucketURL, bkt := archiveBucket(t)
	e := startGateway(t, 2, func(c *api.Config, o *[]api.Option) { *o = append(*o, api.WithBucket(bkt)) })
	adm := kadm.NewClient(e.kcl)
	retention := "2400000" // 40 min
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": &retention}, "logs.team-a"); err != nil {
		t.Fatal(err)
	}
	const n = 200
	now := time.Now()
	base := now.Add(-70 * time.Minute) // record i at base+20s*i: the first ~90 are older than 40 min
	want := map[archivetest.Pos]int64{}
	for i := range n {
		kt := base.Add(time.Duration(i) * 20 * time.Second)
		r := archivetest.Record(archivetest.Line{Namespace: "team-a", Pod: fmt.Sprintf("web-%d", i%3), Container: "app",
			Time: kt.Add(-time.Duration(i%7) * 45 * time.Second), Message: archivetest.Seq("team-a", i), KafkaTime: kt, Partition: int32(i % 2)})
		// One record per produce, so each is its own batch and retention deletes record by record.
		if err := e.kcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
		want[p] = max(want[p], r.Offset+1)
	}
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)
	e.cluster.ApplyRetention()
	starts, err := adm.ListStartOffsets(ctx, "logs.team-a")
	if err != nil {
		t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset <= 0 || o.Offset >= int64(n/2) {
			t.Fatalf("partition %d log start %d: retention should have deleted part of it", o.Partition, o.Offset)
		}
	})
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	env := logsEnv(t, "LOGROUTER_TOKEN", secret)

	stdout, stderr, code := runLogs(ctx, env, "-n", "team-a", "--gateway", e.base, "--since", "2h", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := seqs(t, stdout)
	checkOnce(t, got, n)
	// The archive part comes first and in time order; it is exactly what retention deleted.
	own := func(i int) time.Time {
		return base.Add(time.Duration(i)*20*time.Second - time.Duration(i%7)*45*time.Second)
	}
	deleted := 0
	starts.Each(func(o kadm.ListedOffset) { deleted += int(o.Offset) })
	for i := 1; i < deleted; i++ {
		if own(got[i]).Before(own(got[i-1])) {
			t.Fatalf("archive part out of time order at %d: %v", i, got[:deleted])
		}
	}
	for _, s := range got[:deleted] {
		p, o := int32(s%2), int64(s/2)
		if so, _ := starts.Lookup("logs.team-a", p); o >= so.Offset {
			t.Fatalf("seq %d (partition %d offset %d) came before the seam but Kafka still holds it (log start %d)", s, p, o, so.Offset)
		}
	}

	// Following from the same start: the same timeline, then new lines as they come.
	fctx, fcancel := context.WithCancel(ctx)
	var fout, ferr syncbuf.Buffer
	fdone := make(chan error, 1)
	go func() {
		fdone <- logscmd.Run(fctx, []string{"-n", "team-a", "--gateway", e.base, "--since", "2h", "-f", "-o", "json"}, env, &fout, &ferr)
	}()
	waitLines(t, &fout, n, "following from --since")
	for i := n; i < n+10; i++ {
		r := archivetest.Record(archivetest.Line{Namespace: "team-a", Pod: "web-0", Container: "app", Time: time.Now(), Message: archivetest.Seq("team-a", i), Partition: int32(i % 2)})
		if err := e.kcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitLines(t, &fout, n+10, "following new lines")
	fcancel()
	if err := <-fdone; err != nil {
		t.Fatalf("logs -f --since: %v\n%s", err, ferr.String())
	}
	checkOnce(t, seqs(t, fout.String()), n+10)

	// Without --since, only what Kafka holds: exactly the lines retention left.
	stdout, stderr, code = runLogs(ctx, env, "-n", "team-a", "--gateway", e.base, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := seqs(t, stdout); len(got) != n+10-deleted {
		t.Fatalf("kafka only: %d records, want %d", len(got), n+10-deleted)
	}

	// A bounded range inside the archive: --from/--until on the lines' own time.
	from := base.Add(-5 * time.Minute).UTC().Format(time.RFC3339)
	until := base.Add(10 * time.Minute).UTC()
	stdout, stderr, code = runLogs(ctx, env, "-n", "team-a", "--gateway", e.base, "--from", from, "--until", until.Format(time.RFC3339Nano), "-o", "json", "--pod", "web-[01]")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var wantRange []int
	for i := range n {
		if own(i).Before(until) && i%3 != 2 {
			wantRange = append(wantRange, i)
		}
	}
	if got := seqs(t, stdout); fmt.Sprint(sortedInts(got)) != fmt.Sprint(wantRange) {
		t.Fatalf("range: got %v, want %v", sortedInts(got), wantRange)
	}
}

func sortedInts(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestLogsArchiveBefore: the archive endpoint's records carry their Kafka partition and
// offset, and before=<cursor> serves only what lies below the cursor; a cursor of another
// topic is refused.
func TestLogsArchiveBefore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bucketURL, bkt := archiveBucket(t)
	e := startGateway(t, 2, func(c *api.Config, o *[]api.Option) { *o = append(*o, api.WithBucket(bkt)) })
	e.createTopic("logs.team-a", 2)
	e.createTopic("logs.team-b", 1)
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	var rs []*kgo.Record
	for i := range 40 {
		ts := base.Add(time.Duration(i) * time.Second)
		rs = append(rs, archivetest.Record(archivetest.Line{Namespace: "team-a", Pod: "web", Container: "app", Time: ts, Message: archivetest.Seq("team-a", i), KafkaTime: ts, Partition: int32(i % 2)}))
	}
	if err := archivetest.Produce(ctx, e.kcl, rs); err != nil {
		t.Fatal(err)
	}
	if err := archivetest.Produce(ctx, e.kcl, []*kgo.Record{archivetest.Record(archivetest.Line{Namespace: "team-b", Pod: "web", Container: "app", Time: base, Message: "b", KafkaTime: base})}); err != nil {
		t.Fatal(err)
	}
	want := map[archivetest.Pos]int64{}
	for _, r := range rs {
		p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
		want[p] = max(want[p], r.Offset+1)
	}
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a", "team-b"}})

	// A page from the 25th second: its start_cursor is offset 12 in partition 0 and 13 in 1
	// (records 25.. have Kafka time >= from).
	from := url.QueryEscape(base.Add(25 * time.Second).Format(time.RFC3339))
	resp := e.get("/v1/namespaces/team-a/logs?limit=1&from="+from, secret)
	var pg struct {
		StartCursor     string  `json:"start_cursor"`
		StartOffsets    []int64 `json:"start_offsets"`
		LogStartOffsets []int64 `json:"log_start_offsets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&pg); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fmt.Sprint(pg.StartOffsets) != "[13 12]" || fmt.Sprint(pg.LogStartOffsets) != "[0 0]" || pg.StartCursor == "" {
		t.Fatalf("page start %v, log start %v, cursor %q", pg.StartOffsets, pg.LogStartOffsets, pg.StartCursor)
	}
	since := url.QueryEscape(base.Add(-time.Minute).Format(time.RFC3339))
	resp = e.get("/v1/namespaces/team-a/archive?since="+since+"&before="+pg.StartCursor, secret)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, problemCode(t, resp))
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() {
		var l struct {
			Type      string `json:"type"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Record    struct {
				Message string `json:"message"`
			} `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Type != "record" {
			continue
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(l.Record.Message, "team-a-seq-"))
		if l.Partition != int32(i%2) || l.Offset != int64(i/2) {
			t.Fatalf("seq %d at partition %d offset %d, produced at %d/%d", i, l.Partition, l.Offset, i%2, i/2)
		}
		got = append(got, l.Record.Message)
	}
	resp.Body.Close()
	if len(got) != 25 || got[0] != "team-a-seq-0" || got[24] != "team-a-seq-24" {
		t.Fatalf("before the cursor: %d records %v, want seq 0..24", len(got), got)
	}
	// A team-b cursor on team-a's archive.
	resp = e.get("/v1/namespaces/team-b/logs?limit=1", secret)
	if err := json.NewDecoder(resp.Body).Decode(&pg); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp = e.get("/v1/namespaces/team-a/archive?since="+since+"&before="+pg.StartCursor, secret)
	if code := problemCode(t, resp); code != "invalid_cursor" {
		t.Fatalf("another topic's cursor: %q, want invalid_cursor", code)
	}
}

// produceSeq produces team-a's sequence lines [from, to) over the topic's partitions.
func (e *gwEnv) produceSeq(from, to int, parts int32) {
	e.t.Helper()
	var ls []line
	for i := from; i < to; i++ {
		ls = append(ls, line{ns: "team-a", pod: fmt.Sprintf("web-%d", i%3), container: "app", msg: archivetest.Seq("team-a", i), partition: int32(i) % parts})
	}
	e.produce(ls...)
}

// waitLines waits until out holds n lines.
func waitLines(t testing.TB, out *syncbuf.Buffer, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d lines after 30s:\n%s", what, strings.Count(out.String(), "\n"), n, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLogsFollowGatewayRestart: `logrouter logs -f` keeps following across a gateway restart
// (the gateway ends the stream with "shutdown", is down for a while, comes back on the same
// address): every line, including those produced while it was down, arrives exactly once and in
// offset order per partition. With the gateway gone for good, a bounded read gives up after
// --retry-for with exit code 5.
func TestLogsFollowGatewayRestart(t *testing.T) {
	e := startGateway(t, 2)
	e.createTopic("logs.team-a", 2)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	addr := strings.TrimPrefix(e.base, "http://")
	e.produceSeq(0, 40, 2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- logscmd.Run(ctx, []string{"-n", "team-a", "--gateway", e.base, "-f", "-o", "json", "--retry-for", "1m"},
			logsEnv(t, "LOGROUTER_TOKEN", secret), &stdout, &stderr)
	}()
	waitLines(t, &stdout, 40, "before the restart")
	e.produceSeq(40, 60, 2)
	waitLines(t, &stdout, 60, "live")

	e.stop() // graceful: open streams get end/shutdown, then the port closes
	e.produceSeq(60, 100, 2)
	time.Sleep(300 * time.Millisecond) // the client retries against a closed port meanwhile
	e2 := startGatewayOn(t, e.cluster, e.kcl, func(c *api.Config, _ *[]api.Option) { c.Listen = addr })
	e2.produceSeq(100, 120, 2)
	waitLines(t, &stdout, 120, "after the restart")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("logs -f: %v\n%s", err, stderr.String())
	}
	got := seqs(t, stdout.String())
	checkOnce(t, got, 120)
	last := map[int]int{0: -1, 1: -1}
	for _, s := range got {
		if s <= last[s%2] {
			t.Fatalf("partition %d: %d after %d", s%2, s, last[s%2])
		}
		last[s%2] = s
	}
	if !strings.Contains(stderr.String(), "retrying in") {
		t.Fatalf("no retry reported on stderr:\n%s", stderr.String())
	}

	e2.stop()
	out, errOut, code := runLogs(context.Background(), logsEnv(t, "LOGROUTER_TOKEN", secret), "-n", "team-a", "--gateway", e.base, "--retry-for", "1s")
	if code != logscmd.ExitUnavailable || out != "" || !strings.Contains(errOut, "still failing after 1s") {
		t.Fatalf("gateway gone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestLogsAuthErrors: credentials the gateway refuses, and a namespace they do not grant, end
// `logrouter logs` with a clear message and their own exit codes.
func TestLogsAuthErrors(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	e.createTopic("logs.team-b", 1)
	e.produceSeq(0, 3, 1)
	teamB, _ := e.token(token.Spec{Namespaces: []string{"team-b"}})
	revoked, rec := e.token(token.Spec{Namespaces: []string{"team-a"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := token.Revoke(ctx, e.kcl, token.DefaultTopic, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp := e.get("/v1/namespaces/team-a/logs?limit=1", revoked)
		code := problemCode(t, resp)
		if code == "token_revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revocation not seen: %s", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("lrt_0000000000000000_"+strings.Repeat("a", 43)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"no credentials", nil, nil, logscmd.ExitAuth, "no credentials"},
		{"unknown token", []string{"LOGROUTER_TOKEN", "lrt_0000000000000000_" + strings.Repeat("b", 43)}, nil, logscmd.ExitAuth, "refused the credentials"},
		{"unknown token from a file", nil, []string{"--token-file", tokenFile}, logscmd.ExitAuth, "(401 unauthenticated)"},
		{"missing token file", nil, []string{"--token-file", tokenFile + ".missing"}, logscmd.ExitAuth, "no such file"},
		{"revoked token", []string{"LOGROUTER_TOKEN", revoked}, nil, logscmd.ExitAuth, "token_revoked"},
		{"namespace not granted", []string{"LOGROUTER_TOKEN", teamB}, nil, logscmd.ExitForbidden, `may not read namespace "team-a"`},
		{"not granted, following", []string{"LOGROUTER_TOKEN", teamB}, []string{"-f"}, logscmd.ExitForbidden, "forbidden"},
		{"bad flag", []string{"LOGROUTER_TOKEN", teamB}, []string{"--since", "yesterday"}, logscmd.ExitUsage, `--since "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-n", "team-a", "--gateway", e.base}, tt.args...)
			out, errOut, code := runLogs(ctx, logsEnv(t, tt.env...), args...)
			if code != tt.code || out != "" || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.msg)
			}
		})
	}
	// The token works for its own namespace: exit 0.
	if _, errOut, code := runLogs(ctx, logsEnv(t, "LOGROUTER_TOKEN", teamB), "-n", "team-b", "--gateway", e.base); code != 0 {
		t.Fatalf("own namespace: exit %d: %s", code, errOut)
	}
}

// TestLogsEscapesNeutralised: a log line holding terminal escape sequences (OSC title, screen
// clear, 8-bit CSI, a carriage return, a bidi override) is shown as visible escapes in text
// and raw output to a terminal, and as JSON escapes in json output: nothing reaches the
// terminal that could control it.
func TestLogsEscapesNeutralised(t *testing.T) {
	e := startGateway(t, 1)
	e.createTopic("logs.team-a", 1)
	evil := "team-a-seq-0 \x1b]0;pwned\x07\x1b[2J\x1b[31mred\u009b1m\rover\u202eevil\x00 first\nsecond line"
	e.produce(line{ns: "team-a", pod: "web-\x1b[1m", container: "app", msg: evil})
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	tty := logsEnv(t, "LOGROUTER_TOKEN", secret)
	tty.IsTerminal = func(io.Writer) bool { return true }
	for _, tt := range []struct {
		output string
		want   []string
	}{
		{"text", []string{`\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u009b1m\rover\u202eevil\x00 first`, "web-\\x1b[1m"}},
		{"raw", []string{`\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u009b1m\rover\u202eevil\x00 first` + "\nsecond line\n"}},
		{"json", []string{`\u001b]0;pwned\u0007\u001b[2J`, `\u009b1m\rover\u202eevil\u0000 first\nsecond line`}},
	} {
		t.Run(tt.output, func(t *testing.T) {
			for _, color := range []string{"never", "always"} {
				out, errOut, code := runLogs(context.Background(), tty, "-n", "team-a", "--gateway", e.base, "-o", tt.output, "--color", color)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("--color %s: output %q lacks %q", color, out, w)
					}
				}
				// Colour codes are the printer's own; strip them, then nothing may remain.
				plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out, "")
				if strings.ContainsAny(plain, "\x1b\x07\r\x00\u009b\u202e") {
					t.Errorf("--color %s: a control character reached the terminal: %q", color, out)
				}
				if color == "never" && out != plain {
					t.Errorf("--color never wrote colour codes: %q", out)
				}
			}
		})
	}
	// NO_COLOR turns colour off on a terminal; off a terminal there is none.
	for _, env := range []logscmd.Env{func() logscmd.Env { e := tty; e.Lookup = withVar(tty.Lookup, "NO_COLOR", "1"); return e }(), logsEnv(t, "LOGROUTER_TOKEN", secret)} {
		out, _, _ := runLogs(context.Background(), env, "-n", "team-a", "--gateway", e.base)
		if strings.Contains(out, "\x1b[3") || !strings.Contains(out, "web-") {
			t.Errorf("colour without a terminal or with NO_COLOR: %q", out)
		}
	}
	out, _, _ := runLogs(context.Background(), tty, "-n", "team-a", "--gateway", e.base)
	if !strings.Contains(out, "\x1b[31m") {
		t.Errorf("no pod colour on a terminal: %q", out)
	}
}

func withVar(lookup func(string) (string, bool), k, v string) func(string) (string, bool) {
	return func(s string) (string, bool) {
		if s == k {
			return v, true
		}
		return lookup(s)
	}
}

// cutProxy forwards TCP connections to target; cut closes the open ones, as a dropped network
// path or a load balancer would, without the gateway ending the stream.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	return n
}

// TestLogsFollowConnectionDrop: when the connection under `logrouter logs -f` is cut (no end
// line from the gateway), it reconnects from its last cursor: every line exactly once.
func TestLogsFollowConnectionDrop(t *testing.T) {
	e := startGateway(t, 2)
	e.createTopic("logs.team-a", 2)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	proxy := startCutProxy(t, strings.TrimPrefix(e.base, "http://"))
	e.produceSeq(0, 30, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- logscmd.Run(ctx, []string{"-n", "team-a", "--gateway", "http://" + proxy.ln.Addr().String(), "-f", "-o", "json"},
			logsEnv(t, "LOGROUTER_TOKEN", secret), &stdout, &stderr)
	}()
	waitLines(t, &stdout, 30, "before the cut")
	for i := range 3 {
		if n := proxy.cut(); n == 0 {
			t.Fatalf("cut %d: no open connection", i)
		}
		e.produceSeq(30+i*20, 50+i*20, 2)
		waitLines(t, &stdout, 50+i*20, fmt.Sprintf("after cut %d", i))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("logs -f: %v\n%s", err, stderr.String())
	}
	checkOnce(t, seqs(t, stdout.String()), 90)
	if !strings.Contains(stderr.String(), "connection lost") && !strings.Contains(stderr.String(), "EOF") {
		t.Errorf("the drop was not reported:\n%s", stderr.String())
	}
}

// BenchmarkLogsRead measures `logrouter logs` reading a namespace to its end through the
// gateway (kfake, 2 partitions, 20,000 records of ~200 bytes), text output to io.Discard.
func BenchmarkLogsRead(b *testing.B) {
	e := startGateway(b, 2)
	e.createTopic("logs.team-a", 2)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	const n = 20000
	for i := 0; i < n; i += 1000 {
		e.produceSeq(i, i+1000, 2)
	}
	env := logsEnv(b, "LOGROUTER_TOKEN", secret)
	b.ResetTimer()
	for b.Loop() {
		if err := logscmd.Run(context.Background(), []string{"-n", "team-a", "--gateway", e.base}, env, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestLogsRetentionDuringFollow: Kafka's retention deletes records a follower has not read
// yet (here while the gateway is down; the reconnect's cursor is below the new log start). The
// gap, reported by offsets, is read from the archive: every line exactly once, in offset order
// per partition, the archived part included. A gap the archive does not hold yet is reported
// on stderr with its offsets, and following goes on.
func TestLogsRetentionDuringFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bucketURL, bkt := archiveBucket(t)
	withBucket := func(c *api.Config, o *[]api.Option) { *o = append(*o, api.WithBucket(bkt)) }
	e := startGateway(t, 2, withBucket)
	adm := kadm.NewClient(e.kcl)
	retention := "2400000" // 40 min; every record below is older
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": &retention}, "logs.team-a"); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-2 * time.Hour)
	want := map[archivetest.Pos]int64{}
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			kt := base.Add(time.Duration(i) * 10 * time.Second)
			// Own times run against offsets: the fill must follow offsets, not times.
			r := archivetest.Record(archivetest.Line{Namespace: "team-a", Pod: fmt.Sprintf("web-%d", i%3), Container: "app",
				Time: kt.Add(-time.Duration(i%7) * 45 * time.Second), Message: archivetest.Seq("team-a", i), KafkaTime: kt, Partition: int32(i % 2)})
			// One record per produce: each is its own batch, so retention deletes record by record.
			if err := e.kcl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			p := archivetest.Pos{Topic: r.Topic, Partition: r.Partition}
			want[p] = max(want[p], r.Offset+1)
		}
	}
	logStarts := func() map[int32]int64 {
		t.Helper()
		starts, err := adm.ListStartOffsets(ctx, "logs.team-a")
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		starts.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out
	}
	produce(0, 40)
	secret, _ := e.token(token.Spec{Namespaces: []string{"team-a"}})
	addr := strings.TrimPrefix(e.base, "http://")
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- logscmd.Run(fctx, []string{"-n", "team-a", "--gateway", e.base, "-f", "-o", "json", "--retry-for", "2m"},
			logsEnv(t, "LOGROUTER_TOKEN", secret), &stdout, &stderr)
	}()
	waitLines(t, &stdout, 40, "before retention")

	// Phase 1: the gap is archived. Retention deletes everything while the gateway is down.
	e.stop()
	produce(40, 120)
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)
	e.cluster.ApplyRetention()
	if s := logStarts(); s[0] != 60 || s[1] != 60 {
		t.Fatalf("log starts %v after retention, want 60 60", s)
	}
	produce(120, 140) // after the gap, in Kafka
	e = startGatewayOn(t, e.cluster, e.kcl, func(c *api.Config, o *[]api.Option) { c.Listen = addr; withBucket(c, o) })
	waitLines(t, &stdout, 140, "after the archived gap")
	got := seqs(t, stdout.String())
	checkOnce(t, got, 140)
	last := map[int]int{0: -1, 1: -1}
	for _, s := range got {
		if s <= last[s%2] {
			t.Fatalf("partition %d: %d after %d: %v", s%2, s, last[s%2], got)
		}
		last[s%2] = s
	}
	if strings.Contains(stderr.String(), "deleted by Kafka retention") {
		t.Fatalf("an archived gap was reported as lost:\n%s", stderr.String())
	}

	// Phase 2: the gap is not archived (the archiver is behind): said, with its offsets.
	e.stop()
	produce(140, 180)
	e.cluster.ApplyRetention()
	if s := logStarts(); s[0] != 90 || s[1] != 90 {
		t.Fatalf("log starts %v after the second retention, want 90 90", s)
	}
	produce(180, 190)
	e = startGatewayOn(t, e.cluster, e.kcl, func(c *api.Config, o *[]api.Option) { c.Listen = addr; withBucket(c, o) })
	waitLines(t, &stdout, 150, "after the unarchived gap")
	fcancel()
	if err := <-done; err != nil {
		t.Fatalf("logs -f: %v\n%s", err, stderr.String())
	}
	got = seqs(t, stdout.String())
	var wantSeq []int
	for i := range 190 {
		if i < 140 || i >= 180 {
			wantSeq = append(wantSeq, i)
		}
	}
	if fmt.Sprint(sortedInts(got)) != fmt.Sprint(wantSeq) {
		t.Fatalf("after the unarchived gap: %v, want %v", sortedInts(got), wantSeq)
	}
	for p := range 2 {
		msg := fmt.Sprintf("20 records of partition %d (offsets 70 to 89) were deleted by Kafka retention before they were read and are not archived yet", p)
		if !strings.Contains(stderr.String(), msg) {
			t.Errorf("stderr does not say %q:\n%s", msg, stderr.String())
		}
	}
}
