package hostile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCorpusCheckedIn: testdata/ is exactly what the generator writes (run
// `go run ./integration/hostile/gen -out integration/hostile/testdata` after changing a case).
func TestCorpusCheckedIn(t *testing.T) {
	want, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		seen[e.Name()] = true
		w, ok := want[e.Name()]
		if !ok {
			t.Errorf("testdata/%s: not made by the generator", e.Name())
			continue
		}
		got, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("testdata/%s differs from what the generator makes (%d bytes, want %d): run go run ./integration/hostile/gen", e.Name(), len(got), len(w))
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("testdata/%s is missing: run go run ./integration/hostile/gen", name)
		}
	}
}

// TestCasesDeterministic: two generations are identical (no time, randomness or map order).
func TestCasesDeterministic(t *testing.T) {
	a, b := Cases(), Cases()
	if len(a) != len(b) {
		t.Fatalf("%d cases, then %d", len(a), len(b))
	}
	names := map[string]bool{}
	for i := range a {
		if names[a[i].Name] {
			t.Errorf("case %s twice", a[i].Name)
		}
		names[a[i].Name] = true
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) || len(a[i].Want) != len(b[i].Want) {
			t.Errorf("case %d (%s) differs between two generations", i, a[i].Name)
		}
		if len(a[i].Want) == 0 {
			t.Errorf("case %s expects no line", a[i].Name)
		}
	}
}
