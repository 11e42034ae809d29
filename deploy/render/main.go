// Command render writes what is derived from other files under deploy/: the chart's copies of
// the CRDs and of deploy/monitoring (Helm packages only the chart's directory), then the plain
// manifests of deploy/kubernetes/ from the chart (deploy/helm/logrouter with
// deploy/helm/examples/plain.yaml). Run it from the repository root:
//
//	go run ./deploy/render
//
// go generate ./deploy/crds runs it too. Every other file in those directories is removed, so
// no hand-written copy drifts.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/logrouter/logrouter/deploy/helm"
)

func main() {
	root := flag.String("root", ".", "the repository's root directory")
	dir := flag.String("dir", "deploy/kubernetes", "directory of the plain manifests, under -root")
	flag.Parse()
	if err := run(*root, filepath.Join(*root, *dir)); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(root, dir string) error {
	copies, err := helm.Copies(root)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for dst, src := range copies {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			return err
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		keep[p] = true
	}
	for _, d := range helm.CopyDirs {
		if err := prune(filepath.Join(root, helm.ChartDir, d), "*", keep); err != nil {
			return err
		}
	}
	// The chart as it is on disk now (the embedded one predates the copies).
	ch, err := loader.LoadDir(filepath.Join(root, helm.ChartDir))
	if err != nil {
		return err
	}
	files, err := helm.PlainManifestsOf(ch)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep = map[string]bool{}
	for name := range files {
		keep[filepath.Join(dir, name)] = true
	}
	if err := prune(dir, "*.yaml", keep); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d chart copies and %d manifests to %s: %s\n", len(copies), len(files), dir, strings.Join(keys(files), ", "))
	return nil
}

// prune removes the files of dir matching pattern that keep does not name.
func prune(dir, pattern string, keep map[string]bool) error {
	old, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return err
	}
	for _, p := range old {
		if !keep[p] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
