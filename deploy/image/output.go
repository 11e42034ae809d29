package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the layout's index.json entry: the OCI tag (what skopeo's oci:DIR:TAG and
// crane match) and the full name containerd and `docker load` of an OCI archive use.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// WriteTarball writes img, tagged ref, as a tarball `docker load` reads (and `crane push` pushes).
// It writes a temporary file first, so a failed build never leaves a truncated tarball.
func WriteTarball(file string, ref name.Tag, img v1.Image) error {
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tarball %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tarball %s: %w", file, err)
	}
	return nil
}

// WriteLayout writes an OCI image layout at dir holding imgs under ref: one image goes into
// index.json directly, several (one per platform) as one multi-platform index. An existing
// layout's index.json is replaced (its blobs stay); a directory holding anything else is refused.
func WriteLayout(dir string, ref name.Tag, imgs []v1.Image) error {
	if len(imgs) == 0 {
		return errors.New("oci layout: no image")
	}
	if err := checkLayoutDir(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	ann := layout.WithAnnotations(map[string]string{
		annotationRefName:        ref.TagStr(),
		annotationContainerdName: ref.String(),
	})
	if len(imgs) == 1 {
		plat, err := platform(imgs[0])
		if err != nil {
			return err
		}
		if err := p.AppendImage(imgs[0], ann, layout.WithPlatform(plat)); err != nil {
			return fmt.Errorf("oci layout %s: %w", dir, err)
		}
		return nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range imgs {
		plat, err := platform(img)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	if err := p.AppendIndex(idx, ann); err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}

func checkLayoutDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("oci layout %s: directory is not empty and not an OCI layout; refusing to write into it (choose an empty or new directory)", dir)
	}
	return nil
}

func platform(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture}, nil
}
