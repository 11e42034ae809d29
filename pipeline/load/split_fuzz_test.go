package load

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// FuzzSplitLikeKubectl: documents are cut where kubectl's YAML reader cuts them, and a
// separator kubectl refuses is refused here too.
func FuzzSplitLikeKubectl(f *testing.F) {
	for _, s := range []string{web + "---\n" + pol, "---\n---\n", "a: 1\n--- # c\nb: 2\n", "a: 1\n--- b: 2\n",
		"a: 1\r\n---\r\nb: 2\r\n", "a: |\n  ---\n  x\n", "----\na: 1\n", "a: 1\n---", "\n\n---\n# only\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
			return // kubectl keeps a byte order mark; this package drops it
		}
		var theirs [][]byte
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		var kerr error
		for {
			d, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				kerr = err
				break
			}
			// kubectl keeps a separator that opens a document (a YAML document marker, which its
			// YAML parser then skips); compare without it.
			if d = dropSeparators(d); !empty(d) {
				theirs = append(theirs, bytes.TrimSpace(d))
			}
		}
		docs, err := split(data)
		if (err != nil) != (kerr != nil) {
			t.Fatalf("split error %v, kubectl's %v", err, kerr)
		}
		if err != nil {
			return
		}
		var ours [][]byte
		for _, d := range docs {
			// kubectl's line reader turns CRLF into LF; YAML reads both as one line break.
			if dd := dropSeparators(bytes.ReplaceAll(d.data, []byte("\r\n"), []byte("\n"))); !empty(dd) {
				ours = append(ours, bytes.TrimSpace(dd))
			}
		}
		if len(ours) != len(theirs) {
			t.Fatalf("%d documents, kubectl %d:\n%q\n%q", len(ours), len(theirs), ours, theirs)
		}
		for i := range ours {
			if !bytes.Equal(ours[i], theirs[i]) {
				t.Fatalf("document %d: %q, kubectl %q", i+1, ours[i], theirs[i])
			}
		}
	})
}

func dropSeparators(d []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(d, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(l, []byte("---")); ok {
			if t := bytes.TrimSpace(rest); len(t) == 0 || t[0] == '#' {
				continue
			}
		}
		out = append(out, l...)
	}
	return out
}
