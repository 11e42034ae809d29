//go:build !collector

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/syncbuf"
)

var curlLine = regexp.MustCompile(`(?m)^  curl -s ((?:-H '[^']*' )+)'([^']+)'$`)
var curlHeader = regexp.MustCompile(`-H '([^:]+): ([^']*)'`)

// tokens create --gateway-url prints, after the secret, curl lines that work: each page request
// it prints, sent as written (same URL, same headers) to a gateway on that URL, answers 200 for
// every namespace of the token. docker-compose.yml's token service relies on this.
func TestTokensCreatePrintsWorkingCurlLines(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()[0]
	// The collector has shipped something for both namespaces (else the gateway says no_logs_yet).
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopics(context.Background(), 1, 1, nil, "logs.shop", "logs.payments"); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var gwErr syncbuf.Buffer
	gwDone := make(chan int, 1)
	go func() {
		gwDone <- run(ctx, []string{"gateway", "--brokers", brokers, "--listen", addr}, io.Discard, &gwErr)
	}()
	defer func() { cancel(); <-gwDone }()

	var stdout, stderr bytes.Buffer
	args := []string{"tokens", "create", "--brokers", brokers, "--namespace", "shop", "--namespace", "payments", "--name", "compose", "--gateway-url", "http://" + addr + "/"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	secret := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(secret, "lrt_") || strings.Contains(secret, "\n") {
		t.Fatalf("stdout is not just the secret: %q", stdout.String())
	}
	lines := curlLine.FindAllStringSubmatch(stderr.String(), -1)
	if len(lines) != 2 || strings.Count(stderr.String(), "curl -N") != 2 {
		t.Fatalf("want a stream and a page curl line per namespace:\n%s", stderr.String())
	}
	seen := map[string]bool{}
	for i := range lines {
		for _, ns := range []string{"shop", "payments"} {
			if lines[i][2] == "http://"+addr+"/v1/namespaces/"+ns+"/logs?limit=5" {
				seen[ns] = true
			}
		}
		req, err := http.NewRequest(http.MethodGet, lines[i][2], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range curlHeader.FindAllStringSubmatch(lines[i][1], -1) {
			req.Header.Set(h[1], h[2])
		}
		if !strings.Contains(req.Header.Get("Authorization"), secret) {
			t.Fatalf("line %d does not carry the secret: %q", i, lines[i][0])
		}
		// The gateway learns of the token from its Kafka topic within moments.
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = &httpStatusError{resp.StatusCode, string(body)}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v\ngateway:\n%s", lines[i][0], err, gwErr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !seen["shop"] || !seen["payments"] {
		t.Errorf("page URLs %q, want one per namespace on http://%s", lines, addr)
	}
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string { return http.StatusText(e.code) + ": " + e.body }
