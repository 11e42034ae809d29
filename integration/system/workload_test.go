package system

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logrouter/logrouter/router/loadgen"
)

// keepFiles is kubelet's containerLogMaxFiles default: the live file and four rotated ones.
const keepFiles = 5

// floodFactor is how many times more the flood namespace writes than each other one.
const floodFactor = 20

// wcont is one container of the workload and what it wrote.
type wcont struct {
	c     *loadgen.Container
	ns    string
	key   string      // namespace/pod/container: the src of its lines
	bytes []int64     // framed size of each line written, by seq
	rot   []int       // rotations before each line was written (which file holds it), by seq
	at    []time.Time // when each line was written, by seq
	nrot  int
	skew  time.Duration // added to the lines' CRI timestamps
	ino   []uint64      // inode of the file of each rotation (the live file after it), for diagnostics
	rotAt []time.Time   // just before each rotation's file was created (the first: the container's)
}

// workload writes sequence-numbered lines into containers laid out as kubelet does (CRI files,
// runtime partials for lines over 16 KiB, rotation into 0.log.<timestamp>, older rotated files
// gzip-compressed and the oldest deleted beyond keepFiles).
type workload struct {
	t          *testing.T
	node       *loadgen.Node
	namespaces []string
	conts      []*wcont

	// flood is a namespace whose containers write floodFactor times as many lines, while
	// floodPaused is false.
	flood       string
	floodPaused atomic.Bool
	// skew shifts the CRI timestamps of a namespace's lines (a node clock ahead or behind);
	// set before the workload runs.
	skew map[string]time.Duration
	// copyTruncate makes every other rotation a copytruncate.
	copyTruncate bool
	// noCompress keeps rotated files uncompressed and never deletes them.
	noCompress bool

	mu        sync.Mutex
	rotations int
	gzipped   int
	deleted   int
}

// newWorkload lays out namespaces x perNS containers under root; podUID, when not nil, names
// each pod's UID.
func newWorkload(t *testing.T, root string, namespaces, perNS int, podUID func(ns, pod string) string) *workload {
	node, err := loadgen.NewNode(root)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, node: node}
	for i := range namespaces {
		ns := fmt.Sprintf("team-%02d", i)
		w.namespaces = append(w.namespaces, ns)
		for j := range perNS {
			pod, name := fmt.Sprintf("web-%d", j/2), fmt.Sprintf("c%d", j%2)
			uid := ""
			if podUID != nil {
				uid = podUID(ns, pod)
			}
			var c *loadgen.Container
			var err error
			created := time.Now()
			if uid != "" {
				c, err = node.AddPodContainer(ns, pod, uid, name, loadgen.CRI)
			} else {
				c, err = node.AddContainer(ns, pod, name, loadgen.CRI)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			wc := &wcont{c: c, ns: ns, key: ns + "/" + pod + "/" + name}
			wc.ino = append(wc.ino, inodeOf(c.Path()))
			wc.rotAt = append(wc.rotAt, created)
			w.conts = append(w.conts, wc)
		}
	}
	return w
}

// line renders line seq of c: every 97th line is 40 KiB (three runtime partials), the
// others about 200 bytes.
func (c *wcont) line(seq int) []byte {
	size := 200
	if seq%97 == 13 {
		size = 40 << 10
	}
	msg := loadgen.SeqMessage(c.key, seq, size)
	ts := time.Now().Add(c.skew)
	var b []byte
	for len(msg) > 16384 {
		b = append(b, c.c.Line(ts, "stdout", true, msg[:16384])...)
		msg = msg[16384:]
	}
	return append(b, c.c.Line(ts, "stdout", false, msg)...)
}

// writeOne appends the next line of c.
func (w *workload) writeOne(c *wcont) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := c.line(len(c.bytes))
	if err := c.c.WriteRaw(b); err != nil {
		w.t.Error(err)
		return
	}
	c.bytes = append(c.bytes, int64(len(b)))
	c.rot = append(c.rot, c.nrot)
	c.at = append(c.at, time.Now())
}

