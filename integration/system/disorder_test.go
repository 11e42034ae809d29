package system

import (
	"fmt"
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
			fmt.Fprintf(&b, "  seq %d [rot %d] %s@%d %s\n", a.seq, rot, filepath.Base(a.file), a.offset, a.src)
		}
		b.WriteString("  rotation inodes: ")
		for r, ino := range c.ino {
			fmt.Fprintf(&b, "%d:%d ", r, ino)
		}
		b.WriteString("\n")
		dir := filepath.Dir(c.c.Path())
		s.collector.mu.Lock()
		for ri, p := range s.collector.runs {
			fmt.Fprintf(&b, "  collector run %d:\n", ri)
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.Contains(l, dir) {
					fmt.Fprintf(&b, "    %s\n", tail(l, 400))
				}
			}
		}
		s.collector.mu.Unlock()
		s.t.Log(b.String())
	}
}
