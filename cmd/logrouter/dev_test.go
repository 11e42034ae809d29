//go:build !collector

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-shellwords"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/ui"
	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/pipeline/counters"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitDevRunning waits until dev (whose exit code arrives on done) prints its banner.
func waitDevRunning(t *testing.T, stdout, stderr *syncbuf.Buffer, done chan int) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(stdout.String(), "logrouter dev is running") {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before it was running:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("dev not running after 2m:\n%s\n%s", stdout.String(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func devArgs(t *testing.T, kafka, gateway string) []string {
	return []string{"dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--gateway-addr", gateway,
		"--metrics-addr", "127.0.0.1:0", "--namespaces", "shop,payments", "--rate", "5"}
}

func TestDevStopsCleanlyOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, devArgs(t, freeAddr(t), freeAddr(t)), &stdout, &stderr) }()
	waitDevRunning(t, &stdout, &stderr, done)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d after a signal, want 0:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "logrouter dev stopped") {
		t.Errorf("no stop message:\n%s", stdout.String())
	}
}

// A component that cannot start stops the whole group: dev reports that component's error
// (not a side effect such as a cancelled token request), after every other component drained
// and the broker closed.
func TestDevComponentFailureStopsAll(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	kafka := freeAddr(t)
	var stdout, stderr syncbuf.Buffer
	code := run(context.Background(), devArgs(t, kafka, taken.Addr().String()), &stdout, &stderr)
	if code == 0 {
		t.Fatalf("dev exited 0 with its gateway address taken")
	}
	msg := stderr.String()
	if !strings.Contains(msg, "gateway") || !strings.Contains(msg, "address already in use") {
		t.Errorf("error does not name the gateway's listen failure:\n%s", msg)
	}
	// The broker was closed after the group drained: its port is free again.
	ln, err := net.Listen("tcp", kafka)
	if err != nil {
		t.Errorf("Kafka's port %s still held after dev returned: %v", kafka, err)
	} else {
		ln.Close()
	}
}

