package system

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/logrouter/logrouter/router/checkpoint"
)

// keepCheckpoints records the collector's checkpoint file (it must not be running).
func (s *system) keepCheckpoints() {
	st, err := checkpoint.Open(filepath.Join(s.dir, "checkpoints"))
	if err != nil {
		s.t.Fatal(err)
	}
	es, err := st.Load()
	if err != nil {
		s.t.Fatal(err)
	}
	s.ckAtKill = append(s.ckAtKill, es)
}

// countableLoss is what the collector's design can count of the lines lost
// (docs/collector.md#lost-files): a lost line is countable when a checkpoint some run loaded
// (as a kill left it) held its file from before the line's start to past its end; the others
// were written after the last save that saw their file.
type countableLoss struct {
	bytes      map[string]int64 // countable lost bytes by namespace
	files      map[string]int   // files with countable lost lines, by namespace
	uncounted  int              // lost lines that no loaded checkpoint covered
	uncountedB int64
	examples   []string
}

type fileKey struct {
	key string
	rot int
}

// uncountableByDesign reports, for line q of container c, whether no checkpoint any collector run
// loaded held its file past the line's end while the file is gone (compressed): no run saved
// what it saw of it, so its loss cannot be counted (docs/collector.md#lost-files). Only for rename
// rotation: a line is in the file its container had live when it was written. Set after the
// last kill.
func (s *system) uncountableByDesign() func(c *wcont, q int) bool {
	covered := s.coveredRanges()
	starts := map[*wcont][]int64{}
	for _, c := range s.w.conts {
		offs := map[int]int64{}
		st := make([]int64, len(c.bytes))
		for q := range c.bytes {
			st[q] = offs[c.rot[q]]
			offs[c.rot[q]] += c.bytes[q]
		}
		starts[c] = st
	}
	return func(c *wcont, q int) bool {
		if c.rot[q] >= c.nrot-1 {
			return false // its file is on disk
		}
		start := starts[c][q]
		for _, rg := range covered[fileKey{c.key, c.rot[q]}] {
			if rg[0] <= start && start+c.bytes[q] <= rg[1] {
				return false
			}
		}
		return true
	}
}

// coveredRanges returns the checkpointed ranges [offset, size) of each file, from the
// checkpoints the collector's runs loaded.
func (s *system) coveredRanges() map[fileKey][][2]int64 {
	covered := map[fileKey][][2]int64{}
	byDir := map[string]*wcont{}
	for _, c := range s.w.conts {
		byDir[filepath.Dir(c.c.Path())] = c
	}
	for _, es := range s.ckAtKill {
		for _, e := range es {
			c := byDir[filepath.Dir(e.Path)]
			if c == nil || e.Size <= e.Offset {
				continue
			}
			// The file that had the inode when the entry was saved: an inode is reused only after
			// its file is deleted and closed, so the latest one created before the save. (Updated is
			// a time the saving run had the file open, or the first line's time.)
			r := -1
			for i, ino := range c.ino {
				if ino == e.Inode && !c.rotAt[i].After(e.Updated) {
					r = i
				}
			}
			if r >= 0 {
				k := fileKey{c.key, r}
				covered[k] = append(covered[k], [2]int64{e.Offset, e.Size})
			}
		}
	}
	return covered
}

// countable classifies every lost line (s.seen set by account) against the checkpoints the
// collector's runs loaded (see uncountableByDesign).
func (s *system) countable() countableLoss {
	out := countableLoss{bytes: map[string]int64{}, files: map[string]int{}}
	covered := s.coveredRanges()
	filesSeen := map[fileKey]bool{}
	keys := make([]string, 0, len(s.w.conts))
	for _, c := range s.w.conts {
		keys = append(keys, c.key)
	}
	sort.Strings(keys)
	byKey := s.w.byKey()
	for _, key := range keys {
		c := byKey[key]
		offs := map[int]int64{} // next line's offset in each rotation's file
		for q := range c.bytes {
			k := fileKey{key, c.rot[q]}
			start := offs[k.rot]
			end := start + c.bytes[q]
			offs[k.rot] = end
			if s.seen[key][q] > 0 {
				continue
			}
			ok := false
			for _, rg := range covered[k] {
				ok = ok || (rg[0] <= start && end <= rg[1])
			}
			if ok {
				out.bytes[c.ns] += c.bytes[q]
				if !filesSeen[k] {
					filesSeen[k] = true
					out.files[c.ns]++
				}
				continue
			}
			out.uncounted++
			out.uncountedB += c.bytes[q]
			if len(out.examples) < 3 {
				out.examples = append(out.examples, fmt.Sprintf("%s seq %d (bytes %d-%d of rotation %d's file, inode %d; checkpointed ranges %v)\n%s",
					key, q, start, end, k.rot, c.ino[k.rot], covered[k], s.explainMissing(c, q)))
			}
		}
	}
	return out
}

// checkCounted fails the test unless, in every namespace, the bytes counted lost are at most the
// bytes lost and at least the countable lost bytes, less the read-back's bound on one line's
// framing per file (a line found in Kafka is taken at its largest possible size).
func (s *system) checkCounted(rep report) countableLoss {
	t := s.t
	t.Helper()
	// A line of a file still on disk (the live one, the newest rotated) is late, not lost: the
	// accounting's wait ends at the first count in its namespace.
	deadline := time.Now().Add(60 * time.Second)
	for late := s.lateLine(); late != ""; late = s.lateLine() {
		if time.Now().After(deadline) {
			t.Errorf("not in Kafka 60s after the accounting, and its file is still on disk: %s", late)
			break
		}
		time.Sleep(time.Second)
		_, s.seen = s.readKafka()
	}
	cl := s.countable()
	if n := len(s.ckAtKill); n > 0 && len(s.ckAtKill[n-1]) == 0 {
		// Every lost line would pass as uncountable: the check needs the runs' saves.
		t.Errorf("the last collector kill left no checkpoint entries (%d kills)", n)
	}
	counted := s.lostLogged()
	lost := map[string]int64{}
	byKey := s.w.byKey()
	for key, c := range byKey {
		for q, n := range c.bytes {
			if s.seen[key][q] == 0 {
				lost[c.ns] += n
			}
		}
	}
	const framingBound = 3 * 64 // a 40 KiB line: three CRI pieces
	var bad []string
	for _, ns := range s.w.namespaces {
		if counted[ns] > lost[ns] || counted[ns] < cl.bytes[ns]-int64(cl.files[ns])*framingBound {
			bad = append(bad, fmt.Sprintf("%s: counted %d bytes, lost %d, countable %d in %d files", ns, counted[ns], lost[ns], cl.bytes[ns], cl.files[ns]))
		}
	}
	if len(bad) > 0 {
		t.Errorf("lost bytes counted wrong (%s):\n%s", rep, strings.Join(bad, "\n"))
	}
	t.Logf("lost lines no loaded checkpoint covered (written after the last save that saw their file): %d (%d bytes); countable %d bytes, counted %d bytes",
		cl.uncounted, cl.uncountedB, sum(cl.bytes), sum(counted))
	for _, e := range cl.examples {
		t.Logf("uncountable: %s", e)
	}
	return cl
}

// lateLine describes the first line not in Kafka whose file was not compressed ("" if none).
func (s *system) lateLine() string {
	for _, c := range s.w.conts {
		for q := range c.bytes {
			if s.seen[c.key][q] == 0 && c.rot[q] >= c.nrot-1 {
				return s.explainMissing(c, q)
			}
		}
	}
	return ""
}
