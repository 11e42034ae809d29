//go:build !collector

package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the command writing and the test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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

func devArgs(t *testing.T, kafka, gateway string) []string {
	return []string{"dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--gateway-addr", gateway,
		"--metrics-addr", "127.0.0.1:0", "--namespaces", "shop,payments", "--rate", "5"}
}

func TestDevStopsCleanlyOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, devArgs(t, freeAddr(t), freeAddr(t)), &stdout, &stderr) }()
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
	var stdout, stderr syncBuffer
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
