package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tinyBinary cross-compiles a minimal static program: the layout code under test does not care
// what the binary does, and building logrouter for arm64 here would cost minutes.
func tinyBinary(t *testing.T, arch string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// Several platforms go into one layout as one multi-platform index under the tag; one platform
// goes in directly; a tarball reads back as the same image.
func TestWriteLayoutPlatforms(t *testing.T) {
	var imgs []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		s := validSpec(tinyBinary(t, arch))
		s.Arch = arch
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	ref, err := name.NewTag("registry.example.com/logrouter:v1")
	if err != nil {
		t.Fatal(err)
	}

	multi := filepath.Join(t.TempDir(), "multi.oci")
	if err := WriteLayout(multi, ref, imgs); err != nil {
		t.Fatal(err)
	}
	// Writing again over a layout replaces its index rather than appending a duplicate.
	if err := WriteLayout(multi, ref, imgs); err != nil {
		t.Fatal(err)
	}
	top, err := layout.ImageIndexFromPath(multi)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || !tm.Manifests[0].MediaType.IsIndex() || tm.Manifests[0].Annotations[annotationRefName] != "v1" {
		t.Fatalf("index.json %+v: want one index tagged v1", tm.Manifests)
	}
	inner, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := inner.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for i, d := range im.Manifests {
		plats = append(plats, d.Platform.String())
		if want, _ := imgs[i].Digest(); d.Digest != want {
			t.Errorf("%s: digest %v, want %v", d.Platform, d.Digest, want)
		}
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %q", plats)
	}

	single := filepath.Join(t.TempDir(), "single.oci")
	if err := WriteLayout(single, ref, imgs[:1]); err != nil {
		t.Fatal(err)
	}
	sm, err := layout.ImageIndexFromPath(single)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sm.IndexManifest()
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsImage() || m.Manifests[0].Platform.String() != "linux/amd64" {
		t.Errorf("single-platform index.json %+v: want one linux/amd64 image", m.Manifests)
	}

	tb := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteTarball(tb, ref, imgs[1]); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(tb, &ref)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := back.ConfigName()
	if want, _ := imgs[1].ConfigName(); got != want {
		t.Errorf("tarball config %v, want %v", got, want)
	}
	if _, err := os.Stat(tb + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// A directory with someone's files in it is not overwritten.
func TestWriteLayoutRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag("logrouter:v1")
	err := WriteLayout(dir, ref, []v1.Image{empty.Image})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("WriteLayout into a foreign directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "keep me" {
		t.Error("foreign file changed")
	}
	if err := WriteLayout(t.TempDir(), ref, nil); err == nil {
		t.Error("empty image list accepted")
	}
}
