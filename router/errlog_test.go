package router

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestErrLogRateLimited: a burst of the same error logs a few lines; the next line after the
// interval says how many were left out.
func TestErrLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	e := newErrLog(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelError, 20*time.Millisecond)
	for range 100 {
		e.Log("boom")
	}
	if n := strings.Count(buf.String(), "msg=boom"); n != 5 {
		t.Fatalf("%d lines for 100 errors in a burst, want 5:\n%s", n, buf.String())
	}
	suppressed := e.suppressed.Load()
	if suppressed != 95 {
		t.Fatalf("suppressed = %d, want 95", suppressed)
	}
	waitFor(t, 10*time.Second, func() bool { return e.lim.Tokens() >= 1 })
	e.Log("boom")
	if !strings.Contains(buf.String(), "similar_lines_suppressed=95") {
		t.Errorf("the line after the interval does not count what was left out:\n%s", buf.String())
	}
}
