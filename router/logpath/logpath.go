// Package logpath parses the paths kubelet gives container log files:
//
//	/var/log/containers/<pod>_<namespace>_<container>-<containerID>.log   (symlinks to ...)
//	/var/log/pods/<namespace>_<pod>_<podUID>/<container>/<restartCount>.log
//
// and recognizes their rotated siblings. Kubernetes names cannot contain '_', which is what makes
// the split unambiguous; names are validated as the API server validates them.
package logpath

import (
	"errors"
	"fmt"
	"strings"

	"github.com/logrouter/logrouter/router/filemeta"
)

// ErrInvalidPath is wrapped by every error of this package.
var ErrInvalidPath = errors.New("not a kubelet container log path")

// PathError says which path was rejected and why.
type PathError struct {
	Kind   string // "containers" or "pods"
	Path   string
	Reason string
}

func (e *PathError) Error() string { return fmt.Sprintf("%s path %q: %s", e.Kind, e.Path, e.Reason) }

// Unwrap returns ErrInvalidPath.
func (e *PathError) Unwrap() error { return ErrInvalidPath }

const containerIDLen = 64

// ParseContainerLink parses a /var/log/containers file name (or full path; only the base name
// counts): "<pod>_<namespace>_<container>-<containerID>.log". It sets Namespace, Pod, Container
// and ContainerID.
func ParseContainerLink(path string) (filemeta.PathMeta, error) {
	fail := func(format string, a ...any) (filemeta.PathMeta, error) {
		return filemeta.PathMeta{}, &PathError{Kind: "containers", Path: path, Reason: fmt.Sprintf(format, a...)}
	}
	base := path[strings.LastIndexByte(path, '/')+1:]
	name, ok := strings.CutSuffix(base, ".log")
	if !ok {
		return fail("file name %q does not end in .log", base)
	}
	pod, rest, ok1 := strings.Cut(name, "_")
	ns, rest, ok2 := strings.Cut(rest, "_")
	if !ok1 || !ok2 || strings.IndexByte(rest, '_') >= 0 {
		return fail("file name %q is not <pod>_<namespace>_<container>-<id>.log", base)
	}
	dash := strings.LastIndexByte(rest, '-')
	if dash < 0 {
		return fail("%q has no -<container id>", rest)
	}
	container, id := rest[:dash], rest[dash+1:]
	if err := checkSubdomain(pod); err != nil {
		return fail("pod %q is not a DNS-1123 subdomain: %v", pod, err)
	}
	if err := checkLabel(ns); err != nil {
		return fail("namespace %q is not a DNS-1123 label: %v", ns, err)
	}
	if err := checkLabel(container); err != nil {
		return fail("container %q is not a DNS-1123 label: %v", container, err)
	}
	if err := checkContainerID(id); err != nil {
		return fail("container id %q %v", id, err)
	}
	return filemeta.PathMeta{Namespace: ns, Pod: pod, Container: container, ContainerID: id}, nil
}

// ParsePodLog parses a /var/log/pods path, .../<namespace>_<pod>_<uid>/<container>/<file>, where
// file is "<restartCount>.log" or a kubelet-rotated name of it (see Rotated; compressed names
// included, which the caller must not read). It sets Namespace, Pod, PodUID, Container and File (= path).
func ParsePodLog(path string) (filemeta.PathMeta, error) {
	fail := func(format string, a ...any) (filemeta.PathMeta, error) {
		return filemeta.PathMeta{}, &PathError{Kind: "pods", Path: path, Reason: fmt.Sprintf(format, a...)}
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return fail("want <namespace>_<pod>_<uid>/<container>/<file>")
	}
	file, dir := path[i+1:], path[:i]
	i = strings.LastIndexByte(dir, '/')
	if i < 0 {
		return fail("want <namespace>_<pod>_<uid>/<container>/<file>")
	}
	container, dir := dir[i+1:], dir[:i]
	podDir := dir[strings.LastIndexByte(dir, '/')+1:]

	ns, rest, ok1 := strings.Cut(podDir, "_")
	pod, uid, ok2 := strings.Cut(rest, "_")
	if !ok1 || !ok2 || strings.IndexByte(uid, '_') >= 0 {
		return fail("directory %q is not <namespace>_<pod>_<uid>", podDir)
	}
	if err := checkLabel(ns); err != nil {
		return fail("namespace %q is not a DNS-1123 label: %v", ns, err)
	}
	if err := checkSubdomain(pod); err != nil {
		return fail("pod %q is not a DNS-1123 subdomain: %v", pod, err)
	}
	if uid == "" {
		return fail("empty pod UID")
	}
	if err := checkLabel(container); err != nil {
		return fail("container %q is not a DNS-1123 label: %v", container, err)
	}
	n, suffix, _ := strings.Cut(file, ".")
	if !isRestartCount(n) || (suffix != "log" && !isKubeletRotation(strings.TrimPrefix(suffix, "log"))) {
		return fail("file %q is not <restart count>.log or a rotated name of it", file)
	}
	return filemeta.PathMeta{Namespace: ns, Pod: pod, PodUID: uid, Container: container, File: path}, nil
}

