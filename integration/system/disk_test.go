package system

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

// mountTmpfs mounts a tmpfs of size bytes at dir (created), unmounted at the end of the test;
// it skips the test when mounting is not permitted.
func mountTmpfs(t *testing.T, dir string, size int64) {
	if err := tryMountTmpfs(t, dir, size); err != nil {
		t.Skipf("cannot mount a tmpfs for the full-disk scenario (needs root or CAP_SYS_ADMIN): %v", err)
	}
}

// tryMountTmpfs mounts a tmpfs of size bytes at dir (created), unmounted at the end of the
// test, or says why it cannot.
func tryMountTmpfs(t *testing.T, dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return nil
}

// fill writes a file into dir until the filesystem is full and returns its path.
func fill(t *testing.T, dir string) string {
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return p
		}
	}
}

// TestSystemFullDisk fills the collector's checkpoint directory and the archiver's spool (each a
// small tmpfs) under load, holds them full, then frees them. Nothing may be lost, every line is
// archived exactly once, and no component exits.
func TestSystemFullDisk(t *testing.T) {
	sc := scaleOf(t)
	var ck, spool string
	s := newSystem(t, namespaces, perNS, prepare(func(dir string) {
		ck, spool = filepath.Join(dir, "checkpoints"), filepath.Join(dir, "spool")
		mountTmpfs(t, ck, 1<<20)
		mountTmpfs(t, spool, 64<<20)
	}))
	stop := s.runWorkload(sc.Rate, 3*time.Second)
	phase := max(5*time.Second, sc.Duration/4)
	time.Sleep(phase / 2)
	fillers := []string{fill(t, ck), fill(t, spool)}
	time.Sleep(phase)
	s.checkAlive()
	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(phase / 2)
	stop()
	rep := s.account("full-disk", fmt.Sprintf("checkpoint dir (1 MiB tmpfs) and spool (64 MiB tmpfs) full for %s under load", phase))
	if !rep.complete() {
		t.Errorf("a full disk must cost no line: %s", rep)
	}
	s.stopAll()
}
