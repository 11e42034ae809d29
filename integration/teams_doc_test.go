package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/integration/kubeapiserver"
	"github.com/logrouter/logrouter/internal/logscmd"
	"github.com/logrouter/logrouter/internal/syncbuf"
)

// teamsDocURL is the gateway URL docs/teams.md uses; the test points it at its gateway.
const teamsDocURL = "https://logs.example.com"

type teamsBlock struct {
	lang, marker string
	line         int
	text         string
}

var teamsMarker = regexp.MustCompile(`^<!-- (file: \S+|output|follow) -->$`)

func teamsBlocks(t *testing.T, doc string) []teamsBlock {
	t.Helper()
	lines := strings.Split(doc, "\n")
	var out []teamsBlock
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := teamsBlock{lang: strings.TrimPrefix(lines[i], "```"), line: i + 1}
		if i > 0 {
			if m := teamsMarker.FindStringSubmatch(lines[i-1]); m != nil {
				b.marker = m[1]
			}
		}
		j := i + 1
		for ; j < len(lines) && lines[j] != "```"; j++ {
		}
		if j == len(lines) {
			t.Fatalf("docs/teams.md:%d: unterminated block", i+1)
		}
		b.text = strings.Join(lines[i+1:j], "\n") + "\n"
		out = append(out, b)
		i = j
	}
	return out
}

