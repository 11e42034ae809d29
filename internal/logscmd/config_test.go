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

// TestCredentialsAndDefaults: which gateway, namespace and token a run uses, from flags, the
// environment and the config file's contexts; the request the gateway receives shows it.
func TestCredentialsAndDefaults(t *testing.T) {
	type seen struct{ path, auth string }
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{r.URL.Path, r.Header.Get("Authorization")}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"records":[],"next_cursor":"AQ","caught_up":true,"start_cursor":"AQ","start_offsets":[0],"log_start_offsets":[0]}`))
	}))
	defer srv.Close()
	home := t.TempDir()
	writeFile(t, home, ".config/logrouter/ctx.token", "ctx-token\n")
	writeFile(t, home, "flag.token", "  flag-token \n")
	kubeconfig := writeFile(t, home, "kubeconfig", `apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c, user: sa}
- name: certs
  context: {cluster: c, user: cert}
clusters:
- name: c
  cluster: {server: https://127.0.0.1:1}
users:
- name: sa
  user: {token: kube-token}
- name: cert
  user: {client-certificate-data: Zm9v, client-key-data: Zm9v}
`)
	writeFile(t, home, ".config/logrouter/config.yaml", `current-context: shop
contexts:
- name: shop
  gateway: `+srv.URL+`
  namespace: shop
  token-file: ~/.config/logrouter/ctx.token
- name: kube
  gateway: `+srv.URL+`
  namespace: pay
  kubeconfig: `+kubeconfig+`
`)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		want     seen
		exitCode int
		msg      string
	}{
		{"current context", nil, nil, seen{"/v1/namespaces/shop/logs", "Bearer ctx-token"}, 0, ""},
		{"flags win", nil, []string{"-n", "other", "--token-file", "~/flag.token"}, seen{"/v1/namespaces/other/logs", "Bearer flag-token"}, 0, ""},
		{"LOGROUTER_TOKEN over the context's file", map[string]string{"LOGROUTER_TOKEN": "env-token"}, nil, seen{"/v1/namespaces/shop/logs", "Bearer env-token"}, 0, ""},
		{"LOGROUTER_<FLAG>", map[string]string{"LOGROUTER_NAMESPACE": "envns"}, nil, seen{"/v1/namespaces/envns/logs", "Bearer ctx-token"}, 0, ""},
		{"kubeconfig context", nil, []string{"--context", "kube"}, seen{"/v1/namespaces/pay/logs", "Bearer kube-token"}, 0, ""},
		{"kubeconfig flag", nil, []string{"--context", "kube", "--kubeconfig", kubeconfig}, seen{"/v1/namespaces/pay/logs", "Bearer kube-token"}, 0, ""},
		{"kubeconfig with certificates only", nil, []string{"--context", "kube", "--kube-context", "certs"}, seen{}, ExitAuth, "no bearer token"},
		{"$KUBECONFIG", map[string]string{"KUBECONFIG": kubeconfig}, []string{"--config", writeFile(t, home, "empty.yaml", ""), "--gateway", srv.URL, "-n", "x"}, seen{"/v1/namespaces/x/logs", "Bearer kube-token"}, 0, ""},
		{"no context of that name", nil, []string{"--context", "nope"}, seen{}, ExitUsage, `no context "nope" in the config file (contexts: shop, kube)`},
		{"no gateway, no namespace", nil, []string{"--config", filepath.Join(home, "empty.yaml")}, seen{}, ExitUsage, "no gateway"},
		{"since and from", nil, []string{"--since", "2h", "--from", "2026-11-21"}, seen{}, ExitUsage, "give one"},
		{"until with follow", nil, []string{"--until", "2026-11-21", "-f"}, seen{}, ExitUsage, "--until ends the read"},
		{"bad glob", nil, []string{"--pod", "web-["}, seen{}, ExitUsage, "syntax error in pattern"},
		{"bad output", nil, []string{"-o", "yaml"}, seen{}, ExitUsage, "want text, json or raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = seen{}
			env := Env{Home: home, Lookup: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }}
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), tt.args, env, &stdout, &stderr)
			code := 0
			var ee *ExitError
			if errors.As(err, &ee) {
				code = ee.Code
			} else if err != nil {
				code = -1
			}
			if code != tt.exitCode || got != tt.want || tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)) {
				t.Fatalf("exit %d (%v), request %+v; want exit %d (%q), request %+v", code, err, got, tt.exitCode, tt.msg, tt.want)
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
