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
		{Dev: 1, Inode: 3, Path: "/b", Offset: 7, State: assemble.State{Mid: &assemble.MidState{Stream: 1, TS: "x"}}, Format: "cri", Rotated: true, Updated: time.Unix(6, 0).UTC()},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Offset != 10 || got[1].State.Mid == nil || got[1].State.Mid.TS != "x" || !got[1].Rotated || !got[0].Updated.Equal(want[0].Updated) {
		t.Fatalf("round trip: %+v", got)
	}
	// No temp files are left behind.
	files, _ := os.ReadDir(filepath.Join(dir, "ck"))
	if len(files) != 1 {
		t.Fatalf("files left: %v", files)
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