// TestTeamsDoc runs every example of docs/teams.md, in order, as a team would: shell blocks
// with bash (the logrouter binary, kubectl, curl and jq on PATH) against a gateway with
// --kube-auth over a real kube-apiserver, kfake and an archive written by the real archiver;
// yaml blocks are the files they name; an output block must be exactly what the shell block
// before it printed; follow blocks must print and then stop on Ctrl-C. The namespace's records
// of 2026-11-21 are deleted from Kafka by retention first, so the examples of that day read
// the archive.
func TestTeamsDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the logrouter binary and starts a kube-apiserver")
	}
	for _, tool := range []string{"bash", "kubectl", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	raw, err := os.ReadFile("../docs/teams.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := teamsBlocks(t, string(raw))
	bin := collectortest.Binary(t)

	srv, gwClient := kubeForGateway(t, kubeapiserver.Options{}, "shop")
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bucketURL, bkt := archiveBucket(t)
	e := startGateway(t, 1, func(c *api.Config, o *[]api.Option) {
		c.KubeAuth = true
		*o = append(*o, api.WithKubeClient(gwClient), api.WithBucket(bkt))
	})
	threeDays := "259200000"
	if _, err := kadm.NewClient(e.kcl).CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &threeDays}, "logs.shop"); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	now := time.Now().Add(-time.Minute)
	fixture := []archivetest.Line{
		{Pod: "checkout-7d9f-x2k4p", Container: "app", Time: day, Message: "order 1042 accepted"},
		{Pod: "web-5c8d-9qz7t", Container: "nginx", Time: day.Add(1250 * time.Millisecond), Message: "GET /cart 200 12ms"},
		{Pod: "checkout-7d9f-x2k4p", Container: "app", Time: day.Add(2500 * time.Millisecond), Message: "payment timeout after 3s\nretrying order 1042"},
		{Pod: "web-5c8d-9qz7t", Container: "nginx", Time: day.Add(3750 * time.Millisecond), Message: "GET /checkout 502 3004ms"},
		{Pod: "checkout-7d9f-x2k4p", Container: "app", Time: day.Add(5 * time.Second), Message: "error: \x1b]0;gotcha\x07 card declined"},
		{Pod: "checkout-7d9f-x2k4p", Container: "app", Time: now, Message: "order 2001 accepted"},
		{Pod: "web-5c8d-9qz7t", Container: "nginx", Time: now.Add(time.Second), Message: "GET / 200 3ms"},
		{Pod: "checkout-7d9f-x2k4p", Container: "app", Time: now.Add(2 * time.Second), Message: "error: timeout talking to payments"},
	}
	stderrLines := map[int]bool{2: true, 4: true, 7: true}
	want := map[archivetest.Pos]int64{}
	for i, l := range fixture {
		l.Namespace, l.KafkaTime = "shop", l.Time
		r := archivetest.Record(l)
		if stderrLines[i] {
			r.Value = bytes.Replace(r.Value, []byte(`"stream":"stdout"`), []byte(`"stream":"stderr"`), 1)
		}
		// One record per batch: retention deletes whole batches.
		if err := e.kcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		want[archivetest.Pos{Topic: r.Topic}] = r.Offset + 1
	}
	archiveUntil(t, e.cluster.ListenAddrs(), bucketURL, "", "", bkt, want)
	e.cluster.ApplyRetention()
	if st, err := kadm.NewClient(e.kcl).ListStartOffsets(ctx, "logs.shop"); err != nil || st["logs.shop"][0].Offset != 5 {
		t.Fatalf("retention should have deleted the 5 records of 2026-11-21: %v %v", st, err)
	}

	if err := os.WriteFile(filepath.Join(home, "admin.kubeconfig"), mustRead(t, srv.WriteKubeconfig(t, srv.Token(kubeapiserver.AdminUser))), 0o600); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(home, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(binDir, "logrouter")); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"KUBECONFIG=" + filepath.Join(home, "admin.kubeconfig"), "LOGROUTER_BROKERS=" + strings.Join(e.cluster.ListenAddrs(), ","),
		"TERM=dumb"}
	subst := func(s string) string { return strings.ReplaceAll(s, teamsDocURL, e.base) }

	var lastOut string
	ran := 0
	for _, b := range blocks {
		where := fmt.Sprintf("docs/teams.md:%d", b.line)
		switch {
		case b.lang == "" && strings.HasPrefix(b.text, "logrouter logs "):
			// The synopsis is the command's own.
			if want := strings.TrimPrefix(logscmd.Usage, "usage: ") + "\n"; b.text != want {
				t.Errorf("%s: synopsis %q, the command says %q", where, b.text, want)
			}
		case b.lang == "yaml" && strings.HasPrefix(b.marker, "file: "):
			name := strings.TrimPrefix(b.marker, "file: ")
			p := filepath.Join(home, strings.TrimPrefix(name, "~/"))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(subst(b.text)), 0o600); err != nil {
				t.Fatal(err)
			}
		case b.lang == "sh" && b.marker == "follow":
			runFollowBlock(t, where, subst(b.text), home, env)
			ran++
		case b.lang == "sh" && b.marker == "":
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", subst(b.text))
			cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = home, env, &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s\nstdout:\n%s\nstderr:\n%s", where, err, b.text, stdout.String(), stderr.String())
			}
			if strings.TrimSpace(stdout.String()) == "" && !strings.Contains(b.text, ">") {
				t.Fatalf("%s printed nothing:\n%s\nstderr:\n%s", where, b.text, stderr.String())
			}
			lastOut = stdout.String()
			ran++
			// A token created by the block must be known to the gateway before the next block
			// uses it (the token store is eventually consistent).
			if tok, err := os.ReadFile(filepath.Join(home, "shop.token")); err == nil {
				e.waitToken(strings.TrimSpace(string(tok)))
			}
		case b.lang == "text" && b.marker == "output":
			if lastOut != b.text {
				t.Errorf("%s: the command before printed\n%s\nthe doc shows\n%s", where, lastOut, b.text)
			}
		default:
			t.Fatalf("%s: block %q with marker %q: the test does not know how to run it", where, b.lang, b.marker)
		}
	}
	if ran < 8 {
		t.Fatalf("only %d shell blocks ran", ran)
	}
	// The raw output of the day, byte for byte: the escape sequence is kept in a file.
	got := string(mustRead(t, filepath.Join(home, "shop-2026-11-21.log")))
	if !strings.Contains(got, "error: \x1b]0;gotcha\x07 card declined\n") || strings.Count(got, "\n") != 6 {
		t.Errorf("raw output of 2026-11-21: %q", got)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runFollowBlock runs a command that follows until interrupted: it must print a line, then
// stop on SIGINT (exit 0, or killed by the signal for tools such as curl).
func runFollowBlock(t *testing.T, where, script, dir string, env []string) {
	t.Helper()
	var stdout, stderr syncbuf.Buffer
	cmd := exec.Command("bash", "-c", "exec "+strings.TrimSpace(script))
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		select {
		case err := <-done:
			t.Fatalf("%s ended before printing (%v):\n%s\nstderr:\n%s", where, err, script, stderr.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("%s printed nothing in 30s:\n%s\nstderr:\n%s", where, script, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
			t.Fatalf("%s: after Ctrl-C: %v\nstderr:\n%s", where, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s did not stop on Ctrl-C", where)
	}
}
