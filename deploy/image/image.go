// Package image assembles logrouter's container image from scratch, without a Docker daemon or
// a base image: one layer holding the static binary, CA certificates and a non-root user, and
// an OCI config with the entrypoint, that user and the org.opencontainers.image.* labels.
// The output is a pure function of its inputs (binary, labels, created time), so the same
// commit gives the same digest.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// What the image promises; the Dockerfile's distroless stages give the same.
const (
	// Entrypoint is the binary's path in the image.
	Entrypoint = "/logrouter"
	// UID and GID of the user the image runs as: distroless' "nonroot".
	UID = 65532
	GID = 65532
	// User is the config's User field: numeric, so that runAsNonRoot can verify it without
	// reading /etc/passwd.
	User = "65532:65532"
	// CACertsPath is where Go's crypto/x509 looks first on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// OCI annotation keys used as labels (image-spec annotations.md).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
	LabelLicenses = "org.opencontainers.image.licenses"
)

// ErrNotStatic is returned for a binary that needs a dynamic loader, which the image lacks.
var ErrNotStatic = errors.New("binary is dynamically linked")

// Spec is one image for one platform.
type Spec struct {
	// Binary is the path of a static Linux executable (CGO_ENABLED=0).
	Binary string
	// Arch is its GOARCH (amd64, arm64); the binary's ELF machine must match.
	Arch string
	// Created is the image's creation time, also every file's mtime. Take it from the commit
	// (or SOURCE_DATE_EPOCH), never the clock, to keep builds reproducible.
	Created time.Time
	// Labels go into the config; Labels(...) builds the required set.
	Labels map[string]string
	// CACerts is a PEM bundle; empty means BundledRoots().
	CACerts []byte
}

// Labels returns the org.opencontainers.image.* labels every image carries.
func Labels(title, source, version, revision string, created time.Time) map[string]string {
	return map[string]string{
		LabelTitle:    title,
		LabelSource:   source,
		LabelVersion:  version,
		LabelRevision: revision,
		LabelCreated:  created.UTC().Format(time.RFC3339),
	}
}

// Validate reports every problem with s at once.
func (s Spec) Validate() error {
	var errs []error
	if s.Binary == "" {
		errs = append(errs, errors.New("no binary"))
	}
	if _, ok := elfMachine[s.Arch]; !ok {
		errs = append(errs, fmt.Errorf("arch %q: want one of amd64, arm64", s.Arch))
	}
	if s.Created.IsZero() {
		errs = append(errs, errors.New("no created time (set SOURCE_DATE_EPOCH or build from a git checkout)"))
	}
	for _, k := range []string{LabelSource, LabelVersion, LabelRevision, LabelCreated} {
		if s.Labels[k] == "" {
			errs = append(errs, fmt.Errorf("label %s is empty", k))
		}
	}
	if len(s.CACerts) > 0 {
		if p, _ := pem.Decode(s.CACerts); p == nil || p.Type != "CERTIFICATE" {
			errs = append(errs, errors.New("CA bundle holds no PEM certificate"))
		}
	}
	return errors.Join(errs...)
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// Build assembles the image.
func Build(s Spec) (v1.Image, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("image spec: %w", err)
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	if err := checkStatic(bin, elfMachine[s.Arch]); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Binary, err)
	}
	certs := s.CACerts
	if len(certs) == 0 {
		certs = BundledRoots()
	}
	layerTar, err := rootfs(bin, certs, s.Created)
	if err != nil {
		return nil, err
	}
	// gzip level 6: on the full binary level 9 took 4x as long (44 s here) to save 0.1 MiB.
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression),
		tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	created := v1.Time{Time: s.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "logrouter deploy/image", Comment: "static binary, CA certificates, nonroot user"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", s.Arch, created
	cf.Config = v1.Config{
		Entrypoint: []string{Entrypoint},
		User:       User,
		WorkingDir: "/",
		// No shell, so nothing to look up; SSL_CERT_FILE states where the bundle is.
		Env:    []string{"SSL_CERT_FILE=" + CACertsPath},
		Labels: s.Labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

// checkStatic refuses what would fail in a scratch image with a bare "no such file or
// directory": a binary needing ld.so (PT_INTERP, PT_DYNAMIC) or built for another machine.
func checkStatic(bin []byte, want elf.Machine) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("built for %v, the image is for %v (set GOARCH)", f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("%w (%v segment): build with CGO_ENABLED=0", ErrNotStatic, p.Type)
		}
	}
	return nil
}

// BundledRoots is the Mozilla NSS root set vendored by golang.org/x/crypto/x509roots/fallback,
// as PEM. It is pinned by go.sum, so the image does not depend on the build machine's
// ca-certificates package; it is updated with `go get golang.org/x/crypto/x509roots/fallback`.
// Roots with a distrust-after constraint are left out: a PEM file cannot carry the constraint,
// and trusting them unconditionally would accept certificates NSS no longer accepts.
func BundledRoots() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// rootfs is the layer's tar: sorted, owned by root except the user's home and /tmp, every
// mtime the created time, so that it is byte-for-byte reproducible.
func rootfs(bin, certs []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", GID)
	type entry struct {
		name     string
		mode     int64
		uid, gid int
		data     []byte // nil for a directory
	}
	entries := []entry{
		{"etc/", 0o755, 0, 0, nil},
		{"etc/group", 0o644, 0, 0, []byte(group)},
		// Go's resolver reads it to order /etc/hosts before DNS, as glibc does.
		{"etc/nsswitch.conf", 0o644, 0, 0, []byte("hosts: files dns\n")},
		{"etc/passwd", 0o644, 0, 0, []byte(passwd)},
		{"etc/ssl/", 0o755, 0, 0, nil},
		{"etc/ssl/certs/", 0o755, 0, 0, nil},
		{path.Clean(CACertsPath[1:]), 0o644, 0, 0, certs},
		{"home/", 0o755, 0, 0, nil},
		{"home/nonroot/", 0o700, UID, GID, nil},
		{Entrypoint[1:], 0o755, 0, 0, bin},
		{"tmp/", 0o1777, 0, 0, nil},
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime.UTC()}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
