//go:build !collector

package main

import (
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

// TestChartConfiguresRealFlags: every container the Helm chart renders (with every example
// values file) runs a real subcommand, and every LOGROUTER_<FLAG> variable it sets names a flag
// of that subcommand and parses as its value (parseOnly). A misspelt variable would be ignored
// silently.
func TestChartConfiguresRealFlags(t *testing.T) {
	ch, err := helm.Load()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := helm.Examples()
	if err != nil {
		t.Fatal(err)
	}
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
					env := map[string]string{}
					for _, e := range c.Env {
						env[e.Name] = e.Value
						if e.ValueFrom != nil {
							env[e.Name] = "from-the-cluster" // a Secret's or the downward API's string
						}
						if strings.HasPrefix(e.Name, "LOGROUTER_") {
							checked++
						}
					}
					if err := parseOnly(c.Args, env); err != nil {
						t.Error(err)
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
		if err := parseOnly(strings.Fields(cmd), nil); err != nil {
			t.Error(err)
		}
	}
	if n == 0 {
		t.Fatal("no kubectl exec ... -- /logrouter commands in docs/helm.md")
	}
}
