package collectortest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/syncbuf"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of a logrouter binary: $LOGROUTER_BIN when set, else one built once
// per test process from ./cmd/logrouter (without -race: the binary is what ships). The build
// goes to $LOGROUTER_CACHE/bin (default: the user cache dir's logrouter/bin) and replaces the
// previous one atomically, so repeated runs do not pile up binaries; a build whose sources did
// not change since the previous one is not linked again.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LOGROUTER_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() { buildPath, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cache := os.Getenv("LOGROUTER_CACHE")
	if cache == "" {
		if cache, err = os.UserCacheDir(); err != nil {
			cache = os.TempDir()
		}
		cache = filepath.Join(cache, "logrouter")
	}
	dir := filepath.Join(cache, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".logrouter-build-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	final := filepath.Join(dir, "logrouter-integration-test")
	// Start from a copy of the last build: go build leaves a target whose build ID matches the
	// sources alone, so the test processes of one `go test ./...` (and later runs) link once,
	// not once each. A copy, not the file itself: others may be running it.
	if prev, err := os.Open(final); err == nil {
		_, err = io.Copy(f, prev)
		prev.Close()
		if err != nil {
			f.Truncate(0)
		}
	}
	f.Close()
	defer os.Remove(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The flags the image uses (deploy/image/build): the same static binary as ships, and one
	// compilation of the dependencies shared with the image test through the build cache.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", tmp, "./cmd/logrouter")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/logrouter: %v\n%s", err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // an up-to-date copy keeps CreateTemp's mode
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

// Process is a running logrouter subcommand.
type Process struct {
	cmd    *exec.Cmd
	Stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
}

// StartBinary runs bin with args and extra environment (KEY=VALUE); the test's cleanup kills it
// if it still runs. Its stderr (the JSON log) is kept for failure messages.
func StartBinary(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Process{cmd: cmd, Stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stderr, p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL (nothing of the process runs after it: no flush, no last checkpoint) and
// waits until it has ended.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; it returns the exit
// error (nil for status 0).
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("did not exit within " + timeout.String() + " of SIGTERM")
	}
}
