package collectortest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuildOverPrevious: a build that starts from the previous one (which go build leaves as
// it is when the sources did not change) is an executable logrouter, like a fresh one.
func TestBuildOverPrevious(t *testing.T) {
	for i, what := range []string{"first build of this process", "build over the previous one"} {
		p, err := build()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("%s %d: %s: %v, mode %v", what, i, p, err, st.Mode())
		}
		out, err := exec.Command(p, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "collect") {
			t.Fatalf("%s: %s --help: %v\n%s", what, p, err, out)
		}
	}
}
