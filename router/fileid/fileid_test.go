package fileid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFingerprintAndMatch(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	os.WriteFile(p, []byte("hello\n"), 0o600)
	f, _ := os.Open(p)
	defer f.Close()
	n, sum, err := Fingerprint(f)
	if err != nil || n != 6 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	// The file grows: its short fingerprint still matches; a full one is computed anew.
	os.WriteFile(p, []byte("hello\n"+strings.Repeat("x", 2000)), 0o600)
	if ok, _ := Matches(f, n, sum); !ok {
		t.Fatal("grown file no longer matches its prefix fingerprint")
	}
	n2, sum2, _ := Fingerprint(f)
	if n2 != FingerprintSize || sum2 == sum {
		t.Fatalf("full fingerprint n=%d", n2)
	}
	// A copy matches, a different file does not, a shorter file does not.
	c := filepath.Join(dir, "b.log")
	b, _ := os.ReadFile(p)
	os.WriteFile(c, b, 0o600)
	cf, _ := os.Open(c)
	defer cf.Close()
	if ok, _ := Matches(cf, n2, sum2); !ok {
		t.Fatal("copy does not match")
	}
	os.WriteFile(c, []byte("hellO\n"), 0o600)
	if ok, _ := Matches(cf, n, sum); ok {
		t.Fatal("different content matches")
	}
	os.WriteFile(c, []byte("hel"), 0o600)
	if ok, _ := Matches(cf, n, sum); ok {
		t.Fatal("shorter file matches")
	}
	fi1, _ := f.Stat()
	fi2, _ := cf.Stat()
	id1, _ := Of(fi1)
	id2, _ := Of(fi2)
	if id1 == id2 || id1.Inode == 0 {
		t.Fatalf("ids %v %v", id1, id2)
	}
}
