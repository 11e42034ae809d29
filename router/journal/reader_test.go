package journal_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logrouter/logrouter/router/journal"
	"github.com/logrouter/logrouter/router/journal/journaltest"
)

const boot = "0123456789abcdef0123456789abcdef"

// entries makes n entries numbered from first: every 7th message is long enough for journald
// to compress it, every 11th holds invalid UTF-8 and a newline (binary in the export format).
func entries(first, n int) []journaltest.Entry {
	var es []journaltest.Entry
	for i := first; i < first+n; i++ {
		msg := fmt.Sprintf("entry-%d", i)
		switch {
		case i%7 == 0:
			msg += " " + strings.Repeat("long ", 400)
		case i%11 == 0:
			msg += " bad \xff\xfe utf8\nsecond line"
		}
		es = append(es, journaltest.Entry{Realtime: 1_700_000_000_000_000 + uint64(i), BootID: boot, Fields: [][2]string{
			{"MESSAGE", msg}, {"PRIORITY", "6"}, {"_SYSTEMD_UNIT", "kubelet.service"}, {"_PID", "42"}, {"_COMM", "kubelet"}, {"_HOSTNAME", "node-a"},
		}})
	}
	return es
}

type got struct {
	seq uint64
	msg string
}

// journalctlRead is what journalctl reads from dir: (seqnum, MESSAGE) in order.
func journalctlRead(t *testing.T, dir string) []got {
	t.Helper()
	out, err := exec.Command("journalctl", "-D", dir, "-o", "json", "--no-pager").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	var gs []got
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		c, err := journaltest.ParseCursor(m["__CURSOR"].(string))
		if err != nil {
			t.Fatal(err)
		}
		var msg string
		switch v := m["MESSAGE"].(type) {
		case string:
			msg = v
		case []any: // binary: an array of byte values
			b := make([]byte, len(v))
			for i, x := range v {
				b[i] = byte(x.(float64))
			}
			msg = string(b)
		}
		gs = append(gs, got{c.Seqnum, msg})
	}
	return gs
}

