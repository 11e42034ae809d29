// Command render writes the plain manifests of deploy/kubernetes/ from the Helm chart
// (deploy/helm/logrouter with deploy/helm/examples/plain.yaml). Run it from the repository root:
//
//	go run ./deploy/render
//
// Every other .yaml file in the directory is removed, so no hand-written copy drifts.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/logrouter/logrouter/deploy/helm"
)

func main() {
	dir := flag.String("dir", "deploy/kubernetes", "directory of the plain manifests")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := helm.PlainManifests()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if _, keep := files[filepath.Base(p)]; !keep {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d manifests to %s: %s\n", len(files), dir, strings.Join(keys(files), ", "))
	return nil
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