// isKubeletRotation reports whether s (what follows "<n>.log") is a kubelet rotation suffix;
// docker's generations (".1") live in docker's own directory, never under /var/log/pods.
func isKubeletRotation(s string) bool {
	r, _ := rotationSuffix(s, false)
	return r
}

func isRestartCount(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Rotated reports whether base name `name` is a rotated sibling of live file `live` in the same
// directory: kubelet's "<live>.<YYYYMMDD-hhmmss>" (e.g. "0.log.20240101-120000") or docker's
// "<live>.<n>" (e.g. "<id>-json.log.1"). compressed is also true when the sibling is compressed
// (".gz", ".zip", ".bz2", ".xz", ".zst"), or being compressed: kubelet writes the gzip stream to
// "<live>.<timestamp>.tmp" and renames it to ".gz" when done. The collector reads neither.
func Rotated(live, name string) (rotated, compressed bool) {
	s, ok := strings.CutPrefix(name, live)
	if !ok || live == "" {
		return false, false
	}
	return rotationSuffix(s, true)
}

// rotationSuffix classifies what follows the live name in a rotated sibling's name; generations
// says whether docker's ".<n>" counts.
func rotationSuffix(s string, generations bool) (rotated, compressed bool) {
	if s == "" || s[0] != '.' {
		return false, false
	}
	s = s[1:]
	// kubelet writes .gz; docker and logrotate setups the others.
	for _, c := range [...]string{".gz", ".zip", ".bz2", ".xz", ".zst"} {
		if t, ok := strings.CutSuffix(s, c); ok {
			s, compressed = t, true
			break
		}
	}
	if !compressed {
		// kubelet's in-progress compression; a ".tmp" after a docker generation number is not.
		if t, ok := strings.CutSuffix(s, ".tmp"); ok && isTimestamp(t) {
			return true, true
		}
	}
	if isTimestamp(s) || (generations && isGeneration(s)) {
		return true, compressed
	}
	return false, false
}

// isTimestamp reports whether s is kubelet's rotation timestamp, "20060102-150405".
func isTimestamp(s string) bool {
	if len(s) != 15 || s[8] != '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i != 8 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// isGeneration reports whether s is docker's rotation number: 1, 2, ...
func isGeneration(s string) bool {
	return s != "" && s[0] != '0' && isRestartCount(s)
}

func checkContainerID(id string) error {
	if len(id) != containerIDLen {
		return fmt.Errorf("is %d characters long, want %d lowercase hex", len(id), containerIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("has %q at %d, want lowercase hex", c, i)
		}
	}
	return nil
}

const (
	maxLabel     = 63
	maxSubdomain = 253
)

// checkLabel checks RFC 1123 labels as Kubernetes does (validation.IsDNS1123Label):
// [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
func checkLabel(s string) error {
	if len(s) > maxLabel {
		return fmt.Errorf("%d characters, at most %d allowed", len(s), maxLabel)
	}
	return checkLabelChars(s, 0)
}

// checkSubdomain checks RFC 1123 subdomains as Kubernetes does (validation.IsDNS1123Subdomain):
// labels of [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by '.', at most 253 characters in all.
func checkSubdomain(s string) error {
	if len(s) > maxSubdomain {
		return fmt.Errorf("%d characters, at most %d allowed", len(s), maxSubdomain)
	}
	off := 0
	for {
		label, _, more := strings.Cut(s[off:], ".")
		if err := checkLabelChars(label, off); err != nil {
			return err
		}
		if !more {
			return nil
		}
		off += len(label) + 1
	}
}

// checkLabelChars checks the characters of one label; off is its position, for the message.
func checkLabelChars(s string, off int) error {
	if s == "" {
		return fmt.Errorf("empty label at %d", off)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		case c == '-':
			return fmt.Errorf("'-' at %d: must start and end with a lowercase letter or digit", off+i)
		default:
			return fmt.Errorf("%q at %d: only lowercase letters, digits and '-' allowed", c, off+i)
		}
	}
	return nil
}
