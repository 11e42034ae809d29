package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/logrouter/logrouter/router/checkpoint"
	"github.com/logrouter/logrouter/router/filemeta"
	"github.com/logrouter/logrouter/router/logpath"
)

// LossDeletedBeforeRead is the reason label of bytes of a file deleted (or compressed, or
// replaced) while the collector was not running, before they were read.
const LossDeletedBeforeRead = "deleted_before_read"

// goneFile is a checkpointed file that the start's scan did not find. Its bytes between the
// checkpoint and its size when that checkpoint was saved were never read by this node unless the
// previous run sent them after the save; the read-back (reconcile.go) looks for those.
type goneFile struct {
	entry     checkpoint.Entry
	namespace string
	topics    []string
	// unsure: the read-back could not look at every topic the file's lines may be in.
	unsure bool
	// sent: lines (or chunks of split lines, by offset and split index, -1 if not split) of it
	// that the read-back found past the checkpoint, with the bound on their size in the file.
	sent map[[2]int64]int64
	// holder is the file that holds the inode now (nil: none found), whose records the
	// read-back finds too; holderLines are the line offsets found to be the holder's.
	holder      io.ReaderAt
	holderLines map[int64]bool
}

// holderHas reports whether a record found with the gone file's device and inode is a line of
// the file that holds the inode now: its message is at the record's offset in that file (the
// first chunk of a split line; later chunks follow their first). ext4 reuses a freed inode at
// once, often for the same container's next file, whose lines would otherwise be credited to
// the gone file and hide its loss. Identical lines at identical offsets in both files are taken
// for the holder's: the count then errs high by such a line.
func (g *goneFile) holderHas(offset, split int64, msg string) bool {
	if g.holder == nil {
		return false
	}
	if split > 0 {
		return g.holderLines[offset]
	}
	probe := msg[:min(len(msg), 256)]
	esc, _ := json.Marshal(probe) // docker JSON escapes the message
	want := [][]byte{[]byte(probe), bytes.TrimSuffix(bytes.TrimPrefix(esc, []byte{'"'}), []byte{'"'})}
	buf := make([]byte, len(want[1])+128) // the framing before the message
	n, _ := g.holder.ReadAt(buf, offset)
	for _, w := range want {
		if n > 0 && bytes.Contains(buf[:n], w) {
			if g.holderLines == nil {
				g.holderLines = map[int64]bool{}
			}
			g.holderLines[offset] = true
			return true
		}
	}
	return false
}

func (g *goneFile) src() string { return fmt.Sprintf("%d:%d", g.entry.Dev, g.entry.Inode) }

// sawLine records a line (or a chunk of a split line) that the previous run sent after the
// checkpoint from a file with the gone file's device and inode. rec names the record's pod and
// container: another container's file that reused the inode is not this file.
func (g *goneFile) sawLine(offset, split int64, msg string, rec filemeta.PathMeta) {
	if offset < g.entry.Offset {
		return
	}
	if m, ok := pathMetaOf(g.entry.Path); ok && (m.Namespace != rec.Namespace || m.Pod != rec.Pod || m.Container != rec.Container) {
		return
	}
	if g.sent == nil {
		g.sent = map[[2]int64]int64{}
	}
	g.sent[[2]int64{offset, split}] = maxFramed(g.entry.Format, msg) // a duplicate counts once
}

func (g *goneFile) seen() bool { return len(g.sent) > 0 }

// sentEnd bounds the end of the lines found in Kafka: the largest of their offsets plus their
// largest possible size (all chunks of a split line). Crediting a record of another file that
// had the same inode can only move it up: the count then errs low, never high.
func (g *goneFile) sentEnd() int64 {
	lens := map[int64]int64{}
	for k, n := range g.sent {
		lens[k[0]] += n
	}
	end := int64(0)
	for off, n := range lens {
		end = max(end, off+n)
	}
	return end
}

// unread is the number of bytes counted as lost: from the checkpoint (or past the lines found
// in Kafka) to the size at the save. A record holds a line's message, not its framing, so a
// line found is taken at the largest size its framing allows: the count errs low by at most
// that framing, and never counts a line that was sent.
func (g *goneFile) unread() int64 {
	from := g.entry.Offset
	if g.seen() {
		from = max(from, g.sentEnd())
	}
	return max(0, g.entry.Size-from)
}