func poll(t *testing.T, r *journal.Reader, into *[]got, lost *uint64) {
	t.Helper()
	err := r.Poll(func(_ *journal.Stream, l uint64, e *journal.Entry) bool {
		m, _ := e.Field("MESSAGE")
		*into = append(*into, got{e.Seqnum, string(m)})
		*lost += l
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReaderMatchesJournalctl: across appends, rotations and vacuums, the reader returns what
// journalctl reads, in order, each entry once, and counts exactly the entries vacuum deleted
// before they were read.
func TestReaderMatchesJournalctl(t *testing.T) {
	journaltest.Skip(t)
	for _, tc := range []struct {
		name string
		// steps: 'a' append 30 entries, 'r' rotate, 'v' vacuum to 1 archive, 'p' poll
		steps string
	}{
		{"append and read", "apapap"},
		{"rotations between polls", "arararp"},
		{"vacuum before read", "arararvp"},
		{"vacuum after read", "arpavrapvap"},
		{"read while rotating", "apraprapvrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := &journaltest.Journal{Dir: dir}
			r := &journal.Reader{Dirs: []string{dir}}
			defer r.Close()
			var all, read []got
			var lost, wantLost uint64
			next := 1
			for _, s := range tc.steps {
				switch s {
				case 'a':
					if err := j.Append(entries(next, 30)); err != nil {
						t.Fatal(err)
					}
					next += 30
					all = journalctlRead(t, dir)
				case 'r':
					if _, err := j.Rotate(); err != nil {
						t.Fatal(err)
					}
				case 'v':
					ranges, err := j.Vacuum(1)
					if err != nil {
						t.Fatal(err)
					}
					last := uint64(0)
					if len(read) > 0 {
						last = read[len(read)-1].seq
					}
					for _, rg := range ranges {
						if rg[1] > last {
							wantLost += rg[1] - max(rg[0]-1, last)
						}
					}
				case 'p':
					poll(t, r, &read, &lost)
					poll(t, r, &read, &lost) // a gap is counted at the second sight
				}
			}
			poll(t, r, &read, &lost)
			poll(t, r, &read, &lost)
			// What journalctl reads of the files present at the end must be the tail of read.
			final := journalctlRead(t, dir)
			if len(final) == 0 || len(read) < len(final) {
				t.Fatalf("read %d entries, journalctl %d", len(read), len(final))
			}
			tail := read[len(read)-len(final):]
			for i := range final {
				if tail[i] != final[i] {
					t.Fatalf("entry %d: read %+v, journalctl %+v", i, tail[i], final[i])
				}
			}
			// Every entry once, in order; every missing seqnum counted lost.
			for i := 1; i < len(read); i++ {
				if read[i].seq <= read[i-1].seq {
					t.Fatalf("out of order or twice: %d after %d", read[i].seq, read[i-1].seq)
				}
			}
			if n := uint64(len(read)) + lost; n != uint64(next-1) {
				t.Fatalf("read %d + lost %d = %d, want %d entries", len(read), lost, n, next-1)
			}
			if lost != wantLost {
				t.Fatalf("lost %d, want %d", lost, wantLost)
			}
			for _, g := range read {
				if !strings.HasPrefix(g.msg, fmt.Sprintf("entry-%d", g.seq)) {
					t.Fatalf("seqnum %d carries %.40q", g.seq, g.msg)
				}
			}
			_ = all
		})
	}
}

// TestReaderResume: a reader resumed from a checkpoint continues after it, and counts the
// entries vacuumed meanwhile as lost.
func TestReaderResume(t *testing.T) {
	journaltest.Skip(t)
	dir := t.TempDir()
	j := &journaltest.Journal{Dir: dir}
	if err := j.Append(entries(1, 40)); err != nil {
		t.Fatal(err)
	}
	r := &journal.Reader{Dirs: []string{dir}, Fresh: true}
	var read []got
	var lost uint64
	poll(t, r, &read, &lost)
	st := r.Streams()[0]
	id, last := st.ID, read[24].seq // checkpointed after 25 entries
	r.Close()
	for _, step := range []func() error{
		func() error { _, err := j.Rotate(); return err },
		func() error { return j.Append(entries(41, 20)) },
		func() error { _, err := j.Rotate(); return err },
		func() error { return j.Append(entries(61, 20)) },
		func() error { _, err := j.Vacuum(1); return err }, // deletes 1..40
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	r2 := &journal.Reader{Dirs: []string{dir}}
	defer r2.Close()
	r2.Resume(id, last)
	read, lost = nil, 0
	poll(t, r2, &read, &lost)
	poll(t, r2, &read, &lost)
	if lost != 15 || len(read) != 40 || read[0].seq != 41 || read[39].seq != 80 {
		t.Fatalf("resumed: lost %d, read %d (%v..), want lost 15 (26..40), read 41..80", lost, len(read), read[:min(1, len(read))])
	}
}

// TestReaderMachineID: with the machine ID known, only journald's own subdirectory is read.
func TestReaderMachineID(t *testing.T) {
	journaltest.Skip(t)
	dir := t.TempDir()
	own, other := strings.Repeat("a", 32), strings.Repeat("b", 32)
	for i, id := range []string{own, other} {
		j := &journaltest.Journal{Dir: filepath.Join(dir, id)}
		if err := os.MkdirAll(j.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(entries(1+100*i, 5)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		machine string
		want    int
	}{{own, 5}, {"", 10}} {
		r := &journal.Reader{Dirs: []string{dir}, MachineID: tc.machine, Fresh: true}
		var read []got
		var lost uint64
		poll(t, r, &read, &lost)
		r.Close()
		if len(read) != tc.want || tc.machine != "" && read[0].msg != "entry-1" {
			t.Fatalf("machine %q: read %v, want %d entries", tc.machine, read, tc.want)
		}
	}
}
