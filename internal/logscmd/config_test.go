package logscmd

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name, yaml string
		errs       []string // each must appear; none: valid
	}{
		{"valid", "current-context: a\ncontexts:\n- name: a\n  gateway: https://logs.example.com\n  namespace: shop\n  token-file: ~/t\n- name: b\n  kubeconfig: ~/.kube/config\n  kube-context: prod\n", nil},
		{"empty", "", nil},
		{"unknown field", "contexts:\n- name: a\n  gatway: https://x\n", []string{`unknown field "gatway"`}},
		{"unknown top-level field", "current_context: a\n", []string{`unknown field "current_context"`}},
		{"duplicate and nameless", "contexts:\n- name: a\n- name: a\n- gateway: https://x\n", []string{`contexts[1]: duplicate name "a"`, "contexts[2]: name is required"}},
		{"bad gateway and two identities", "contexts:\n- name: a\n  gateway: logs.example.com\n  token-file: t\n  kubeconfig: k\n", []string{`gateway "logs.example.com" is not an http(s) URL`, "token-file and kubeconfig"}},
		{"current context missing", "current-context: nope\ncontexts:\n- name: a\n", []string{`current-context "nope" names no context`}},
		{"not yaml", "contexts: [\n", []string{"config file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "config.yaml", tt.yaml)
			_, err := LoadFile(p, false)
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), true); err != nil {
		t.Fatalf("missing default file: %v", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), false); err == nil {
		t.Fatal("missing explicit file: no error")
	}
}

// TestUsageErrors: problems found before any request (flags, the config file's contexts, a
// kubeconfig without a bearer token) end the command with their exit code and what to fix.
// Which credential and defaults a run uses is tested against the real gateway
// (integration.TestLogsKubeconfigIdentity).
func TestUsageErrors(t *testing.T) {
	home := t.TempDir()
	kubeconfig := writeFile(t, home, "kubeconfig", `apiVersion: v1
kind: Config
current-context: certs
contexts:
- name: certs
  context: {cluster: c, user: cert}
clusters:
- name: c
  cluster: {server: https://127.0.0.1:1}
users:
- name: cert
  user: {client-certificate-data: Zm9v, client-key-data: Zm9v}
`)
	writeFile(t, home, ".config/logrouter/config.yaml", `current-context: shop
contexts:
- name: shop
  gateway: http://127.0.0.1:1
  namespace: shop
  kubeconfig: `+kubeconfig+`
- name: kube
  gateway: http://127.0.0.1:1
`)
	empty := writeFile(t, home, "empty.yaml", "")
	tests := []struct {
		name     string
		args     []string
		exitCode int
		msg      string
	}{
		{"kubeconfig with certificates only", nil, ExitAuth, "no bearer token"},
		{"no context of that name", []string{"--context", "nope"}, ExitUsage, `no context "nope" in the config file (contexts: shop, kube)`},
		{"no gateway, no namespace", []string{"--config", empty}, ExitUsage, "no gateway"},
		{"no namespace in the context", []string{"--context", "kube"}, ExitUsage, "no namespace: pass -n NS"},
		{"since and from", []string{"--since", "2h", "--from", "2026-11-21"}, ExitUsage, "give one"},
		{"until with follow", []string{"--until", "2026-11-21", "-f"}, ExitUsage, "--until ends the read"},
		{"until before from", []string{"--from", "2026-11-22", "--until", "2026-11-21"}, ExitUsage, "--until must be after the start"},
		{"bad time", []string{"--from", "yesterday"}, ExitUsage, `--from "yesterday": want an RFC 3339 time`},
		{"bad glob", []string{"--pod", "web-["}, ExitUsage, "syntax error in pattern"},
		{"bad output", []string{"-o", "yaml"}, ExitUsage, "want text, json or raw"},
		{"bad colour", []string{"--color", "sometimes"}, ExitUsage, "want auto, always or never"},
		{"bad gateway URL", []string{"--gateway", "logs.example.com"}, ExitUsage, "want http(s)://host[:port]"},
		{"unknown flag", []string{"--tail", "5"}, ExitUsage, "flag provided but not defined: -tail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env{Home: home, Lookup: func(string) (string, bool) { return "", false }}
			err := Run(context.Background(), tt.args, env, new(bytes.Buffer), new(bytes.Buffer))
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != tt.exitCode || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v; want exit %d and %q", err, tt.exitCode, tt.msg)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]string{"2h": "2h0m0s", "30m": "30m0s", "7d": "168h0m0s", "1d12h": "36h0m0s"} {
		d, err := parseSince(in)
		if err != nil || d.String() != want {
			t.Errorf("parseSince(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "-2h", "0s", "d", "xd", "2dd"} {
		if _, err := parseSince(in); err == nil {
			t.Errorf("parseSince(%q): no error", in)
		}
	}
}

// TestNotAGateway: a URL that answers, but not as the gateway does, fails at once with what to
// check, instead of being retried for --retry-for.
func TestNotAGateway(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>welcome</html>"))
	}))
	defer srv.Close()
	env := Env{Home: t.TempDir(), Lookup: func(k string) (string, bool) {
		return map[string]string{"LOGROUTER_TOKEN": "t"}[k], k == "LOGROUTER_TOKEN"
	}}
	err := Run(context.Background(), []string{"-n", "shop", "--gateway", srv.URL, "--retry-for", "1h"}, env, new(bytes.Buffer), new(bytes.Buffer))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "is --gateway a logrouter gateway?") {
		t.Fatalf("got %v", err)
	}
}

func TestExitErrorNeutralised(t *testing.T) {
	err := &ExitError{Code: 1, Err: errors.New("gateway said \x1b]0;owned\x07")}
	if got := err.Error(); got != `gateway said \x1b]0;owned\x07` {
		t.Fatalf("%q", got)
	}
}
