// Package fileid identifies log files by device, inode and a fingerprint of their first bytes.
// The path is not an identity: kubelet renames files when it rotates them. The inode alone is
// not one either: a deleted file's inode is reused. The fingerprint also recognizes a file's
// copy (copytruncate rotation), which has a new inode but the same first bytes.
package fileid

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cespare/xxhash/v2"
)

// FingerprintSize is how many leading bytes make a full fingerprint.
const FingerprintSize = 1024

// MinCopyFingerprint is the shortest fingerprint trusted to say one file is a copy of another:
// below it, unrelated files that start alike would be confused.
const MinCopyFingerprint = 64

// ID is a file's device and inode.
type ID struct {
	Dev   uint64
	Inode uint64
}

// Of returns the ID of a stat result.
func Of(fi os.FileInfo) (ID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ID{}, errors.New("no device/inode in file info")
	}
	return ID{Dev: uint64(st.Dev), Inode: uint64(st.Ino)}, nil //nolint:unconvert // types differ by platform
}

// Fingerprint hashes the first min(FingerprintSize, size) bytes of r.
func Fingerprint(r io.ReaderAt) (n int, sum uint64, err error) {
	var buf [FingerprintSize]byte
	n, err = r.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, fmt.Errorf("fingerprint: %w", err)
	}
	return n, xxhash.Sum64(buf[:n]), nil
}

// Matches reports whether the first n bytes of r hash to sum (false if r is shorter than n).
func Matches(r io.ReaderAt, n int, sum uint64) (bool, error) {
	if n == 0 {
		return true, nil
	}
	if n > FingerprintSize {
		return false, nil
	}
	var buf [FingerprintSize]byte
	got, err := r.ReadAt(buf[:n], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("fingerprint: %w", err)
	}
	return got == n && xxhash.Sum64(buf[:n]) == sum, nil
}

// Head returns the hash of the first MinCopyFingerprint bytes of r if its first n bytes still
// hash to sum (ok false otherwise, or if n is shorter): read in one go, so head and sum are of
// one content. A copy still being written is told by its head before it has the original's
// whole fingerprint.
func Head(r io.ReaderAt, n int, sum uint64) (head uint64, ok bool, err error) {
	if n < MinCopyFingerprint || n > FingerprintSize {
		return 0, false, nil
	}
	var buf [FingerprintSize]byte
	got, err := r.ReadAt(buf[:n], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false, fmt.Errorf("fingerprint: %w", err)
	}
	if got != n || xxhash.Sum64(buf[:n]) != sum {
		return 0, false, nil
	}
	return xxhash.Sum64(buf[:MinCopyFingerprint]), true, nil
}
