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

// TestHead: the head of a fingerprint is the hash of its first MinCopyFingerprint bytes, taken
// only while the file still has the fingerprinted content; a copy being written matches it.
func TestHead(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("0123456789abcdef", 100) // 1,600 bytes
	p := filepath.Join(dir, "a.log")
	os.WriteFile(p, []byte(content), 0o600)
	f, _ := os.Open(p)
	defer f.Close()
	n, sum, _ := Fingerprint(f)
	partial := filepath.Join(dir, "copy")
	for _, tc := range []struct {
		name    string
		n       int
		sum     uint64
		rewrite string // the file's content before Head, if set
		wantOK  bool
	}{
		{name: "full fingerprint", n: n, sum: sum, wantOK: true},
		{name: "shorter than the head", n: MinCopyFingerprint - 1, sum: 0},
		{name: "content changed since the fingerprint", n: n, sum: sum, rewrite: "X" + content[1:]},
		{name: "longer than a fingerprint", n: FingerprintSize + 1, sum: sum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rewrite != "" {
				os.WriteFile(p, []byte(tc.rewrite), 0o600)
				defer os.WriteFile(p, []byte(content), 0o600)
			}
			head, ok, err := Head(f, tc.n, tc.sum)
			if err != nil || ok != tc.wantOK {
				t.Fatalf("Head = %v, %v; want ok %v", ok, err, tc.wantOK)
			}
			if !ok {
				return
			}
			// A copy with only part of the content written matches the head, not the sum.
			os.WriteFile(partial, []byte(content[:100]), 0o600)
			cf, _ := os.Open(partial)
			defer cf.Close()
			if ok, _ := Matches(cf, MinCopyFingerprint, head); !ok {
				t.Error("a partly written copy does not match the head")
			}
			if ok, _ := Matches(cf, tc.n, tc.sum); ok {
				t.Error("a partly written copy matches the whole fingerprint")
			}
			os.WriteFile(partial, []byte("y"+content[1:100]), 0o600)
			if ok, _ := Matches(cf, MinCopyFingerprint, head); ok {
				t.Error("another file matches the head")
			}
		})
	}
}
