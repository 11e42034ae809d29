package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ManifestFile describes the checked-in corpus: every case, its file and the lines it must
// deliver (messages Go-quoted, so the manifest is readable and exact).
const ManifestFile = "MANIFEST.json"

type manifestLine struct {
	Message    string `json:"message"`
	Bytes      int    `json:"bytes"`
	Stream     string `json:"stream,omitempty"`
	ParseError bool   `json:"parse_error,omitempty"`
	Split      bool   `json:"split,omitempty"`
	Held       bool   `json:"held,omitempty"`
}

type manifestCase struct {
	Name   string         `json:"name"`
	Format Format         `json:"format"`
	What   string         `json:"what"`
	File   string         `json:"file,omitempty"`
	Big    string         `json:"generated_at_test_time,omitempty"`
	Want   []manifestLine `json:"want,omitempty"`
}

type manifest struct {
	Generator string         `json:"generator"`
	Cases     []manifestCase `json:"cases"`
	Layouts   []Layout       `json:"filesystem_cases"`
}

// Files returns the checked-in corpus by file name: each small case's file and the manifest.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	m := manifest{Generator: "go run ./integration/hostile/gen -out integration/hostile/testdata", Layouts: Layouts()}
	for _, c := range Cases() {
		mc := manifestCase{Name: c.Name, Format: c.Format, What: c.What}
		if c.Big {
			mc.Big = fmt.Sprintf("%d bytes, too big to check in", len(c.Data))
		} else {
			mc.File = c.File()
			out[c.File()] = c.Data
			for _, l := range c.Want {
				mc.Want = append(mc.Want, manifestLine{Message: strconv.Quote(string(l.Message)), Bytes: len(l.Message),
					Stream: l.Stream, ParseError: l.ParseError, Split: l.Split, Held: l.Held})
			}
		}
		m.Cases = append(m.Cases, mc)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("hostile: manifest: %w", err)
	}
	out[ManifestFile] = b.Bytes()
	return out, nil
}

// WriteDir writes the checked-in corpus into dir, removing files of cases that no longer exist.
func WriteDir(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hostile: %w", err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("hostile: %w", err)
	}
	for _, e := range old {
		if _, ok := files[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("hostile: %w", err)
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("hostile: %w", err)
		}
	}
	return nil
}
