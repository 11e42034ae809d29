package integration

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/integration/collectortest"
)

// TestGatewayCommands runs the real commands: `logrouter tokens create|list|revoke` and
// `logrouter gateway` as subprocesses against kfake.
func TestGatewayCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the logrouter binary")
	}
	bin := collectortest.Binary(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	run := func(args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Env = append(os.Environ(), "LOGROUTER_BROKERS="+brokers) // the env fallback
		if err := cmd.Run(); err != nil {
			t.Fatalf("logrouter %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(stdout.String()), stderr.String()
	}
	secret, msg := run("tokens", "create", "--namespace", "team-a", "--namespace", "team-b", "--name", "ci", "--ttl", "7d")
	if !strings.HasPrefix(secret, "lrt_") || strings.Contains(secret, "\n") || !strings.Contains(msg, "shown only once") {
		t.Fatalf("create printed %q / %q", secret, msg)
	}
	id := secret[4:20]

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	gw := exec.Command(bin, "gateway", "--listen", addr, "--metrics-addr", "")
	gw.Env = append(os.Environ(), "LOGROUTER_BROKERS="+brokers, "LOGROUTER_AUTH_RECHECK=200ms")
	var gwLog bytes.Buffer
	gw.Stderr = &gwLog
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = gw.Process.Kill()
			_ = gw.Wait()
		}
	}()
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		var p struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p.Code
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// No topic yet: 404 no_logs_yet proves the token was accepted for team-b.
		if st, code := get("/v1/namespaces/team-b/logs"); st == 404 && code == "no_logs_yet" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never accepted the token; log:\n%s", gwLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, code := get("/v1/namespaces/team-c/logs"); st != 403 || code != "forbidden" {
		t.Fatalf("team-c: %d %s", st, code)
	}
	out, _ := run("tokens", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "team-a,team-b") || !strings.Contains(out, "active") {
		t.Fatalf("list:\n%s", out)
	}
	run("tokens", "revoke", id)
	deadline = time.Now().Add(10 * time.Second)
	for {
		if st, code := get("/v1/namespaces/team-b/logs"); st == 401 && code == "token_revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revocation never reached the gateway")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ = run("tokens", "list", "--output", "json")
	var list []struct {
		ID        string `json:"id"`
		RevokedAt string `json:"revoked_at"`
		Hash      string `json:"hash"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ID != id || list[0].RevokedAt == "" || list[0].Hash != "" {
		t.Fatalf("list json %s: %v", out, err)
	}
	// SIGTERM: the gateway drains and exits 0.
	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = gw.Wait()
	stopped = true
	if err != nil {
		t.Fatalf("gateway exit: %v\n%s", err, gwLog.String())
	}
	if !strings.Contains(gwLog.String(), `"msg":"audit"`) || !strings.Contains(gwLog.String(), `"principal":"token:`+id+`"`) {
		t.Fatalf("no audit lines for the token:\n%s", gwLog.String())
	}
}
