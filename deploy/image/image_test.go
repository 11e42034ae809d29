package image

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

func validSpec(bin string) Spec {
	created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	return Spec{Binary: bin, Arch: "amd64", Created: created,
		Labels: Labels("logrouter", "https://example.com/src", "v1", "abc", created)}
}

// A binary that would not start in a scratch image is refused at build time, with what to do.
func TestBuildRefuses(t *testing.T) {
	// Debian's coreutils are dynamically linked x86-64 executables: a real cgo-like binary.
	dynamic := "/usr/bin/true"
	if _, err := os.Stat(dynamic); err != nil {
		t.Fatalf("need a dynamically linked executable: %v", err)
	}
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		spec   func() Spec
		is     error
		substr []string
	}{
		{"dynamic", func() Spec { return validSpec(dynamic) }, ErrNotStatic, []string{"CGO_ENABLED=0", "PT_INTERP"}},
		{"wrong arch", func() Spec { s := validSpec(dynamic); s.Arch = "arm64"; return s }, nil, []string{"set GOARCH"}},
		{"script", func() Spec { return validSpec(text) }, nil, []string{"not an ELF"}},
		{"missing", func() Spec { return validSpec(filepath.Join(t.TempDir(), "none")) }, os.ErrNotExist, nil},
		{"every spec problem at once", func() Spec { return Spec{Arch: "386", CACerts: []byte("junk")} }, nil, []string{
			"no binary", "no PEM certificate", `arch "386"`, "no created time", LabelSource, LabelVersion, LabelRevision, LabelCreated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.spec())
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// The shipped bundle is every unconstrained NSS root, each a parseable certificate.
func TestBundledRoots(t *testing.T) {
	var want, constrained int
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			constrained++
			continue
		}
		want++
	}
	rest := BundledRoots()
	var got int
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", got, err)
		}
		got++
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		t.Errorf("trailing bytes after the PEM blocks: %q", rest)
	}
	if got != want || got < 100 {
		t.Errorf("bundle holds %d certificates, want %d (of %d roots, %d with distrust-after)", got, want, want+constrained, constrained)
	}
	t.Logf("%d roots bundled, %d constrained ones left out, %d bytes", got, constrained, len(BundledRoots()))
}
