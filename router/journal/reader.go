package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Reader reads every journal file under its directories (journald's /var/log/journal and
// /run/log/journal, with their <machine-id>/ subdirectories) as streams: one per sequence-number
// ID, in sequence-number order across the stream's files (the active file, the archives that
// rotation made of it, and the user journals that share its numbering).
//
// A stream's entries are numbered without gaps by journald. A gap between the last entry read and
// the next one found means the entries in between are gone (vacuum deleted their file before
// they were read): Poll reports them as lost, exactly, once the gap is still there at the next
// Poll (an entry of another file may have been committed between two header reads).
type Reader struct {
	Dirs []string
	// MachineID, when set, limits the subdirectories read to <dir>/<MachineID>/ (journald's own);
	// others (journals copied in or received from other machines) are left alone.
	MachineID string
	// Fresh: streams without a checkpoint start at their oldest entry and count nothing lost
	// before it. When false (the collector has run before), a stream first seen later counts the
	// sequence numbers before its oldest entry as lost.
	Fresh bool

	files   map[fileKey]*tracked
	done    map[fileKey]doneFile // archived files read to their end and closed
	streams map[[16]byte]*Stream
	poll    uint64
}

type fileKey struct{ dev, ino uint64 }

// doneFile identifies a closed file: a new file can reuse a deleted one's inode, so its file ID
// is compared when its size or modification time changed.
type doneFile struct {
	id    [16]byte
	size  int64
	mtime int64
}

type tracked struct {
	*File
	peek    Entry
	peeked  bool
	gone    bool // no longer found by the scan
	drained bool // every committed entry returned at the last Poll
}

// Stream is one sequence-number ID's progress.
type Stream struct {
	ID [16]byte
	// Last is the sequence number of the last entry delivered or counted lost; 0: none yet.
	Last  uint64
	known bool // Last means "everything up to Last is done" (a checkpoint, or a non-fresh start)

	gapAt   uint64 // seqnum found after a gap at poll gapPoll
	gapPoll uint64
}

// Resume sets a stream's progress from a checkpoint: reading continues after last.
func (r *Reader) Resume(id [16]byte, last uint64) {
	r.init()
	r.streams[id] = &Stream{ID: id, Last: last, known: true}
}

func (r *Reader) init() {
	if r.files == nil {
		r.files, r.done, r.streams = map[fileKey]*tracked{}, map[fileKey]doneFile{}, map[[16]byte]*Stream{}
	}
}

// Streams returns the streams seen so far.
func (r *Reader) Streams() []*Stream {
	s := make([]*Stream, 0, len(r.streams))
	for _, st := range r.streams {
		s = append(s, st)
	}
	sort.Slice(s, func(i, j int) bool { return ID128(s[i].ID) < ID128(s[j].ID) })
	return s
}

// Handler receives what a Poll finds, in order within a stream: lost is the count of entries
// lost just before e (0 normally). e aliases the reader's buffers until the handler returns.
// Returning false stops the Poll (the entry is not consumed and comes again next Poll).
type Handler func(st *Stream, lost uint64, e *Entry) bool

// Poll scans the directories, reads every newly committed entry and hands it to h. It returns
// the errors of files that could not be read (each file's problem once per Poll); other files go on.
func (r *Reader) Poll(h Handler) error {
	r.init()
	r.poll++
	var errs []error
	r.scan(&errs)
	byStream := map[[16]byte][]*tracked{}
	for _, t := range r.files {
		if err := t.Refresh(); err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w", t.Path, err))
			continue
		}
		byStream[t.Hdr.SeqnumID] = append(byStream[t.Hdr.SeqnumID], t)
	}
	ids := make([][16]byte, 0, len(byStream))
	for id := range byStream {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ID128(ids[i]) < ID128(ids[j]) })
	for _, id := range ids {
		st := r.streams[id]
		if st == nil {
			st = &Stream{ID: id, known: !r.Fresh}
			r.streams[id] = st
		}
		if err := r.drainStream(st, byStream[id], h); err != nil {
			errs = append(errs, err)
		}
	}
	r.closeFinished()
	return errors.Join(errs...)
}

