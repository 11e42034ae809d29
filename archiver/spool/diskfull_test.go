package spool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReopenAfterDiskFull fills the spool's filesystem (a small tmpfs) so that the flush of
// Reopen fails, frees it, and retries: the retry must succeed and read every frame. With
// bufio.Writer the first error stuck and every retry failed, so a spool disk full for a moment
// stalled its partition's archive until the archiver restarted (found by
// integration/system TestSystemFullDisk).
func TestReopenAfterDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=65536", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	w, err := Create(filepath.Join(dir, "s"), 8192)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	var in []Frame
	for i := range 40 {
		in = append(in, Frame{Offset: int64(i), KafkaTime: time.UnixMilli(int64(i)).UTC(), Value: []byte(fmt.Sprintf("record %d %0100d", i, i))})
		if err := w.Append(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Reopen(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Reopen on a full disk: %v, want ENOSPC", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r, err := w.Reopen()
	if err != nil {
		t.Fatalf("Reopen after the disk was freed: %v", err)
	}
	defer r.Close()
	var fr Frame
	for i := range in {
		if err := r.Next(&fr); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if fr.Offset != in[i].Offset || string(fr.Value) != string(in[i].Value) {
			t.Fatalf("frame %d: %d %q, want %d %q", i, fr.Offset, fr.Value, in[i].Offset, in[i].Value)
		}
	}
	if err := r.Next(&fr); err == nil {
		t.Fatalf("a frame after the last: %+v", fr)
	}
}
