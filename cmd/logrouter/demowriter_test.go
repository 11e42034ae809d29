//go:build !collector

package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/syncbuf"
	"github.com/logrouter/logrouter/router/cri"
	"github.com/logrouter/logrouter/router/logpath"
)

// demo-writer lays out what a collector reads on a node: /var/log/containers symlinks named as
// kubelet names them, pointing at absolute paths of CRI files under /var/log/pods, for every
// namespace and pod asked for. The collector's own parsers read them back.
func TestDemoWriterWritesKubeletLayout(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo-writer", "--dir", dir, "--namespaces", "shop, payments", "--pods-per-namespace", "3", "--rate", "50"}, &stdout, &stderr)
	}()
	const containers, minLines = 6, 3
	deadline := time.After(2 * time.Minute)
	for !demoWritten(t, dir, containers, minLines) {
		select {
		case code := <-done:
			t.Fatalf("demo-writer exited %d:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("not %d containers with %d lines each after 2m:\n%s", containers, minLines, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo-writer exited %d after a signal, want 0:\n%s", code, stderr.String())
	}

	links, _ := filepath.Glob(filepath.Join(dir, "containers", "*.log"))
	perNS := map[string]int{}
	for _, l := range links {
		meta, err := logpath.ParseContainerLink(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		perNS[meta.Namespace]++
		target, err := os.Readlink(l)
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(target) || !strings.HasPrefix(target, filepath.Join(dir, "pods")+"/") {
			t.Errorf("%s points at %q, want an absolute path under %s/pods", l, target, dir)
		}
		if _, err := logpath.ParsePodLog(target); err != nil {
			t.Errorf("%s: %v", target, err)
		}
		b, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if _, err := cri.Parse(sc.Bytes(), nil); err != nil {
				t.Errorf("%s: line %q: %v", target, sc.Text(), err)
			}
		}
	}
	if perNS["shop"] != 3 || perNS["payments"] != 3 || len(perNS) != 2 {
		t.Errorf("containers per namespace %v, want shop and payments with 3 each", perNS)
	}
	if !strings.Contains(stdout.String(), "6 containers in namespaces shop, payments") {
		t.Errorf("start message: %q", stdout.String())
	}
}

// demoWritten reports whether dir holds want container symlinks whose files have at least
// lines complete lines.
func demoWritten(t *testing.T, dir string, want, lines int) bool {
	t.Helper()
	links, _ := filepath.Glob(filepath.Join(dir, "containers", "*.log"))
	if len(links) < want {
		return false
	}
	for _, l := range links {
		b, err := os.ReadFile(l)
		if err != nil || bytes.Count(b, []byte("\n")) < lines {
			return false
		}
	}
	return true
}

func TestDemoWriterRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--namespaces", " , "}, "at least one namespace"},
		{[]string{"--rate", "0"}, "--rate 0"},
		{[]string{"--pods-per-namespace", "0"}, "--pods-per-namespace 0"},
		{[]string{"--keep-rotated", "-1"}, "must not be negative"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"demo-writer", "--dir", t.TempDir()}, tc.args...)
			if code := run(context.Background(), args, &stdout, &stderr); code == 0 {
				t.Fatalf("exit 0 for %q", tc.args)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}