// drainStream hands h the stream's committed entries in seqnum order.
func (r *Reader) drainStream(st *Stream, files []*tracked, h Handler) error {
	var errs []error
	for _, t := range files {
		t.drained = false
	}
	for {
		var best *tracked
		for _, t := range files {
			if t.drained {
				continue
			}
			if !t.peeked {
				e, ok, err := t.Next(st.Last + 1)
				if err != nil {
					errs = append(errs, err)
					t.drained = true
					continue
				}
				if !ok {
					t.drained = true
					continue
				}
				t.peek, t.peeked = e, true
			}
			if best == nil || t.peek.Seqnum < best.peek.Seqnum {
				best = t
			}
		}
		if best == nil {
			return errors.Join(errs...)
		}
		e := &best.peek
		var lost uint64
		switch {
		case st.known && e.Seqnum <= st.Last:
			best.peeked = false // read already (a copy in another file)
			continue
		case st.known && e.Seqnum > st.Last+1:
			if st.gapAt != e.Seqnum || st.gapPoll == r.poll {
				// Seen for the first time: wait one Poll, so that an entry committed to
				// another file meanwhile is not taken for lost.
				if st.gapAt != e.Seqnum {
					st.gapAt, st.gapPoll = e.Seqnum, r.poll
				}
				return errors.Join(errs...)
			}
			lost = e.Seqnum - st.Last - 1
		}
		if !h(st, lost, e) {
			return errors.Join(errs...)
		}
		best.peeked = false
		st.Last, st.known, st.gapAt = e.Seqnum, true, 0
	}
}

// scan finds the directories' journal files and opens new ones.
func (r *Reader) scan(errs *[]error) {
	seen := map[fileKey]bool{}
	for _, dir := range r.Dirs {
		var paths []string
		sub := "*"
		if r.MachineID != "" {
			sub = r.MachineID
		}
		for _, pat := range []string{"*.journal", sub + "/*.journal"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			paths = append(paths, m...)
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				continue // vacuumed between the glob and the stat
			}
			sys, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || !fi.Mode().IsRegular() {
				continue
			}
			k := fileKey{uint64(sys.Dev), uint64(sys.Ino)}
			seen[k] = true
			if t := r.files[k]; t != nil {
				t.Path, t.gone = p, false // renamed by rotation: the same file
				continue
			}
			d, wasDone := r.done[k]
			if wasDone && d.size == fi.Size() && d.mtime == fi.ModTime().UnixNano() {
				continue
			}
			f, err := Open(p)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					*errs = append(*errs, err)
				}
				continue
			}
			if wasDone && f.Hdr.FileID == d.id {
				f.Close()
				r.done[k] = doneFile{d.id, fi.Size(), fi.ModTime().UnixNano()}
				continue
			}
			// A deleted file's inode can be reused by a new file: the file ID tells them apart.
			delete(r.done, k)
			if st := r.streams[f.Hdr.SeqnumID]; st != nil && st.known && f.Hdr.State == StateArchived && f.Hdr.TailSeqnum <= st.Last {
				f.Close() // an archive read before (or before the checkpoint)
				r.done[k] = doneFile{f.Hdr.FileID, fi.Size(), fi.ModTime().UnixNano()}
				continue
			}
			r.files[k] = &tracked{File: f}
		}
	}
	for k, t := range r.files {
		if !seen[k] {
			t.gone = true
		}
	}
	for k := range r.done {
		if !seen[k] {
			delete(r.done, k)
		}
	}
}

// closeFinished closes files that can give no more entries: archived (immutable) or deleted,
// and read to their end.
func (r *Reader) closeFinished() {
	for k, t := range r.files {
		if t.peeked || !t.drained || !(t.gone || t.Hdr.State == StateArchived) {
			continue
		}
		if t.seen < t.Hdr.NEntries {
			continue
		}
		t.Close()
		delete(r.files, k)
		if !t.gone {
			if fi, err := t.f.Stat(); err == nil {
				r.done[k] = doneFile{t.Hdr.FileID, fi.Size(), fi.ModTime().UnixNano()}
			}
		}
	}
}

// Close closes every open file.
func (r *Reader) Close() {
	for k, t := range r.files {
		t.Close()
		delete(r.files, k)
	}
}

// OpenFiles is the number of journal files held open.
func (r *Reader) OpenFiles() int { return len(r.files) }
