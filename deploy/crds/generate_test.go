package crds

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGeneratedUpToDate runs this package's go:generate commands with their output in a
// temporary directory and fails when deploy/crds, the deepcopy file or the Helm chart's copy of
// the CRDs differ from what the types in pipeline/api/v1alpha1 generate.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	src, err := os.ReadFile("generate.go")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ran := 0
	for _, line := range strings.Split(string(src), "\n") {
		cmd, ok := strings.CutPrefix(line, "//go:generate ")
		if !ok {
			continue
		}
		args := strings.Fields(cmd)
		if len(args) < 3 || args[0] != "go" || args[1] != "tool" || args[2] != "controller-gen" {
			continue // the copy into the chart is checked below
		}
		// Redirect each generator's output into tmp: crd's explicit dir, object's default (the
		// types' package).
		switch {
		case slices.Contains(args, "output:crd:dir=."):
			args[slices.Index(args, "output:crd:dir=.")] = "output:crd:dir=" + filepath.Join(tmp, "crds")
		case slices.Contains(args, "object"):
			args = append(args, "output:object:dir="+filepath.Join(tmp, "object"))
		default:
			t.Fatalf("go:generate %q: the test does not know where it writes: teach it", cmd)
		}
		c := exec.Command(args[0], args[1:]...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		ran++
	}
	if ran != 2 {
		t.Fatalf("ran %d controller-gen commands, want 2 (object and crd)", ran)
	}
	same(t, filepath.Join(tmp, "object", "zz_generated.deepcopy.go"), "../../pipeline/api/v1alpha1/zz_generated.deepcopy.go")
	gen, err := filepath.Glob(filepath.Join(tmp, "crds", "*.yaml"))
	if err != nil || len(gen) == 0 {
		t.Fatalf("no CRDs generated (%v)", err)
	}
	var names []string
	for _, g := range gen {
		n := filepath.Base(g)
		names = append(names, n)
		same(t, g, n)
		same(t, g, filepath.Join("..", "helm", "logrouter", "files", "crds", n))
	}
	for _, dir := range []string{".", filepath.Join("..", "helm", "logrouter", "files", "crds")} {
		have, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, h := range have {
			if !slices.Contains(names, filepath.Base(h)) {
				t.Errorf("%s is not generated from the types: remove it", h)
			}
		}
	}
	if got := len(Files()); got != len(names) {
		t.Errorf("Files() has %d CRDs, want %d", got, len(names))
	}
}

func same(t *testing.T, generated, committed string) {
	t.Helper()
	want, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s is stale (or missing: %v): run go generate ./deploy/crds", committed, err)
	}
}
