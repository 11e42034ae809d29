// Package loadgen lays out container logs the way kubelet and the container runtimes do, for the
// collector's tests, the dev mode's demo workload and the benchmark: /var/log/pods/<ns>_<pod>_<uid>/<container>/0.log
// files written in CRI or docker json-file format, /var/log/containers symlinks to them, and
// both kinds of rotation (rename-and-create as kubelet does, and copytruncate).
package loadgen

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Node is one node's log directories.
type Node struct {
	LogDir  string // like /var/log/containers
	PodsDir string // like /var/log/pods
}

// NewNode creates the directories under root.
func NewNode(root string) (*Node, error) {
	n := &Node{LogDir: filepath.Join(root, "containers"), PodsDir: filepath.Join(root, "pods")}
	for _, d := range []string{n.LogDir, n.PodsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
	}
	return n, nil
}

// Format of a container's log file.
type Format int

// Formats.
const (
	CRI Format = iota
	Docker
)

// Container is one container's log file, safe for concurrent use.
type Container struct {
	Namespace, Pod, PodUID, Name, ID string
	Format                           Format

	mu   sync.Mutex
	dir  string
	path string // the live file
	link string
	f    *os.File
	rot  int
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// AddContainer creates a container's live log file and its symlink, for a pod with a random UID.
func (n *Node) AddContainer(namespace, pod, name string, format Format) (*Container, error) {
	uid := fmt.Sprintf("%s-%s-%s-%s-%s", randHex(4), randHex(2), randHex(2), randHex(2), randHex(6))
	return n.AddPodContainer(namespace, pod, uid, name, format)
}

// AddPodContainer is AddContainer for a pod whose UID is given (one that exists in an API
// server, so that the collector finds its metadata).
func (n *Node) AddPodContainer(namespace, pod, uid, name string, format Format) (*Container, error) {
	c := &Container{Namespace: namespace, Pod: pod, PodUID: uid, Name: name, ID: randHex(32), Format: format}
	c.dir = filepath.Join(n.PodsDir, fmt.Sprintf("%s_%s_%s", namespace, pod, uid), name)
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	c.path = filepath.Join(c.dir, "0.log")
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	c.f = f
	c.link = filepath.Join(n.LogDir, fmt.Sprintf("%s_%s_%s-%s.log", pod, namespace, name, c.ID))
	if err := os.Symlink(c.path, c.link); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	return c, nil
}

// Path is the live file's path.
func (c *Container) Path() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.path
}

// Line renders one physical line in the container's format.
func (c *Container) Line(ts time.Time, stream string, partial bool, msg string) []byte {
	if c.Format == Docker {
		if !partial {
			msg += "\n"
		}
		b, _ := json.Marshal(struct {
			Log    string `json:"log"`
			Stream string `json:"stream"`
			Time   string `json:"time"`
		}{msg, stream, ts.UTC().Format(time.RFC3339Nano)})
		return append(b, '\n')
	}
	tag := "F"
	if partial {
		tag = "P"
	}
	return []byte(ts.UTC().Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + msg + "\n")
}

// Write appends one complete line. Lines longer than 16 KiB are split into runtime partials,
// as containerd and docker do.
func (c *Container) Write(ts time.Time, stream, msg string) error {
	var b []byte
	for len(msg) > 16384 {
		b = append(b, c.Line(ts, stream, true, msg[:16384])...)
		msg = msg[16384:]
	}
	b = append(b, c.Line(ts, stream, false, msg)...)
	return c.WriteRaw(b)
}

// WriteRaw appends bytes as they are.
func (c *Container) WriteRaw(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(b); err != nil {
		return fmt.Errorf("loadgen: write %s: %w", c.path, err)
	}
	return nil
}

// RotateRename rotates like kubelet: the live file is renamed to 0.log.<timestamp> and a new
// 0.log is created for the next lines. It returns the rotated file's path.
func (c *Container) RotateRename() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rot++
	rotated := c.rotatedName()
	if err := os.Rename(c.path, rotated); err != nil {
		return "", fmt.Errorf("loadgen: rotate: %w", err)
	}
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("loadgen: rotate: %w", err)
	}
	c.f.Close()
	c.f = f
	return rotated, nil
}

// rotatedName is kubelet's name for a rotated file, 0.log.YYYYMMDD-hhmmss; the timestamp
// advances a second per rotation so fast test rotations never collide.
func (c *Container) rotatedName() string {
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.rot) * time.Second)
	return c.path + "." + ts.Format("20060102-150405")
}

// RotateCopyTruncate rotates like logrotate's copytruncate: the live file is copied to
// 0.log.<n> and then truncated in place. It returns the copy's path.
func (c *Container) RotateCopyTruncate() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rot++
	cp := c.rotatedName()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return "", fmt.Errorf("loadgen: copytruncate: %w", err)
	}
	if err := os.WriteFile(cp, data, 0o644); err != nil {
		return "", fmt.Errorf("loadgen: copytruncate: %w", err)
	}
	if err := c.f.Truncate(0); err != nil {
		return "", fmt.Errorf("loadgen: copytruncate: %w", err)
	}
	return cp, nil
}

// Rotated lists the container's rotated files, oldest first.
func (c *Container) Rotated() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, _ := filepath.Glob(c.path + ".*")
	return m
}

// Close closes the live file.
func (c *Container) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Close()
}

// SeqMessage is the message of line seq of a container, padded to about size bytes: an
// application JSON line whose "seq" field tests read back.
func SeqMessage(key string, seq int, size int) string {
	s := fmt.Sprintf(`{"level":"info","src":%q,"seq":%d,"msg":"request served","path":"/api/v1/items"`, key, seq)
	if pad := size - len(s) - 12; pad > 0 {
		s += `,"pad":"` + strings.Repeat("x", pad) + `"`
	}
	return s + "}"
}

// ParseSeq extracts key and seq from a SeqMessage.
func ParseSeq(msg string) (key string, seq int, ok bool) {
	var v struct {
		Src string `json:"src"`
		Seq *int   `json:"seq"`
	}
	if json.Unmarshal([]byte(msg), &v) != nil || v.Seq == nil {
		return "", 0, false
	}
	return v.Src, *v.Seq, true
}

// LiveMessage is a line that carries its write time wt, padded to about size bytes: what
// latency measurements write (bench collect's live phase, BenchmarkLimitIsolation) and
// LiveWriteTime reads back from the record.
func LiveMessage(wt time.Time, seq, size int) string {
	return fmt.Sprintf(`{"wt":%d,"seq":%d,"pad":"%s"}`, wt.UnixNano(), seq, strings.Repeat("x", max(0, size-40)))
}

// LiveWriteTime returns the write time of a LiveMessage; ok is false for any other message.
func LiveWriteTime(msg string) (wt time.Time, ok bool) {
	v, ok := strings.CutPrefix(msg, `{"wt":`)
	if !ok {
		return time.Time{}, false
	}
	i := strings.IndexByte(v, ',')
	if i < 0 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Gzip replaces p by p.gz as kubelet compresses a rotated log: into p.gz.tmp, renamed to p.gz,
// then p removed.
func Gzip(p string) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(p + ".gz.tmp")
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(p+".gz.tmp", p+".gz"); err != nil {
		return err
	}
	return os.Remove(p)
}