// logrouter dev runs its sample pipeline on the first demo namespace, prints how to change it,
// and a change of the file (as the banner says) takes effect live: records in Kafka carry the
// pipeline's fields, then the edited pipeline's.
func TestDevSamplePipelineLive(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kafka := freeAddr(t)
	dataDir := t.TempDir()
	args := []string{"dev", "--data-dir", dataDir, "--kafka-addr", kafka, "--gateway-addr", freeAddr(t),
		"--metrics-addr", "127.0.0.1:0", "--namespaces", "shop,payments", "--rate", "20", "--pipelines-interval", "100ms", "--counters-interval", "100ms"}
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	defer func() { cancel(); <-done }()
	waitDevRunning(t, &stdout, &stderr, done)
	path := filepath.Join(dataDir, "pipelines", "demo.yaml")
	banner := stdout.String()
	for _, want := range []string{"shop runs the sample pipeline " + path, "${EDITOR:-vi} " + path,
		"pipeline validate -f " + path, "kcat -C -b " + kafka + " -t logs.shop -o end"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if code, out, errOut := runCmd(t, "pipeline", "validate", "-f", path); code != 0 {
		t.Fatalf("the sample pipeline does not validate (exit %d):\n%s%s", code, out, errOut)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics("logs.shop"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// waitRecord consumes until a stdout record's fields satisfy ok.
	waitRecord := func(what string, ok func(fields map[string]any) bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		for {
			fetches := cl.PollFetches(wctx)
			if wctx.Err() != nil {
				t.Fatalf("no record in logs.shop with %s", what)
			}
			var found bool
			fetches.EachRecord(func(r *kgo.Record) {
				var rec struct {
					Stream string         `json:"stream"`
					Fields map[string]any `json:"fields"`
				}
				if json.Unmarshal(r.Value, &rec) == nil && rec.Stream == "stdout" && ok(rec.Fields) {
					found = true
				}
			})
			if found {
				return
			}
		}
	}
	waitRecord("the sample pipeline's fields (level, a hashed user)", func(f map[string]any) bool {
		u, _ := f["user"].(string)
		return f["level"] == "info" && u != "" && !strings.HasPrefix(u, "u-")
	})
	// Edit as the banner says: the records get the new step's field.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "  steps:\n", "  steps:\n  - set:\n      field: edited\n      value: '\"live\"'\n", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitRecord(`fields.edited == "live" after the edit`, func(f map[string]any) bool { return f["edited"] == "live" })

	// The collector publishes the sample pipeline's counters for a controller to fold.
	cc, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics(topic.CountersTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	defer ccancel()
	for emitted := false; !emitted; {
		fetches := cc.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("no counters record of a shop pipeline with emitted records in %s", topic.CountersTopic)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			node, k, err := counters.ParseKey(r.Key)
			v, ok, derr := counters.Decode(r.Value)
			if err == nil && derr == nil && ok && node == "dev-node" && k.Namespace == "shop" && v.Emitted > 0 && v.Selected >= v.Emitted {
				emitted = true
			}
		})
	}
}

// logrouter dev serves the web console and prints its URL; the token it prints signs in there
// (the console's first request, GET /v1/namespaces, lists the demo namespaces).
func TestDevServesConsole(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gateway := freeAddr(t)
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, devArgs(t, freeAddr(t), gateway), &stdout, &stderr) }()
	defer func() { cancel(); <-done }()
	waitDevRunning(t, &stdout, &stderr, done)
	banner := stdout.String()
	m := regexp.MustCompile(`(?m)^  console +(\S+)`).FindStringSubmatch(banner)
	if m == nil || m[1] != "http://"+gateway+"/ui/" {
		t.Fatalf("banner has no console line with http://%s/ui/:\n%s", gateway, banner)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != ui.CSP || !strings.Contains(string(body), "app.js") {
		t.Fatalf("GET %s: %d %v\n%s", m[1], resp.StatusCode, resp.Header, body)
	}
	tok := regexp.MustCompile(`Bearer (lrt_[0-9a-f]+_[A-Za-z0-9_-]+)`).FindStringSubmatch(banner)
	if tok == nil {
		t.Fatalf("no token in the banner:\n%s", banner)
	}
	// dev prints the banner once the gateway accepts its token: the token works at once.
	req, _ := http.NewRequest(http.MethodGet, "http://"+gateway+"/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list api.NamespaceList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/namespaces with the banner's token: %d %v", resp.StatusCode, err)
	}
	if strings.Join(list.Namespaces, ",") != "payments,shop" {
		t.Fatalf("the banner's token lists %v, want payments and shop", list.Namespaces)
	}
}

// TestDevLogsLine runs the `logrouter logs` line dev prints, as printed (its -f included):
// it shows the demo namespace's lines as they are written, and Ctrl-C ends it with exit 0.
func TestDevLogsLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, devArgs(t, freeAddr(t), freeAddr(t)), &stdout, &stderr) }()
	waitDevRunning(t, &stdout, &stderr, done)
	var cmdline string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(l, "./cmd/logrouter logs ") {
			cmdline = strings.TrimSpace(l)
		}
	}
	args, err := shellwords.Parse(cmdline)
	if err != nil || len(args) < 4 || args[0] != "go" || args[2] != "./cmd/logrouter" {
		t.Fatalf("no logs line in the banner (%v):\n%s", err, stdout.String())
	}
	lctx, lcancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	ldone := make(chan int, 1)
	go func() { ldone <- run(lctx, args[3:], &out, &errOut) }()
	// The demo writes a few lines a second: 20 lines take following, not only the first page.
	deadline := time.After(time.Minute)
	for strings.Count(out.String(), "\n") < 20 {
		select {
		case code := <-ldone:
			t.Fatalf("logs exited %d:\n%s", code, errOut.String())
		case <-deadline:
			t.Fatalf("logs printed %q after 1m:\n%s", out.String(), errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	lcancel()
	if code := <-ldone; code != 0 {
		t.Fatalf("logs exited %d after Ctrl-C:\n%s", code, errOut.String())
	}
	first := strings.SplitN(out.String(), "\n", 2)[0]
	if !regexpTextLine.MatchString(first) {
		t.Fatalf("not a text line: %q", first)
	}
	cancel()
	<-done
}

// regexpTextLine is logrouter logs' text line: time, pod, container, message.
var regexpTextLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ +\S+ +[ !] `)
