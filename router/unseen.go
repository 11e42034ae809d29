package router

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/logrouter/logrouter/router/fileid"
	"github.com/logrouter/logrouter/router/filemeta"
)

// unseenState tracks the compressed rotated files a running collector has checked: a file
// created, rotated and compressed between two scans (scans late on a starved node, rotations
// faster than them) was never opened, and its lines are only in the .gz. The collector does not
// read .gz files; it counts such a file's bytes lost, exactly (its uncompressed size).
type unseenState struct {
	since   time.Time            // when this run started: older .gz files are not its to count
	checked map[fileid.ID]uint64 // .gz files checked, with the last scan that listed them
	// prints are the first bytes (fingerprints) of the files this run read, by directory: of
	// every file let go, and of truncated files' old content (copytruncate, counted there). Kept
	// apart from the let-go files (c.done), whose entry goes once a new file takes the inode: on
	// a busy node the inode of a file just compressed is reused at once, often before a scan has
	// listed its .gz.
	prints map[string][]contentPrint
}

// contentPrint is the fingerprint of a file's first bytes.
type contentPrint struct {
	fpLen int
	fp    uint64
	at    time.Time
}

// printsKept is how long a read file's fingerprint is kept for the check of its .gz: longer
// than any rotation takes to compress a file it rotated.
const printsKept = 10 * time.Minute

// rememberContentLocked records the first bytes of a file of dir that this run read (or whose
// tail is counted elsewhere); c.mu is held.
func (c *Collector) rememberContentLocked(dir string, fpLen int, fp uint64) {
	if fpLen == 0 {
		return
	}
	if c.unseen.prints == nil {
		c.unseen.prints = map[string][]contentPrint{}
	}
	c.unseen.prints[dir] = append(c.unseen.prints[dir], contentPrint{fpLen: fpLen, fp: fp, at: time.Now()})
}

// rememberCopy records a truncated file's old content: its compressed copy is the copytruncate
// code's to count (countLostCopy), not counted again as unseen.
func (c *Collector) rememberCopy(dir string, fpLen int, fp uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rememberContentLocked(dir, fpLen, fp)
}

// prunePrintsLocked forgets the fingerprints older than printsKept; c.mu is held.
func (c *Collector) prunePrintsLocked(now time.Time) {
	for dir, ps := range c.unseen.prints {
		kept := ps[:0]
		for _, p := range ps {
			if now.Sub(p.at) < printsKept {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			delete(c.unseen.prints, dir)
		} else {
			c.unseen.prints[dir] = kept
		}
	}
}

// checkCompressed counts a gzip-compressed rotated file of this run that starts like no file the
// collector has open, has read or knows as a copytruncate copy: it was compressed before any scan
// saw it uncompressed. Each .gz is checked once.
func (c *Collector) checkCompressed(path string, meta filemeta.PathMeta) {
	if !strings.HasSuffix(path, ".gz") || !c.started.Load() {
		return // other formats cannot be sized here (kubelet writes .gz); the start counts its own
	}
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	id, err := fileid.Of(fi)
	if err != nil {
		return
	}
	c.mu.Lock()
	_, done := c.unseen.checked[id]
	c.unseen.checked[id] = c.scanGen
	since := c.unseen.since
	c.mu.Unlock()
	if done {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || time.Unix(st.Ctim.Sec, st.Ctim.Nsec).Before(since) {
		return // compressed before this run started (the start's checkpoints count what they can)
	}
	head, size, err := gunzipHead(path)
	if err != nil {
		c.fileLog.Log("compressed rotated file unreadable: cannot tell whether its lines were read", "path", path, "namespace", meta.Namespace, "err", err)
		return
	}
	if size == 0 || c.seenContent(filepath.Dir(path), head) {
		return
	}
	c.metrics.lostBytes.WithLabelValues(meta.Namespace, LossDeletedBeforeRead).Add(float64(size))
	c.metrics.lostFiles.WithLabelValues(meta.Namespace, LossDeletedBeforeRead).Inc()
	c.log.Error("LOST: a rotated file was compressed before any scan saw it (created, rotated and compressed between two scans); its lines are only in the compressed file, which is not read; scan more often (--scan-interval), give the collector more CPU, or compress rotated files later",
		"path", path, "namespace", meta.Namespace, "pod", meta.Pod, "container", meta.Container, "inode", id.Inode,
		"bytes_lost", size, "reason", LossDeletedBeforeRead)
}

// gunzipHead returns the first fileid.FingerprintSize uncompressed bytes of a gzip file and its
// whole uncompressed size.
func gunzipHead(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, 0, err
	}
	head := make([]byte, fileid.FingerprintSize)
	n, err := io.ReadFull(zr, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, 0, err
	}
	rest, err := io.Copy(io.Discard, zr)
	if err != nil {
		return nil, 0, err
	}
	return head[:n], int64(n) + rest, nil
}

// seenContent reports whether head (a file's first bytes) starts like a file of dir that the
// collector has open (compared with the file's own first bytes), let go (its checkpoint's
// fingerprint) or knows as a truncated file's old content. A short match errs low (not counted).
func (c *Collector) seenContent(dir string, head []byte) bool {
	matches := func(n int, sum uint64) bool {
		return n > 0 && n <= len(head) && xxhash.Sum64(head[:n]) == sum
	}
	c.mu.Lock()
	var open []*os.File
	var files []*file
	for _, f := range c.files {
		if filepath.Dir(f.curPath()) == dir || filepath.Dir(f.meta.File) == dir {
			open = append(open, f.fd)
			files = append(files, f)
		}
	}
	for _, h := range c.held {
		if filepath.Dir(h.cd.path) == dir {
			open = append(open, h.fd)
		}
	}
	found := false
	for _, d := range c.done {
		if filepath.Dir(d.entry.Path) == dir && matches(d.entry.FingerprintLen, d.entry.Fingerprint) {
			found = true
		}
	}
	for _, p := range c.unseen.prints[dir] {
		if matches(p.fpLen, p.fp) {
			found = true
		}
	}
	c.mu.Unlock()
	for _, f := range files {
		// The content its reader knows: a file copied and truncated whose reader has not noticed
		// the truncation yet starts like its compressed copy in memory only, and its reader
		// counts the copy's tail when it does (countLostCopy); counted here too, the copy's
		// lines would be counted twice, the ones read among them included.
		if p := f.print(); p.n >= fileid.MinCopyFingerprint && matches(p.n, p.sum) {
			found = true
		}
	}
	if found {
		return true
	}
	buf := make([]byte, len(head))
	for _, fd := range open {
		// An open file's first bytes, read now: its reader may not have read (or fingerprinted)
		// them yet (Kafka down, the budget full).
		n, _ := fd.ReadAt(buf, 0)
		if k := min(n, len(head)); k > 0 && bytes.Equal(buf[:k], head[:k]) {
			return true
		}
	}
	return false
}

// forgetUnlisted drops the .gz files the last scan did not list, and old fingerprints.
func (c *Collector) forgetUnlisted() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prunePrintsLocked(time.Now())
	for id, gen := range c.unseen.checked {
		if gen != c.scanGen {
			delete(c.unseen.checked, id)
		}
	}
}
