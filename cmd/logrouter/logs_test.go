//go:build !collector

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestLogsCommandExitCodes: the binary's exit code is the one `logrouter logs` gives its error
// (usage 2, no credentials 3), and -h is not an error.
func TestLogsCommandExitCodes(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", "")
	t.Setenv("LOGROUTER_TOKEN", "")
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"logs", "-h"}, 0, "usage: logrouter logs -n NS"},
		{[]string{"logs", "-n", "shop", "--gateway", "http://127.0.0.1:1", "-o", "yaml"}, 2, "logrouter logs: -o: output \"yaml\""},
		{[]string{"logs", "-n", "shop"}, 2, "no gateway"},
		{[]string{"logs", "-n", "shop", "--gateway", "http://127.0.0.1:1"}, 3, "logrouter logs: no credentials"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}
