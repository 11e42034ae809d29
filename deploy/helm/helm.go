// Package helm renders the logrouter chart (deploy/helm/logrouter) through Helm's Go SDK, as
// `helm template` does: for the plain manifests in deploy/kubernetes/ (go run ./deploy/render)
// and for the tests that check what ships.
package helm

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// The chart and its example values, embedded so that rendering does not depend on the working
// directory. all: keeps _helpers.tpl.
//
//go:embed all:logrouter examples
var files embed.FS

// ChartName is the chart's directory and name.
const ChartName = "logrouter"

// Release names a release, as `helm template NAME --namespace NS` does.
type Release struct {
	Name      string
	Namespace string
	// Service fills .Release.Service (the app.kubernetes.io/managed-by label): "Helm" unless set.
	Service string
}

// Load returns the embedded chart.
func Load() (*chart.Chart, error) {
	var bf []*loader.BufferedFile
	err := fs.WalkDir(files, ChartName, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		bf = append(bf, &loader.BufferedFile{Name: strings.TrimPrefix(p, ChartName+"/"), Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(bf)
}

// Render renders ch with vals over the chart's defaults, validating them against
// values.schema.json first, and returns each template's output by template path
// (templates/collector.yaml). Templates that render nothing, and NOTES.txt, are left out.
// Rendering is strict: a template that reads a value missing from values.yaml fails.
func Render(ch *chart.Chart, vals map[string]any, rel Release) (map[string]string, error) {
	opts := chartutil.ReleaseOptions{Name: rel.Name, Namespace: rel.Namespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	if rel.Service != "" {
		top["Release"].(map[string]any)["Service"] = rel.Service
	}
	out, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	res := map[string]string{}
	for name, text := range out {
		name = strings.TrimPrefix(name, ch.Name()+"/")
		if path.Base(name) == "NOTES.txt" || strings.TrimSpace(text) == "" {
			continue
		}
		res[name] = text
	}
	return res, nil
}

// Documents splits rendered templates into their YAML documents, in template order, dropping
// empty ones (a document that is only comments is empty).
func Documents(rendered map[string]string) []Document {
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs []Document
	for _, n := range names {
		for _, d := range splitDocuments(rendered[n]) {
			docs = append(docs, Document{Template: n, YAML: d})
		}
	}
	return docs
}

// Document is one rendered Kubernetes object.
type Document struct {
	Template string
	YAML     string
}

func splitDocuments(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		if !hasContent(d) {
			continue
		}
		docs = append(docs, strings.Trim(d, "\n")+"\n")
	}
	return docs
}

func hasContent(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// Example is a values file of deploy/helm/examples.
type Example struct {
	Name   string // file name
	Values map[string]any
}

// Examples returns the example values files, parsed as `helm -f` does.
func Examples() ([]Example, error) {
	ents, err := files.ReadDir("examples")
	if err != nil {
		return nil, err
	}
	var ex []Example
	for _, e := range ents {
		b, err := files.ReadFile("examples/" + e.Name())
		if err != nil {
			return nil, err
		}
		v, err := chartutil.ReadValues(b)
		if err != nil {
			return nil, fmt.Errorf("examples/%s: %w", e.Name(), err)
		}
		ex = append(ex, Example{Name: e.Name(), Values: v})
	}
	return ex, nil
}

// Plain are the values and release of the plain manifests.
const plainValues = "plain.yaml"

var plainRelease = Release{Name: "logrouter", Namespace: "logrouter", Service: "kubectl"}

// PlainManifests renders the plain manifests from the embedded chart: one file per template
// (collector.yaml, collector-rbac.yaml, ...), from examples/plain.yaml.
func PlainManifests() (map[string][]byte, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	return PlainManifestsOf(ch)
}

// PlainManifestsOf renders the plain manifests of ch (go run ./deploy/render loads the chart
// from disk, after updating its copies).
func PlainManifestsOf(ch *chart.Chart) (map[string][]byte, error) {
	b, err := files.ReadFile("examples/" + plainValues)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ReadValues(b)
	if err != nil {
		return nil, err
	}
	rendered, err := Render(ch, vals, plainRelease)
	if err != nil {
		return nil, err
	}
	byFile := map[string][]string{}
	for _, d := range Documents(rendered) {
		f := path.Base(d.Template)
		byFile[f] = append(byFile[f], d.YAML)
	}
	out := map[string][]byte{}
	for f, docs := range byFile {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "# Generated from the Helm chart deploy/helm/logrouter (templates/%s) with\n"+
			"# deploy/helm/examples/%s, release %q in namespace %q, by `go run ./deploy/render`.\n"+
			"# Do not edit: change the chart and re-render (a test fails when this file is stale).\n",
			f, plainValues, plainRelease.Name, plainRelease.Namespace)
		for i, d := range docs {
			if i > 0 {
				buf.WriteString("---\n")
			}
			buf.WriteString(d)
		}
		out[f] = buf.Bytes()
	}
	return out, nil
}

// ChartDir is the chart's directory, relative to the repository root.
const ChartDir = "deploy/helm/" + ChartName

// Copies returns the files the chart carries copies of (Helm packages only what is inside the
// chart's directory), as chart path -> repository path, both relative to the repository root:
// the CRDs of deploy/crds and deploy/monitoring's alerts and dashboard. The chart's files/crds
// and files/monitoring hold nothing else. go run ./deploy/render writes them; a test fails
// when they differ.
func Copies(root string) (map[string]string, error) {
	crds, err := filepath.Glob(filepath.Join(root, "deploy", "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", filepath.Join(root, "deploy", "crds"))
	}
	out := map[string]string{}
	for _, c := range crds {
		n := filepath.Base(c)
		out[path.Join(ChartDir, CopyDirs[0], n)] = path.Join("deploy/crds", n)
	}
	for _, n := range []string{"alerts.yaml", "dashboard.json"} {
		out[path.Join(ChartDir, CopyDirs[1], n)] = path.Join("deploy/monitoring", n)
	}
	return out, nil
}

// CopyDirs are the chart directories that hold only copies.
var CopyDirs = []string{"files/crds", "files/monitoring"}