// maxFramed bounds the bytes a message took in the file. CRI adds a timestamp, stream and tag
// per runtime piece (16 KiB) and per line a multiline step joined; docker JSON escapes the
// message (as Go's encoder does, at most 6 bytes for one) and adds its keys and time per piece.
func maxFramed(format, msg string) int64 {
	pieces := int64(len(msg)/(16<<10)+1) + int64(strings.Count(msg, "\n"))
	if format == "cri" {
		return int64(len(msg)) + 64*pieces
	}
	n := int64(0)
	for i := 0; i < len(msg); i++ {
		switch b := msg[i]; {
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			n += 6
		case b == '"' || b == '\\':
			n += 2
		case b >= 0x80:
			n += 2 // U+2028/2029 (3 bytes) become 6; U+FFFD may stand for one invalid byte escaped as 6
		default:
			n++
		}
	}
	return n + 96*pieces
}

// goneUnread returns the gone files with bytes past their checkpoint, with their namespace.
func (c *Collector) goneUnread() []*goneFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*goneFile
	for _, g := range c.gone {
		if g.entry.Size <= g.entry.Offset {
			continue // read to its end, or a version 1 checkpoint without a size
		}
		g.namespace, g.unsure = g.entry.Namespace, true
		if g.namespace == "" {
			g.namespace = namespaceOf(g.entry.Path)
		}
		out = append(out, g)
	}
	return out
}

// namespaceOf reads the namespace from a pods-dir or container-link path ("" if neither).
func namespaceOf(path string) string {
	m, _ := pathMetaOf(path)
	return m.Namespace
}

// pathMetaOf reads namespace, pod and container from a pods-dir or container-link path.
func pathMetaOf(path string) (filemeta.PathMeta, bool) {
	if m, err := logpath.ParsePodLog(path); err == nil {
		return m, true
	}
	if m, err := logpath.ParseContainerLink(filepath.Base(path)); err == nil {
		return m, true
	}
	return filemeta.PathMeta{}, false
}

// maxLossLogs bounds the lines countGone logs one file each; the rest are summed in one.
const maxLossLogs = 100

// countGone counts and logs the bytes of files deleted before they were read, after the
// read-back had its look.
func (c *Collector) countGone() {
	c.mu.Lock()
	gone := c.gone
	c.gone = nil
	c.mu.Unlock()
	unknown, logged := 0, 0
	var total int64
	for _, g := range gone {
		if g.entry.Size == 0 && g.entry.Offset > 0 {
			unknown++ // written before checkpoints had sizes
			continue
		}
		n := g.unread()
		if n == 0 {
			if g.seen() && g.entry.Size > g.entry.Offset {
				// Said, because a file whose every line past the checkpoint was found is not LOST.
				c.log.Info("file gone since its checkpoint: the previous run sent every line past it", "path", g.entry.Path,
					"namespace", g.namespace, "inode", g.entry.Inode, "checkpoint_offset", g.entry.Offset,
					"size_at_checkpoint", g.entry.Size, "sent_end", g.sentEnd())
			}
			continue
		}
		c.metrics.lostBytes.WithLabelValues(g.namespace, LossDeletedBeforeRead).Add(float64(n))
		c.metrics.lostFiles.WithLabelValues(g.namespace, LossDeletedBeforeRead).Inc()
		total += n
		if logged++; logged > maxLossLogs {
			continue // summed below
		}
		msg := "LOST: file deleted before it was read to its end (it was rotated away or removed while the collector was not running); keep more or larger rotated files (kubelet containerLogMaxFiles/containerLogMaxSize), or keep the collector running"
		if g.unsure {
			msg += "; the read-back could not check Kafka, so lines sent just before the last stop may be among the bytes counted"
		}
		c.log.Error(msg, "path", g.entry.Path, "namespace", g.namespace, "inode", g.entry.Inode,
			"checkpoint_offset", g.entry.Offset, "size_at_checkpoint", g.entry.Size, "bytes_lost", n,
			"checkpoint_saved", g.entry.Updated, "reason", LossDeletedBeforeRead)
	}
	if logged > maxLossLogs {
		c.log.Error("LOST: more files deleted before they were read than logged one by one", "files", logged, "bytes_lost", total, "reason", LossDeletedBeforeRead)
	}
	if unknown > 0 {
		c.log.Warn("files checkpointed by an older version are gone; their unread bytes, if any, cannot be counted", "count", unknown)
	}
	if len(gone) > 0 {
		c.log.Info("dropping checkpoints of files that no longer exist", "count", len(gone))
	}
}