// run writes rate lines per second spread over the containers, and rotates each container
// every rotateEvery (staggered), until stop is closed; both are paced by 20 ms ticks, so a
// loaded machine slows both alike. Containers in flood (by namespace) write floodFactor times
// as many lines.
func (w *workload) run(stop <-chan struct{}, rate int, rotateEvery time.Duration) {
	const tick = 20 * time.Millisecond
	perTick := max(1, rate*int(tick/time.Millisecond)/1000)
	w.mu.Lock()
	for _, c := range w.conts {
		c.skew = w.skew[c.ns]
	}
	w.mu.Unlock()
	next := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	// Rotations are paced by the same ticks as the lines: on a loaded machine the ticker drops
	// ticks, and rotations kept at wall-clock pace would turn into a storm of empty files.
	perTickRot := 0.0
	if rotateEvery > 0 {
		perTickRot = float64(len(w.conts)) * float64(tick) / float64(rotateEvery)
	}
	rotDue, nextRot := 0.0, 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for range perTick {
			c := w.conts[next%len(w.conts)]
			w.writeOne(c)
			if c.ns == w.flood && !w.floodPaused.Load() {
				for range floodFactor - 1 {
					w.writeOne(c)
				}
			}
			next++
		}
		// Due per tick received: a tick that takes longer than the interval (gzip under load)
		// makes the ticker drop the ticks it missed, so rotations fall behind by skipping, never
		// by a backlog the loop cannot leave; stop is honoured between two rotations.
		for rotDue += perTickRot; rotDue >= 1; rotDue-- {
			select {
			case <-stop:
				return
			default:
			}
			w.rotate(w.conts[nextRot%len(w.conts)])
			nextRot++
		}
	}
}

// rotate renames c's live file as kubelet does, gzips every rotated file but the newest, and
// deletes the oldest beyond keepFiles.
func (w *workload) rotate(c *wcont) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rotate := c.c.RotateRename
	if w.rotationKind(c.nrot+1) == "copytruncate" {
		rotate = c.c.RotateCopyTruncate
	}
	before := time.Now()
	if _, err := rotate(); err != nil {
		w.t.Error(err)
		return
	}
	w.rotations++
	c.nrot++
	c.ino = append(c.ino, inodeOf(c.c.Path()))
	c.rotAt = append(c.rotAt, before)
	if w.noCompress {
		return
	}
	rotated := c.c.Rotated()
	slices.Sort(rotated)
	for _, p := range rotated[:len(rotated)-1] {
		if !strings.HasSuffix(p, ".gz") {
			if err := loadgen.Gzip(p); err != nil {
				w.t.Error(err)
				return
			}
			w.gzipped++
		}
	}
	rotated = c.c.Rotated()
	slices.Sort(rotated)
	for len(rotated) > keepFiles-1 {
		if err := os.Remove(rotated[0]); err != nil {
			w.t.Error(err)
		}
		w.deleted++
		rotated = rotated[1:]
	}
}

// rotationKind is how a container's rotation r (from 1) rotates: with copyTruncate every
// second one is a copytruncate.
func (w *workload) rotationKind(r int) string {
	if w.copyTruncate && r%2 == 0 {
		return "copytruncate"
	}
	return "rename"
}

func inodeOf(p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// minRotations is the fewest rotations any container had.
func (w *workload) minRotations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := -1
	for _, c := range w.conts {
		if n < 0 || c.nrot < n {
			n = c.nrot
		}
	}
	return n
}

// written returns the number of lines written per container key, and the total.
func (w *workload) written() (map[string]int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out, total := map[string]int{}, 0
	for _, c := range w.conts {
		out[c.key] = len(c.bytes)
		total += len(c.bytes)
	}
	return out, total
}

// started returns when the first line was written (the zero time before).
func (w *workload) started() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t0 time.Time
	for _, c := range w.conts {
		if len(c.at) > 0 && (t0.IsZero() || c.at[0].Before(t0)) {
			t0 = c.at[0]
		}
	}
	return t0
}

// byKey returns the container of each key.
func (w *workload) byKey() map[string]*wcont {
	out := map[string]*wcont{}
	for _, c := range w.conts {
		out[c.key] = c
	}
	return out
}
