package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServeMetricsProbes(t *testing.T) {
	var broken atomic.Bool
	ready := func() error {
		if broken.Load() {
			return errors.New("kafka unreachable for 30s")
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeMetrics(ctx, addr, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), ready)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	get := func(path string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
	}
	for _, tt := range []struct {
		broken   bool
		path     string
		wantCode int
		wantBody string
	}{
		{false, "/healthz", 200, "ok"},
		{false, "/readyz", 200, "ok"},
		{true, "/readyz", 503, "not ready: kafka unreachable for 30s"},
		// Liveness stays about the process: an outside fault never gets the pod killed.
		{true, "/healthz", 200, "ok"},
	} {
		broken.Store(tt.broken)
		code, body := get(tt.path)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("broken=%v GET %s = %d %q, want %d %q", tt.broken, tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}
