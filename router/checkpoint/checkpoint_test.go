package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logrouter/logrouter/router/assemble"
)

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "ck"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	want := []Entry{
		{Dev: 1, Inode: 2, FingerprintLen: 1024, Fingerprint: 99, Path: "/a", Offset: 10, Updated: time.Unix(5, 0).UTC()},
		{Dev: 1, Inode: 3, Path: "/b", Offset: 7, State: assemble.State{Mid: &assemble.MidState{Stream: 1, TS: "x"}}, Format: "cri", Rotated: true, Size: 4096, Namespace: "shop", Updated: time.Unix(6, 0).UTC()},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Offset != 10 || got[1].State.Mid == nil || got[1].State.Mid.TS != "x" || !got[1].Rotated || !got[0].Updated.Equal(want[0].Updated) ||
		got[1].Size != 4096 || got[1].Namespace != "shop" || got[0].Size != 0 {
		t.Fatalf("round trip: %+v", got)
	}
	// No temp files are left behind.
	files, _ := os.ReadDir(filepath.Join(dir, "ck"))
	if len(files) != 1 {
		t.Fatalf("files left: %v", files)
	}
}

// TestLoadVersion1 reads a file as the collector wrote it before version 2 (no size, no
// namespace): an upgrade resumes every file where it was.
func TestLoadVersion1(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	v1 := `{"version":1,"entries":[{"dev":2049,"inode":77,"fp_len":1024,"fp":123,"path":"/var/log/pods/shop_web-1_u/app/0.log","offset":5000,"state":{},"format":"cri","rotated":true,"updated":"2026-11-30T10:00:00Z"}]}`
	if err := os.WriteFile(s.Path(), []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Inode != 77 || got[0].Offset != 5000 || got[0].Size != 0 || got[0].Namespace != "" || !got[0].Rotated {
		t.Fatalf("version 1 entry: %+v", got)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"truncated":     `{"version":1,"entries":[{"dev":1`,
		"unknown field": `{"version":1,"entries":[],"extra":1}`,
		"other version": `{"version":9,"entries":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := Open(dir)
			os.WriteFile(s.Path(), []byte(content), 0o600)
			if _, err := s.Load(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}
