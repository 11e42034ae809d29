// Package checkpoint stores how far the collector has read each file, identified by device,
// inode and a fingerprint of its first bytes (not by path: kubelet renames files on rotation and
// reuses inodes). The whole set is written atomically: temp file, fsync, rename, fsync of the
// directory, so a crash at any point leaves either the old or the new set.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/logrouter/logrouter/router/assemble"
)

// FileName is the checkpoint file's name inside the checkpoint directory.
const FileName = "checkpoints.json"

// formatVersion changes when the file's layout does. Version 2 added size and namespace; Load
// reads 1 and 2 (a version 1 entry has neither, so its loss cannot be counted).
const formatVersion = 2

// Entry is the position of one file.
type Entry struct {
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	// FingerprintLen bytes from the file's start hash to Fingerprint (fileid.Fingerprint: it tells a rotated-in file that reuses an inode from the one checkpointed).
	FingerprintLen int    `json:"fp_len"`
	Fingerprint    uint64 `json:"fp"`
	// Path is where the file was last seen (informational; identity is Dev+Inode+Fingerprint).
	Path string `json:"path"`
	// Offset is the end of the last line such that it and every line before it was acknowledged.
	Offset int64 `json:"offset"`
	// State is the assembler's state at Offset (non-zero only inside a cut or split line).
	State assemble.State `json:"state"`
	// Format is the detected log format ("cri" or "docker").
	Format string `json:"format,omitempty"`
	// Rotated means the file was no longer the live file of its container when saved.
	Rotated bool `json:"rotated,omitempty"`
	// Size is the file's size when saved: if the file is gone at the next start, the bytes from
	// Offset to Size were deleted before they were read (counted as lost).
	Size int64 `json:"size,omitempty"`
	// Namespace is the file's namespace, for counting such a loss.
	Namespace string    `json:"namespace,omitempty"`
	Updated   time.Time `json:"updated"`
}

type fileFormat struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

// Store reads and writes the checkpoint file in one directory.
type Store struct {
	dir string
}

// Open returns the store in dir, creating dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint dir %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Path is the checkpoint file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// ErrCorrupt is returned by Load for a checkpoint file that cannot be decoded.
var ErrCorrupt = errors.New("corrupt checkpoint file")

// Load returns the saved entries; none when there is no file yet.
func (s *Store) Load() ([]Entry, error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrCorrupt, s.Path(), err)
	}
	if f.Version != formatVersion && f.Version != 1 {
		return nil, fmt.Errorf("%w %s: version %d, want 1 or %d", ErrCorrupt, s.Path(), f.Version, formatVersion)
	}
	return f.Entries, nil
}

// Save replaces the saved entries atomically.
func (s *Store) Save(entries []Entry) error {
	if entries == nil {
		entries = []Entry{}
	}
	b, err := json.Marshal(fileFormat{Version: formatVersion, Entries: entries})
	if err != nil {
		return fmt.Errorf("encode checkpoints: %w", err)
	}
	if err := WriteFileAtomic(s.dir, FileName, b); err != nil {
		return fmt.Errorf("save checkpoints: %w", err)
	}
	return nil
}

// WriteFileAtomic replaces dir/name with b atomically and durably: temp file, fsync, rename,
// fsync of the directory, so a crash at any point leaves either the old or the new content.
func WriteFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
