package collectortest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/logrouter/logrouter/internal/topic"
	"github.com/logrouter/logrouter/router/loadgen"
)

// Line is one line a workload wrote: what its record must carry.
type Line struct {
	Seq     int
	TS      time.Time
	Stream  string
	Message string
	Offset  int64 // where the line starts in its file
}

// Container is one container of a workload and the lines written to it so far.
type Container struct {
	*loadgen.Container
	Key   string // namespace/pod/container: the src of its SeqMessage lines
	Lines []Line
	size  int64
}

// Workload is a fake node (loadgen) whose containers write sequence-numbered lines, and the
// record each line must become.
type Workload struct {
	Node       *loadgen.Node
	Namespaces []string
	Containers []*Container
	mu         sync.Mutex
}

// NewWorkload lays out pods pods with the given containers in each namespace under a
// temporary directory. Containers alternate between the CRI and docker json-file formats.
func NewWorkload(t testing.TB, namespaces []string, pods int, containers []string) *Workload {
	t.Helper()
	node, err := loadgen.NewNode(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &Workload{Node: node, Namespaces: namespaces}
	i := 0
	for _, ns := range namespaces {
		for p := range pods {
			for _, name := range containers {
				format := loadgen.CRI
				if i%2 == 1 {
					format = loadgen.Docker
				}
				i++
				pod := fmt.Sprintf("web-%d", p)
				c, err := node.AddContainer(ns, pod, name, format)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				w.Containers = append(w.Containers, &Container{Container: c, Key: ns + "/" + pod + "/" + name})
			}
		}
	}
	return w
}

// Write appends n more lines to every container: SeqMessage lines of about size bytes, even
// sequence numbers on stdout and odd ones on stderr.
func (w *Workload) Write(t testing.TB, n, size int) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.Containers {
		for range n {
			seq := len(c.Lines)
			stream := "stdout"
			if seq%2 == 1 {
				stream = "stderr"
			}
			ts := time.Now().UTC()
			msg := loadgen.SeqMessage(c.Key, seq, size)
			b := c.Line(ts, stream, false, msg)
			if err := c.WriteRaw(b); err != nil {
				t.Fatal(err)
			}
			c.Lines = append(c.Lines, Line{Seq: seq, TS: ts, Stream: stream, Message: msg, Offset: c.size})
			c.size += int64(len(b))
		}
	}
}

// Want returns the number of lines written to each namespace's containers, by topic
// ("logs.<namespace>").
func (w *Workload) Want() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for _, ns := range w.Namespaces {
		out[Topic(ns)] = 0
	}
	for _, c := range w.Containers {
		out[Topic(c.Namespace)] += int64(len(c.Lines))
	}
	return out
}

// Topic is the collector's default topic of namespace ns.
func Topic(ns string) string { return topic.Of(ns) }
