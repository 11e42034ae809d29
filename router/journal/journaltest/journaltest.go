// Package journaltest writes real journal files for tests, with Debian's systemd-journal-remote
// (the journal export format on stdin becomes a journal file), and rotates and vacuums them the
// way journald does: the active file is renamed to an archive and marked archived, and a new
// active file continues the same sequence-number ID. .ci/provision-journal.sh installs the tool.
package journaltest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RemoteBin is systemd-journal-remote's path on Debian.
const RemoteBin = "/lib/systemd/systemd-journal-remote"

// Skip skips t when systemd-journal-remote or journalctl is missing.
func Skip(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(RemoteBin); err != nil {
		t.Skipf("%s missing (Debian package systemd-journal-remote; run .ci/provision-journal.sh): %v", RemoteBin, err)
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skipf("journalctl missing (Debian package systemd; run .ci/provision-journal.sh): %v", err)
	}
}

// Entry is one entry to write: Fields in export format order (KEY, value); values may hold any
// bytes (binary ones are written in the export format's binary form).
type Entry struct {
	Realtime uint64 // microseconds
	BootID   string // 32 hex digits
	Fields   [][2]string
}

// AppendExport appends e in the journal export format.
func AppendExport(b []byte, e Entry) []byte {
	b = fmt.Appendf(b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n", e.Realtime, e.Realtime, e.BootID)
	for _, f := range e.Fields {
		if strings.ContainsAny(f[1], "\n") || !isText(f[1]) {
			b = append(b, f[0]...)
			b = append(b, '\n')
			b = binary.LittleEndian.AppendUint64(b, uint64(len(f[1])))
			b = append(b, f[1]...)
			b = append(b, '\n')
			continue
		}
		b = append(b, f[0]...)
		b = append(b, '=')
		b = append(b, f[1]...)
		b = append(b, '\n')
	}
	return append(b, '\n')
}

func isText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' {
			return false
		}
	}
	return true
}

// Journal is a directory with an active file, system.journal, and its archives.
type Journal struct {
	Dir string
	mu  sync.Mutex
	n   int // archives made
}

// Active is the active file's path.
func (j *Journal) Active() string { return filepath.Join(j.Dir, "system.journal") }

// Append writes entries to the active file (creating it): journald numbers them in order.
func (j *Journal) Append(entries []Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.write(entries)
}

func (j *Journal) write(entries []Entry) error {
	var in []byte
	for _, e := range entries {
		in = AppendExport(in, e)
	}
	cmd := exec.Command(RemoteBin, "-o", j.Active(), "-")
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", RemoteBin, err, out)
	}
	return nil
}

// Rotate archives the active file as journald does (renamed to system@<seqnum id>-<head
// seqnum>-<head realtime>.journal, state archived) and starts a new active file that continues
// the sequence numbers. It returns the archive's path.
func (j *Journal) Rotate() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h, err := readHeader(j.Active())
	if err != nil {
		return "", err
	}
	j.n++
	arch := filepath.Join(j.Dir, fmt.Sprintf("system@%s-%016x-%016x.journal", hex.EncodeToString(h[72:88]), binary.LittleEndian.Uint64(h[168:]), binary.LittleEndian.Uint64(h[184:])))
	if err := os.Rename(j.Active(), arch); err != nil {
		return "", err
	}
	if err := patch(arch, 16, []byte{2}); err != nil { // STATE_ARCHIVED
		return "", err
	}
	if err := j.write(nil); err != nil { // an empty active file
		return "", err
	}
	// journald's new file takes the old one's seqnum ID and continues after its tail.
	if err := patch(j.Active(), 72, h[72:88]); err != nil {
		return "", err
	}
	return arch, patch(j.Active(), 160, h[160:168])
}

// Archives returns the archives, oldest first.
func (j *Journal) Archives() []string {
	m, _ := filepath.Glob(filepath.Join(j.Dir, "system@*.journal"))
	sort.Strings(m) // the head seqnum is zero-padded hex
	return m
}

// Vacuum deletes all but the newest keep archives (journalctl --vacuum-files) and returns the
// sequence numbers [first, last] that the deleted archives held.
func (j *Journal) Vacuum(keep int) (ranges [][2]uint64, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	a := j.Archives()
	for len(a) > keep {
		h, err := readHeader(a[0])
		if err != nil {
			return ranges, err
		}
		if n := binary.LittleEndian.Uint64(h[152:]); n > 0 {
			ranges = append(ranges, [2]uint64{binary.LittleEndian.Uint64(h[168:]), binary.LittleEndian.Uint64(h[160:])})
		}
		if err := os.Remove(a[0]); err != nil {
			return ranges, err
		}
		a = a[1:]
	}
	return ranges, nil
}

func readHeader(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := make([]byte, 208)
	_, err = f.ReadAt(h, 0)
	return h, err
}

func patch(p string, off int64, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Cursor is what journalctl reports of an entry.
type Cursor struct {
	SeqnumID string
	Seqnum   uint64
}

// ParseCursor parses journalctl's __CURSOR.
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "s":
			c.SeqnumID = v
		case "i":
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				return c, fmt.Errorf("cursor %q: %w", s, err)
			}
			c.Seqnum = n
		}
	}
	return c, nil
}
