//go:build !collector

package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/logrouter/logrouter/deploy/helm"
)

var workloadKind = regexp.MustCompile(`(?m)^kind: (DaemonSet|Deployment)$`)

var usageFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// TestChartConfiguresRealFlags: every container the Helm chart renders (with every example
// values file) runs a real subcommand, and every LOGROUTER_<FLAG> variable it sets names a flag
// of that subcommand and parses as its value. A misspelt variable would be ignored silently.
func TestChartConfiguresRealFlags(t *testing.T) {
	ch, err := helm.Load()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := helm.Examples()
	if err != nil {
		t.Fatal(err)
	}
	flagsOf := map[string]map[string]bool{}
	checked := 0
	for _, ex := range examples {
		out, err := helm.Render(ch, ex.Values, helm.Release{Name: "logrouter", Namespace: "logrouter"})
		if err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		for _, d := range helm.Documents(out) {
			if !workloadKind.MatchString(d.YAML) {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(d.YAML), nil, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", ex.Name, d.Template, err)
			}
			var pod *corev1.PodSpec
			switch o := obj.(type) {
			case *appsv1.DaemonSet:
				pod = &o.Spec.Template.Spec
			case *appsv1.Deployment:
				pod = &o.Spec.Template.Spec
			default:
				continue
			}
			for _, c := range pod.Containers {
				t.Run(ex.Name+"/"+c.Name, func(t *testing.T) {
					if len(c.Args) == 0 {
						t.Fatal("no subcommand in args")
					}
					cmd := c.Args[0]
					if _, ok := commands[cmd]; !ok {
						t.Fatalf("args %q: no command %q", c.Args, cmd)
					}
					if flagsOf[cmd] == nil {
						var stdout, stderr bytes.Buffer
						run(context.Background(), []string{cmd, "-h"}, &stdout, &stderr)
						flagsOf[cmd] = map[string]bool{}
						for _, m := range usageFlag.FindAllStringSubmatch(stderr.String()+stdout.String(), -1) {
							flagsOf[cmd][m[1]] = true
						}
						if len(flagsOf[cmd]) < 5 {
							t.Fatalf("%s -h listed only %v", cmd, flagsOf[cmd])
						}
					}
					args := append([]string{cmd}, c.Args[1:]...)
					for _, e := range c.Env {
						if !strings.HasPrefix(e.Name, "LOGROUTER_") {
							continue
						}
						name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.Name, "LOGROUTER_")), "_", "-")
						if !flagsOf[cmd][name] {
							t.Errorf("%s sets %s, but %s has no --%s", c.Name, e.Name, cmd, name)
							continue
						}
						v := e.Value
						if e.ValueFrom != nil {
							v = "from-the-cluster" // a Secret's or the downward API's string
						}
						args = append(args, "--"+name+"="+v)
						checked++
					}
					// Every value parses as its flag: -h after them prints usage and exits 0
					// only when all flags before it were accepted.
					var stdout, stderr bytes.Buffer
					if code := run(context.Background(), append(args, "-h"), &stdout, &stderr); code != 0 {
						t.Errorf("logrouter %q: exit %d\n%s", args, code, stderr.String())
					}
				})
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked only %d settings", checked)
	}
}

// TestDocumentedExecCommandsParse: the logrouter commands docs/helm.md runs in pods
// (kubectl exec ... -- /logrouter ...) are real commands with real flags.
func TestDocumentedExecCommandsParse(t *testing.T) {
	b, err := os.ReadFile("../../docs/helm.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		_, cmd, ok := strings.Cut(line, " -- /logrouter ")
		if !ok {
			continue
		}
		n++
		args := append(strings.Fields(cmd), "-h")
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("logrouter %q: exit %d\n%s", args, code, stderr.String())
		}
	}
	if n == 0 {
		t.Fatal("no kubectl exec ... -- /logrouter commands in docs/helm.md")
	}
}
