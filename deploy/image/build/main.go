// Command build builds logrouter's container image without a Docker daemon or a registry: it
// compiles a static binary (CGO_ENABLED=0, -trimpath) per platform and assembles the image from
// scratch with deploy/image, writing a `docker load`-able tarball and/or an OCI image layout.
//
//	go run ./deploy/image/build -variant full -tarball logrouter.tar
//	go run ./deploy/image/build -variant collector -oci-layout logrouter-collector.oci
//
// Labels come from git (revision, `git describe` version, commit time as created) unless given;
// SOURCE_DATE_EPOCH overrides the created time. See docs/image.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/logrouter/logrouter/deploy/image"
)

// variant is one image: the full binary, or the collector-only build for the DaemonSet.
type variant struct {
	repo string // default repository name of the tag, also the title label
	tags string // go build -tags
}

var variants = map[string]variant{
	"full":      {repo: "logrouter"},
	"collector": {repo: "logrouter-collector", tags: "collector"},
}

// goBuildFlags are the flags the Dockerfile's build stages use too (TestDockerfile checks it).
var goBuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// pkg is the product binary's package, relative to the module root.
const pkg = "./cmd/logrouter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	variant, platforms, tarball, layout, tag, version, revision, source, caCerts string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.variant, "variant", "full", "full (every command) or collector (only collect, for the DaemonSet)")
	fs.StringVar(&o.platforms, "platforms", "linux/amd64", "comma-separated platforms (linux/amd64, linux/arm64); a tarball takes one")
	fs.StringVar(&o.tarball, "tarball", "", "write a `docker load`-able tarball to this file")
	fs.StringVar(&o.layout, "oci-layout", "", "write an OCI image layout into this directory")
	fs.StringVar(&o.tag, "tag", "", "image reference (default <variant repo>:<version>, e.g. logrouter:v1.2.0)")
	fs.StringVar(&o.version, "version", "", "org.opencontainers.image.version (default `git describe --tags --always --dirty`)")
	fs.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (default `git rev-parse HEAD`)")
	fs.StringVar(&o.source, "source", "https://github.com/logrouter/logrouter", "org.opencontainers.image.source")
	fs.StringVar(&o.caCerts, "ca-certs", "", "PEM CA bundle to ship (default: the Mozilla roots pinned by golang.org/x/crypto/x509roots/fallback)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "build: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := build(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "build: %v\n", err)
		return 1
	}
	return 0
}

func build(ctx context.Context, o options, stdout io.Writer) error {
	v, ok := variants[o.variant]
	if !ok {
		return fmt.Errorf("-variant %q: want full or collector", o.variant)
	}
	if o.tarball == "" && o.layout == "" {
		return errors.New("nothing to write: give -tarball FILE and/or -oci-layout DIR")
	}
	archs, err := parsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	if o.tarball != "" && len(archs) > 1 {
		return fmt.Errorf("-tarball holds one platform, -platforms has %d: write several with -oci-layout, or one tarball per platform", len(archs))
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	meta, err := gitMeta(ctx, root, o, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	if o.tag == "" {
		o.tag = v.repo + ":" + meta.version
	}
	ref, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	var certs []byte
	if o.caCerts != "" {
		if certs, err = os.ReadFile(o.caCerts); err != nil {
			return fmt.Errorf("-ca-certs: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "logrouter-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var imgs []v1.Image
	for _, arch := range archs {
		bin := filepath.Join(tmp, "logrouter-"+arch)
		if err := goBuild(ctx, root, arch, v.tags, bin); err != nil {
			return err
		}
		img, err := image.Build(image.Spec{
			Binary: bin, Arch: arch, Created: meta.created, CACerts: certs,
			Labels: image.Labels(v.repo, o.source, meta.version, meta.revision, meta.created),
		})
		if err != nil {
			return err
		}
		if err := describe(stdout, ref, arch, img, bin); err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	if o.tarball != "" {
		if err := image.WriteTarball(o.tarball, ref, imgs[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: docker load -i %s\n", o.tarball, o.tarball)
	}
	if o.layout != "" {
		if err := image.WriteLayout(o.layout, ref, imgs); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote OCI layout %s: crane push %s REGISTRY/IMAGE:TAG\n", o.layout, o.layout)
	}
	return nil
}

func parsePlatforms(s string) ([]string, error) {
	var archs []string
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		arch, ok := strings.CutPrefix(p, "linux/")
		if !ok || (arch != "amd64" && arch != "arm64") {
			return nil, fmt.Errorf("-platforms: %q: want linux/amd64 or linux/arm64", p)
		}
		if !seen[arch] {
			seen[arch] = true
			archs = append(archs, arch)
		}
	}
	return archs, nil
}

// describe prints what was built: digest and sizes, the figures docs/image.md quotes.
func describe(w io.Writer, ref name.Tag, arch string, img v1.Image, bin string) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	size, err := ls[0].Size()
	if err != nil {
		return err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s linux/%s %s: layer %.1f MiB compressed, binary %.1f MiB\n", ref.String(), arch, d, mib(size), mib(st.Size()))
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// goBuild compiles the static binary, with the flags the Dockerfile uses.
func goBuild(ctx context.Context, root, arch, tags, out string) error {
	args := append([]string{"build"}, goBuildFlags...)
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (GOARCH=%s): %w\n%s", strings.Join(args, " "), arch, err, stderr.Bytes())
	}
	return nil
}

// moduleRoot finds the module's directory, so that the tool runs from anywhere inside it.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the logrouter module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

type meta struct {
	version, revision string
	created           time.Time
}

// gitMeta fills what the flags left out from git, and the created time from SOURCE_DATE_EPOCH
// or the commit time: never the clock, so that a commit always gives the same image.
func gitMeta(ctx context.Context, root string, o options, sourceDateEpoch string) (meta, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w (pass -version/-revision and SOURCE_DATE_EPOCH to build outside a git checkout)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	m := meta{version: o.version, revision: o.revision}
	var err error
	if m.revision == "" {
		if m.revision, err = git("rev-parse", "HEAD"); err != nil {
			return m, err
		}
	}
	if m.version == "" {
		if m.version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return m, err
		}
	}
	epoch := sourceDateEpoch
	if epoch == "" {
		if epoch, err = git("log", "-1", "--format=%ct", m.revision); err != nil {
			return m, err
		}
	}
	m.created, err = parseEpoch(epoch)
	return m, err
}

// parseEpoch reads SOURCE_DATE_EPOCH's format (reproducible-builds.org): decimal seconds.
func parseEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970 as a positive integer", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
