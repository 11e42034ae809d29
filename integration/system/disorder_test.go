package system

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// arrival is where the first record of a line came from, for explaining disorder.
type arrival struct {
	seq    int
	file   string
	offset int64
	src    string
	again  bool // a duplicate: the line arrived before
	at     pos  // the record's Kafka position
}

// disorderAt is a container's first line that arrived after a later one.
type disorderAt struct{ seq, after int }

// explainDisorder logs, for up to n containers whose lines arrived out of order, which file
// (by rotation) the writer put each line around the disorder in, the rotations' kinds, where
// each record says it was read from, and the collector's log lines about the container.
func (s *system) explainDisorder(keys map[string]*wcont, n int) {
	var ks []string
	for k := range s.disorder {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks[:min(n, len(ks))] {
		c, d := keys[k], s.disorder[k]
		if c == nil {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "DISORDER %s: seq %d first arrived after seq %d; rotations (writer): ", k, d.seq, d.after)
		for r := 1; r <= c.nrot; r++ {
			fmt.Fprintf(&b, "%d:%s ", r, s.w.rotationKind(r))
		}
		b.WriteString("\n  arrivals (seq [file after rotation N] record file@offset src):\n")
		arr := s.arrivals[k]
		i := slices.IndexFunc(arr, func(a arrival) bool { return a.seq == d.seq })
		lo := slices.IndexFunc(arr, func(a arrival) bool { return a.seq > d.seq })
		for j := max(0, min(lo, i)-3); j < min(len(arr), i+4) && j >= 0; j++ {
			a := arr[j]
			rot := -1
			if a.seq < len(c.rot) {
				rot = c.rot[a.seq]
			}
			again := ""
			if a.again {
				again = " (again)"
			}
			fmt.Fprintf(&b, "  seq %d [rot %d] %s@%d %s%s\n", a.seq, rot, filepath.Base(a.file), a.offset, a.src, again)
		}
		s.writeContainerLog(&b, c)
		s.t.Log(b.String())
	}
}

// explainDuplicates logs, for up to n containers with lines that arrived more than once, where
// each arrival of those lines was read from (file@offset, Kafka position), the container's
// rotation inodes and the collector's log lines about it.
func (s *system) explainDuplicates(keys map[string]*wcont, n int) {
	dups := map[string]map[int]bool{}
	for k, arr := range s.arrivals {
		for _, a := range arr {
			if a.again {
				if dups[k] == nil {
					dups[k] = map[int]bool{}
				}
				dups[k][a.seq] = true
			}
		}
	}
	ks := slices.Sorted(maps.Keys(dups))
	if len(ks) > 0 {
		s.t.Logf("DUPLICATES in %d containers; the collector's warnings and errors:\n%s", len(ks), s.problemsLogged(s.collector, 30))
	}
	for _, k := range ks[:min(n, len(ks))] {
		c := keys[k]
		if c == nil {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "DUPLICATES %s: %d lines arrived more than once; rotations (writer): ", k, len(dups[k]))
		for r := 1; r <= c.nrot && r < len(c.rotAt); r++ {
			fmt.Fprintf(&b, "%d:%s@%s ", r, s.w.rotationKind(r), c.rotAt[r].Format("15:04:05.000"))
		}
		b.WriteString("\n  arrivals of those lines (seq [file after rotation N] written-at record file@offset src kafka-position):\n")
		for _, a := range s.arrivals[k] {
			if !dups[k][a.seq] {
				continue
			}
			rot, at := -1, ""
			if a.seq < len(c.rot) {
				rot, at = c.rot[a.seq], c.at[a.seq].Format("15:04:05.000")
			}
			again := ""
			if a.again {
				again = " (again)"
			}
			fmt.Fprintf(&b, "  seq %d [rot %d] %s %s@%d %s %s/%d@%d%s\n", a.seq, rot, at, filepath.Base(a.file), a.offset, a.src, a.at.topic, a.at.partition, a.at.offset, again)
		}
		s.writeContainerLog(&b, c)
		s.t.Log(b.String())
	}
}

// writeContainerLog writes c's rotation inodes and every collector run's log lines about its
// directory.
func (s *system) writeContainerLog(b *strings.Builder, c *wcont) {
	b.WriteString("  rotation inodes: ")
	for r, ino := range c.ino {
		fmt.Fprintf(b, "%d:%d ", r, ino)
	}
	b.WriteString("\n")
	dir := filepath.Dir(c.c.Path())
	s.collector.mu.Lock()
	defer s.collector.mu.Unlock()
	for ri, p := range s.collector.runs {
		fmt.Fprintf(b, "  collector run %d:\n", ri)
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, dir) {
				fmt.Fprintf(b, "    %s\n", tail(l, 400))
			}
		}
	}
}
