package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/cursor"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/internal/record"
)

// suffixBase is the time of the suffix test's lines: the hour the docs' archive example asks for.
var suffixBase = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// suffixEnv is a gateway over a kfake cluster and a file:// archive that hold, for namespace
// shop, 20 lines "shop plain-<i>" in logs.shop and 10 "shop audit-<i>" in logs.shop.audit, plus
// one record in logs.shop.audit whose namespace header is team-b ("forged"), and 5 lines of
// team-b in logs.team-b.audit; everything is archived by the real archiver.
type suffixEnv struct {
	*gwEnv
	shop, teamB string // tokens
}

func startSuffixEnv(t *testing.T) *suffixEnv {
	t.Helper()
	dir := t.TempDir()
	bucketURL := "file://" + filepath.Join(dir, "bucket")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bkt, err := blob.OpenBucket(ctx, bucketURL+"?create_dir=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bkt.Close() })
	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) { *o = append(*o, api.WithBucket(bkt)) })
	for _, tp := range []string{"logs.shop", "logs.shop.audit", "logs.team-b", "logs.team-b.audit"} {
		e.createTopic(tp, 1)
	}
	var rs []*kgo.Record
	add := func(ns, suffix, msg string, i int) *kgo.Record {
		ts := suffixBase.Add(time.Duration(i) * 10 * time.Second)
		r := archivetest.Record(archivetest.Line{Namespace: ns, Pod: "web-1", Container: "app", Time: ts, KafkaTime: ts,
			Message: msg, Suffix: suffix, Partition: 0, Fields: []byte(`{"level":"info"}`)})
		rs = append(rs, r)
		return r
	}
	for i := 0; i < 20; i++ {
		add("shop", "", fmt.Sprintf("shop plain-%d", i), i)
		if i < 10 {
			add("shop", "audit", fmt.Sprintf("shop audit-%d", i), i)
		}
		if i < 5 {
			add("team-b", "audit", fmt.Sprintf("team-b audit-%d", i), i)
		}
	}
	// A record of another namespace in shop's suffix topic (a shared or misused topic): never shown.
	add("team-b", "", "forged", 3).Topic = "logs.shop.audit"
	if err := archivetest.Produce(ctx, e.kcl, rs); err != nil {
		t.Fatal(err)
	}
	want := map[archivetest.Pos]int64{}
	for _, r := range rs {
		p := archivetest.Pos{Topic: r.Topic}
		want[p] = max(want[p], r.Offset+1)
	}
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)
	s := &suffixEnv{gwEnv: e}
	s.shop, _ = e.token(token.Spec{Namespaces: []string{"shop"}})
	s.teamB, _ = e.token(token.Spec{Namespaces: []string{"team-b"}})
	return s
}

