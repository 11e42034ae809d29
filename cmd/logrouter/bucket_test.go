//go:build !collector

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/syncbuf"
)

// TestCommandsRefuseUnsafeBuckets: every command that takes --bucket refuses, before it runs,
// a bucket that keeps nothing (mem://, unknown schemes) or a file:// URL whose host gocloud
// would drop, with an error that says what to write.
func TestCommandsRefuseUnsafeBuckets(t *testing.T) {
	for _, tt := range []struct{ bucket, want string }{
		{"mem://", "s3, gs, azblob, file"},
		{"bogus://x", "s3, gs, azblob, file"},
		{"file://host" + t.TempDir(), "file:///abs/path"},
		{"file://name", "file:///abs/path"},
		{"file:relative", "file:///abs/path"},
	} {
		for _, cmd := range []string{"archive", "gateway", "query"} {
			args := []string{cmd, "--bucket", tt.bucket, "--brokers", "127.0.0.1:1", "--metrics-addr", ""}
			switch cmd {
			case "archive":
				args = append(args, "--spool-dir", t.TempDir())
			case "gateway":
				args = append(args, "--listen", "127.0.0.1:0")
			case "query":
				args = []string{cmd, "--bucket", tt.bucket, "--namespace", "shop"}
			}
			// A command that accepted the bucket would run until the context ends and exit 0.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var stdout, stderr syncbuf.Buffer
			code := run(ctx, args, &stdout, &stderr)
			cancel()
			if code == 0 || !strings.Contains(stderr.String(), "--bucket") || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("%s --bucket %s: exit %d, stderr %q; want an error naming %q", cmd, tt.bucket, code, stderr.String(), tt.want)
			}
		}
	}
}