// messages reads a JSON page or an archive NDJSON answer and returns the records' messages
// (failing on a record of another namespace) and, for a page, its next cursor.
func messages(t *testing.T, body []byte) (msgs []string, next string) {
	t.Helper()
	check := func(raw []byte) {
		r, err := record.Decode(raw)
		if err != nil {
			t.Fatalf("record %s: %v", raw, err)
		}
		if r.Namespace != "shop" {
			t.Fatalf("a record of namespace %q was served to shop: %s", r.Namespace, raw)
		}
		msgs = append(msgs, r.Message)
	}
	if bytes.HasPrefix(body, []byte(`{"records"`)) {
		var p struct {
			Records    []json.RawMessage `json:"records"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %.300s: %v", body, err)
		}
		for _, r := range p.Records {
			check(r)
		}
		return msgs, p.NextCursor
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ln struct {
			Type   string          `json:"type"`
			Record json.RawMessage `json:"record"`
			Data   json.RawMessage `json:"data"`
		}
		line := bytes.TrimPrefix(sc.Bytes(), []byte("data: "))
		if len(bytes.TrimSpace(line)) == 0 || line[0] != '{' {
			continue // SSE framing: id:, event:, comments, blank lines
		}
		if err := json.Unmarshal(line, &ln); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		switch {
		case ln.Type == "record":
			check(ln.Record)
		case ln.Type == "" && bytes.Contains(line, []byte(`"v":`)): // an SSE record event
			check(line)
		}
	}
	return msgs, ""
}

// onlyPrefix checks that every message starts with prefix and that there are want of them.
func onlyPrefix(t *testing.T, what string, msgs []string, prefix string, want int) {
	t.Helper()
	for _, m := range msgs {
		if !strings.HasPrefix(m, prefix) {
			t.Errorf("%s: message %q, want only %q...", what, m, prefix)
		}
	}
	if want >= 0 && len(msgs) != want {
		t.Errorf("%s: %d records %q, want %d", what, len(msgs), msgs, want)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return b
}

// TestGatewaySuffixTopics: the gateway serves a namespace's suffix topic, live and archived, to
// that namespace's credentials only, keeps it apart from the namespace's topic (records and
// cursors), and refuses every way of naming another topic with a problem+json.
func TestGatewaySuffixTopics(t *testing.T) {
	e := startSuffixEnv(t)
	since := url.QueryEscape(suffixBase.Format(time.RFC3339))
	until := url.QueryEscape(suffixBase.Add(time.Hour).Format(time.RFC3339))

	t.Run("live", func(t *testing.T) {
		msgs, auditCursor := messages(t, readAll(t, e.get("/v1/namespaces/shop/logs?suffix=audit&limit=100", e.shop)))
		onlyPrefix(t, "suffix=audit page", msgs, "shop audit-", 10)
		msgs, plainCursor := messages(t, readAll(t, e.get("/v1/namespaces/shop/logs?limit=100", e.shop)))
		onlyPrefix(t, "page", msgs, "shop plain-", 20)
		// Cursors stay on their topic: continuing one works, using it on the other is refused.
		msgs, _ = messages(t, readAll(t, e.get("/v1/namespaces/shop/logs?suffix=audit&cursor="+auditCursor, e.shop)))
		onlyPrefix(t, "suffix=audit next page", msgs, "shop audit-", 0)
		for _, path := range []string{"/v1/namespaces/shop/logs?cursor=" + auditCursor, "/v1/namespaces/shop/logs?suffix=audit&cursor=" + plainCursor} {
			if code, param := problemParam(t, e.get(path, e.shop)); code != "invalid_cursor" || param != "cursor" {
				t.Errorf("%s: %s %s, want invalid_cursor on cursor", path, code, param)
			}
		}
		// NDJSON and SSE streams, ended by limit.
		for _, accept := range []string{"application/x-ndjson", "text/event-stream"} {
			msgs, _ = messages(t, readAll(t, e.get("/v1/namespaces/shop/logs?suffix=audit&from=earliest&limit=10", e.shop, "Accept", accept)))
			onlyPrefix(t, accept, msgs, "shop audit-", 10)
		}
		// team-b reads its own suffix topic.
		resp := e.get("/v1/namespaces/team-b/logs?suffix=audit&limit=100", e.teamB)
		var p struct{ Records []json.RawMessage }
		if err := json.Unmarshal(readAll(t, resp), &p); err != nil || len(p.Records) != 5 {
			t.Errorf("team-b suffix=audit: %d records, %v", len(p.Records), err)
		}
	})

	t.Run("archive", func(t *testing.T) {
		q := "since=" + since + "&until=" + until
		msgs, _ := messages(t, readAll(t, e.get("/v1/namespaces/shop/archive?suffix=audit&"+q, e.shop)))
		onlyPrefix(t, "archive suffix=audit", msgs, "shop audit-", 10)
		msgs, _ = messages(t, readAll(t, e.get("/v1/namespaces/shop/archive?"+q, e.shop)))
		onlyPrefix(t, "archive", msgs, "shop plain-", 20)
		msgs, _ = messages(t, readAll(t, e.get("/v1/namespaces/shop/archive?suffix=debug&"+q, e.shop)))
		onlyPrefix(t, "archive suffix=debug (no such topic)", msgs, "", 0)
	})

	t.Run("refused", func(t *testing.T) {
		otherCursor := cursor.Cursor{TopicHash: cursor.TopicHash("logs.team-b.audit"), Offsets: []int64{0}}.String()
		for _, tt := range []struct {
			name, path, tok string
			status          int
			code, param     string
		}{
			{"another namespace's suffix topic", "/v1/namespaces/team-b/logs?suffix=audit", e.shop, 403, "forbidden", ""},
			{"another namespace's archived suffix topic", "/v1/namespaces/team-b/archive?suffix=audit&since=" + since, e.shop, 403, "forbidden", ""},
			{"the other way round", "/v1/namespaces/shop/logs?suffix=audit", e.teamB, 403, "forbidden", ""},
			{"no credentials", "/v1/namespaces/shop/logs?suffix=audit", "", 401, "unauthenticated", ""},
			{"another namespace's topic as suffix", "/v1/namespaces/shop/logs?suffix=logs.team-b", e.shop, 400, "invalid_parameter", "suffix"},
			{"another namespace's suffix as suffix", "/v1/namespaces/shop/logs?suffix=team-b.audit", e.shop, 400, "invalid_parameter", "suffix"},
			{"dot dot", "/v1/namespaces/shop/logs?suffix=..", e.shop, 400, "invalid_parameter", "suffix"},
			{"escaped dot dot", "/v1/namespaces/shop/logs?suffix=%2e%2e", e.shop, 400, "invalid_parameter", "suffix"},
			{"escaped dot", "/v1/namespaces/shop/logs?suffix=audit%2Eb", e.shop, 400, "invalid_parameter", "suffix"},
			{"traversal", "/v1/namespaces/shop/logs?suffix=..%2f..%2fteam-b", e.shop, 400, "invalid_parameter", "suffix"},
			{"slash", "/v1/namespaces/shop/archive?suffix=a/b&since=" + since, e.shop, 400, "invalid_parameter", "suffix"},
			{"escaped nul", "/v1/namespaces/shop/logs?suffix=audit%00", e.shop, 400, "invalid_parameter", "suffix"},
			{"unicode", "/v1/namespaces/shop/logs?suffix=%C3%A4udit", e.shop, 400, "invalid_parameter", "suffix"},
			{"upper case", "/v1/namespaces/shop/logs?suffix=Audit", e.shop, 400, "invalid_parameter", "suffix"},
			{"underscore", "/v1/namespaces/shop/logs?suffix=au_dit", e.shop, 400, "invalid_parameter", "suffix"},
			{"empty", "/v1/namespaces/shop/logs?suffix=", e.shop, 400, "invalid_parameter", "suffix"},
			{"too long", "/v1/namespaces/shop/logs?suffix=" + strings.Repeat("a", 64), e.shop, 400, "invalid_parameter", "suffix"},
			{"twice", "/v1/namespaces/shop/logs?suffix=audit&suffix=debug", e.shop, 400, "invalid_parameter", "suffix"},
			{"client-chosen topic", "/v1/namespaces/shop/logs?suffix=audit&topic=logs.team-b.audit", e.shop, 400, "unknown_parameter", "topic"},
			{"suffix in the namespace segment", "/v1/namespaces/shop.audit/logs", e.shop, 400, "invalid_namespace", ""},
			{"escaped suffix in the namespace segment", "/v1/namespaces/shop%2eaudit/logs", e.shop, 400, "invalid_namespace", ""},
			{"another suffix topic's cursor", "/v1/namespaces/shop/logs?suffix=audit&cursor=" + otherCursor, e.shop, 400, "invalid_cursor", "cursor"},
			{"no such suffix topic", "/v1/namespaces/shop/logs?suffix=debug", e.shop, 404, "no_logs_yet", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				resp := e.get(tt.path, tt.tok)
				if resp.StatusCode != tt.status {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
				}
				if code, param := problemParam(t, resp); code != tt.code || param != tt.param {
					t.Fatalf("problem %q param %q, want %q %q", code, param, tt.code, tt.param)
				}
			})
		}
	})

	t.Run("docs curl examples", func(t *testing.T) { runAPIDocCurls(t, e) })
}

// curlCommand finds the curl commands of a markdown file: lines that start with `curl ` (after
// indentation), with their `\` continuation lines.
var curlStart = regexp.MustCompile(`^\s*curl\s`)

func docCurls(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if !curlStart.MatchString(lines[i]) {
			continue
		}
		cmd := strings.TrimSpace(lines[i])
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, `\`) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, cmd)
	}
	return out
}

// runAPIDocCurls runs every curl command of docs/api.md with the real curl, against the
// suffix test's gateway (https://gateway replaced by its URL, $TOKEN set to shop's token), and
// checks each answers 200 with shop's records, and only the suffix topic's when the URL has
// suffix=. A stream (-N) is read for two seconds and then stopped.
func runAPIDocCurls(t *testing.T, e *suffixEnv) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH (apt-get install -y curl); the docs' curl examples are not run")
	}
	cmds := docCurls(t, "../docs/api.md")
	if len(cmds) < 3 {
		t.Fatalf("docs/api.md: %d curl commands, want the quick start and the suffix examples", len(cmds))
	}
	for _, c := range cmds {
		t.Run(c, func(t *testing.T) {
			if !strings.Contains(c, "https://gateway/") || !strings.Contains(c, `"Authorization: Bearer $TOKEN"`) {
				t.Fatalf("a curl example must call https://gateway/... with -H \"Authorization: Bearer $TOKEN\": %s", c)
			}
			stream := strings.Contains(c, " -N ")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if stream {
				ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
			}
			defer cancel()
			line := strings.Replace(strings.Replace(c, "curl ", curl+" --fail-with-body ", 1), "https://gateway/", e.base+"/", 1)
			cmd := exec.CommandContext(ctx, "bash", "-c", "exec "+line)
			cmd.Env = append(os.Environ(), "TOKEN="+e.shop)
			cmd.WaitDelay = time.Second
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err != nil && !(stream && ctx.Err() != nil) {
				var ee *exec.ExitError
				errors.As(err, &ee)
				t.Fatalf("%v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
			}
			msgs, _ := messages(t, stdout.Bytes())
			prefix := "shop plain-"
			if strings.Contains(c, "suffix=audit") {
				prefix = "shop audit-"
			}
			if len(msgs) == 0 {
				t.Fatalf("no records: %s", stdout.String())
			}
			onlyPrefix(t, c, msgs, prefix, -1)
		})
	}
}
