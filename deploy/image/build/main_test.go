package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/logrouter/logrouter/deploy/image"
)

const repoRoot = "../../.."

// documentedCommands returns the `go run ./deploy/image/build` lines of docs/image.md's sh blocks.
func documentedCommands(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "docs", "image.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	inSh := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```sh":
			inSh = true
		case strings.HasPrefix(line, "```"):
			inSh = false
		case inSh && strings.HasPrefix(line, "go run ./deploy/image/build "):
			cmds = append(cmds, strings.Fields(line)[3:])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// outputs are where a documented command writes, moved into dir.
type outputs struct {
	variant, tarball, layout string
}

// redirect rewrites the output flags' relative paths into dir; every other argument stays as
// documented.
func redirect(t *testing.T, args []string, dir string) ([]string, outputs) {
	t.Helper()
	out := outputs{variant: "full"}
	args = slices.Clone(args)
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if i+1 >= len(args) || strings.Contains(a, "=") {
			continue
		}
		switch a {
		case "tarball", "oci-layout":
			if filepath.IsAbs(args[i+1]) {
				t.Fatalf("documented %s path %q is absolute", args[i], args[i+1])
			}
			args[i+1] = filepath.Join(dir, args[i+1])
			if a == "tarball" {
				out.tarball = args[i+1]
			} else {
				out.layout = args[i+1]
			}
		case "variant":
			out.variant = args[i+1]
		}
		i++
	}
	return args, out
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repoRoot
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(b))
}

// buildTool compiles this command as a process, as `go run` would: the image build then runs
// without the race detector's cost even under `go test -race` (gzip of 100 MiB).
func buildTool(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "imagebuild")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return exe
}

// runTool runs one documented command from the repository root, with SOURCE_DATE_EPOCH unset
// (the documented default: the commit time).
func runTool(t *testing.T, exe string, args []string) string {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Dir = repoRoot
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestDocumentedImages runs docs/image.md's build commands as written and inspects what they
// wrote: the tarball and the OCI layout of both variants.
func TestDocumentedImages(t *testing.T) {
	exe := buildTool(t)
	cmds := documentedCommands(t)
	dir := t.TempDir()
	built := map[string]outputs{}
	var collectorArgs []string
	for _, args := range cmds {
		redirected, out := redirect(t, args, dir)
		if out.tarball == "" || out.layout == "" {
			t.Fatalf("documented command %q should write both a tarball and a layout", args)
		}
		t.Logf("build %s:\n%s", out.variant, runTool(t, exe, redirected))
		built[out.variant] = out
		if out.variant == "collector" {
			collectorArgs = args
		}
	}
	for v := range variants {
		if _, ok := built[v]; !ok {
			t.Fatalf("docs/image.md has no build command for -variant %s", v)
		}
	}
	revision := git(t, "rev-parse", "HEAD")
	commitTime, err := strconv.ParseInt(git(t, "log", "-1", "--format=%ct", "HEAD"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(commitTime, 0).UTC()

	for v, out := range built {
		t.Run(v, func(t *testing.T) {
			fromTar, err := tarball.ImageFromPath(out.tarball, nil)
			if err != nil {
				t.Fatalf("tarball: %v", err)
			}
			fromLayout := layoutImage(t, out.layout)
			// The two files hold one image: same config, same layers (the tarball's manifest
			// is docker-format, so the manifest digests differ by design).
			for _, img := range []v1.Image{fromTar, fromLayout} {
				inspectConfig(t, img, variants[v].repo, revision, created)
			}
			tc, _ := fromTar.ConfigName()
			lc, _ := fromLayout.ConfigName()
			if tc != lc {
				t.Errorf("tarball config %v, layout config %v", tc, lc)
			}
			bin, size := inspectFiles(t, fromLayout)
			inspectBinary(t, v, bin, size, fromLayout)
			push(t, out, fromLayout)
		})
	}

	// Reproducible: the same commit, built again from scratch (binary included), gives the
	// same digest. The collector is the cheaper of the two to link again.
	again, out := redirect(t, collectorArgs, t.TempDir())
	runTool(t, exe, again)
	want, _ := layoutImage(t, built["collector"].layout).Digest()
	if got, _ := layoutImage(t, out.layout).Digest(); got != want {
		t.Errorf("collector built twice: digests %v and %v", want, got)
	}
}

func layoutImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("layout: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("layout index.json has %d entries, want 1", len(m.Manifests))
	}
	d := m.Manifests[0]
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("layout entry platform %+v, want linux/amd64", d.Platform)
	}
	if d.Annotations["org.opencontainers.image.ref.name"] == "" {
		t.Errorf("layout entry has no ref.name annotation: %v", d.Annotations)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func inspectConfig(t *testing.T, img v1.Image, title, revision string, created time.Time) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/logrouter"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/logrouter] and none", c.Entrypoint, c.Cmd)
	}
	uid, gid, ok := strings.Cut(c.User, ":")
	u, err1 := strconv.Atoi(uid)
	_, err2 := strconv.Atoi(gid)
	if !ok || err1 != nil || err2 != nil || u == 0 {
		t.Errorf("user %q, want numeric non-root uid:gid", c.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(created) {
		t.Errorf("created %v, want the commit time %v", cf.Created.Time, created)
	}
	want := map[string]string{
		image.LabelTitle:    title,
		image.LabelSource:   "https://github.com/logrouter/logrouter",
		image.LabelRevision: revision,
		image.LabelCreated:  created.Format(time.RFC3339),
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{7,}(-dirty)?$|^v`).MatchString(c.Labels[image.LabelVersion]) {
		t.Errorf("label %s = %q, want git describe output", image.LabelVersion, c.Labels[image.LabelVersion])
	}
}

// inspectFiles checks the flattened filesystem is exactly what the image promises (so no shell
// and no busybox can hide in it) and returns the binary's bytes.
func inspectFiles(t *testing.T, img v1.Image) (bin []byte, layerSize int64) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v: want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	tr := tar.NewReader(cr)
	files := map[string][]byte{}
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		modes[name] = h.Mode
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
		if base := filepath.Base(name); slices.Contains([]string{"sh", "bash", "dash", "ash", "busybox"}, base) {
			t.Errorf("image contains a shell: %s", h.Name)
		}
	}
	want := []string{"etc", "etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl", "etc/ssl/certs",
		"etc/ssl/certs/ca-certificates.crt", "home", "home/nonroot", "logrouter", "tmp"}
	got := make([]string, 0, len(files))
	for n := range files {
		got = append(got, n)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("files %q, want exactly %q", got, want)
	}
	if _, ok := files["bin/sh"]; ok {
		t.Error("/bin/sh present")
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") ||
		!strings.Contains(string(files["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("passwd/group lack nonroot 65532:\n%s%s", files["etc/passwd"], files["etc/group"])
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"]) {
		t.Error("CA bundle holds no certificate")
	}
	if modes["tmp"] != 0o1777 || modes["logrouter"] != 0o755 {
		t.Errorf("modes: /tmp %o /logrouter %o, want 1777 and 755", modes["tmp"], modes["logrouter"])
	}
	if _, err := io.Copy(io.Discard, cr); err != nil { // the tar's end padding
		t.Fatal(err)
	}
	return files["logrouter"], cr.n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// inspectBinary proves the binary is static (no loader to find in an empty image), sized as
// expected, and runs.
func inspectBinary(t *testing.T, variant string, bin []byte, uncompressed int64, img v1.Image) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v segment: not static", p.Type)
		}
	}
	if f.Section(".interp") != nil || f.Section(".dynamic") != nil {
		t.Error("binary has .interp/.dynamic: not static")
	}
	f.Close()

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v: want one", len(layers), err)
	}
	compressed, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: binary %d bytes (%.1f MiB), layer %d bytes uncompressed, %d gzip (%.1f MiB)",
		variant, len(bin), mib(int64(len(bin))), uncompressed, compressed, mib(compressed))
	// Deterministic bounds: the binary plus ~200 KB of certificates and tar headers.
	if uncompressed > int64(len(bin))+1<<20 || compressed > int64(len(bin)) {
		t.Errorf("layer %d bytes (%d compressed) for a %d-byte binary: something else is in it", uncompressed, compressed, len(bin))
	}

	exe := filepath.Join(t.TempDir(), "logrouter")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("logrouter --help: %v\n%s", err, out)
	}
	help := string(out)
	if !strings.Contains(help, "collect") {
		t.Errorf("help lists no collect command:\n%s", help)
	}
	if hasArchive := strings.Contains(help, "archive"); hasArchive != (variant == "full") {
		t.Errorf("variant %s: help lists archive = %v:\n%s", variant, hasArchive, help)
	}
}

// push does what docs/image.md's `crane push` lines do (crane's own library calls: crane.Load
// for a tarball, the layout's single image for a directory) against go-containerregistry's
// registry, and pulls back: the registry must hold the digest the build printed.
func push(t *testing.T, out outputs, fromLayout v1.Image) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	fromTar, err := crane.Load(out.tarball)
	if err != nil {
		t.Fatal(err)
	}
	for src, img := range map[string]v1.Image{"layout": fromLayout, "tarball": fromTar} {
		dst := host + "/logrouter/" + out.variant + ":" + src
		if err := crane.Push(img, dst); err != nil {
			t.Fatalf("push %s: %v", src, err)
		}
		got, err := crane.Digest(dst)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := img.Digest(); got != want.String() {
			t.Errorf("pushed %s: registry has %s, built %s", src, got, want)
		}
	}
}

// Bad invocations fail before compiling anything, saying what is wrong.
func TestRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-tarball", "x.tar", "-variant", "slim"}, 1, `-variant "slim"`},
		{[]string{"-variant", "full"}, 1, "nothing to write"},
		{[]string{"-tarball", "x.tar", "-platforms", "linux/amd64,linux/arm64"}, 1, "-tarball holds one platform"},
		{[]string{"-oci-layout", "x", "-platforms", "linux/s390x"}, 1, `"linux/s390x"`},
		{[]string{"-oci-layout", "x", "-platforms", "amd64"}, 1, `"amd64"`},
		{[]string{"-colour"}, 2, "flag provided but not defined"},
		{[]string{"-tarball", "x.tar", "extra"}, 2, "unexpected arguments"},
		{[]string{"-h"}, 0, "-oci-layout"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}

func TestParseEpoch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1764547200", time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{"1", time.Unix(1, 0).UTC(), true},
		{"0", time.Time{}, false}, // the zero time is what the reproducible default must not be
		{"-5", time.Time{}, false},
		{"2025-12-01", time.Time{}, false},
		{"1764547200.5", time.Time{}, false},
		{" 1764547200", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := parseEpoch(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// SOURCE_DATE_EPOCH, when set, wins over the commit time; flags win over git.
func TestGitMetaSourceDateEpoch(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	m, err := gitMeta(context.Background(), root, options{version: "v9", revision: "r1"}, "1764547200")
	if err != nil {
		t.Fatal(err)
	}
	if m.version != "v9" || m.revision != "r1" || !m.created.Equal(time.Unix(1764547200, 0)) {
		t.Errorf("gitMeta = %+v", m)
	}
	if _, err := gitMeta(context.Background(), root, options{version: "v9", revision: "r1"}, "yesterday"); err == nil {
		t.Error("bad SOURCE_DATE_EPOCH accepted")
	}
}

// The Dockerfile builds what deploy/image builds: same flags, user, entrypoint, labels, targets.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines into instructions; drop comments.
	var instrs []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		if cur.Len() > 0 {
			instrs = append(instrs, strings.Join(strings.Fields(cur.String()), " "))
		}
		cur.Reset()
	}
	stages := map[string]*dockerStage{}
	var order []string
	var st *dockerStage
	for _, in := range instrs {
		if strings.HasPrefix(in, "FROM ") {
			f := strings.Fields(in)
			if len(f) < 4 || f[len(f)-2] != "AS" {
				t.Fatalf("unnamed stage %q", in)
			}
			st = &dockerStage{from: f[len(f)-3]}
			stages[f[len(f)-1]] = st
			order = append(order, f[len(f)-1])
			continue
		}
		if st != nil {
			st.instrs = append(st.instrs, in)
		}
	}
	// inherited collects a stage's instructions with those of the stages it is built FROM.
	var inherited func(name string) []string
	inherited = func(name string) []string {
		s, ok := stages[name]
		if !ok {
			return nil
		}
		return append(inherited(s.from), s.instrs...)
	}
	if len(order) == 0 || order[len(order)-1] != "full" {
		t.Errorf("stages %q: the full image must be the last (default) stage", order)
	}
	flags := strings.Join(goBuildFlags, " ")
	for v, vt := range variants {
		if _, ok := stages[v]; !ok {
			t.Errorf("no %q target", v)
			continue
		}
		all := strings.Join(inherited(v), "\n")
		for _, want := range []string{
			"USER " + image.User,
			`ENTRYPOINT ["` + image.Entrypoint + `"]`,
			image.LabelSource, image.LabelVersion, image.LabelRevision, image.LabelCreated,
			image.LabelTitle + `="` + vt.repo + `"`,
		} {
			if !strings.Contains(all, want) {
				t.Errorf("target %s lacks %q", v, want)
			}
		}
		if base := root(stages, v); !strings.HasPrefix(base, "gcr.io/distroless/static") {
			t.Errorf("target %s is based on %q, want distroless/static", v, base)
		}
		// The COPY --from stage's go build.
		var buildStage string
		for _, in := range stages[v].instrs {
			if m := regexp.MustCompile(`^COPY --from=(\S+) /out/logrouter /logrouter$`).FindStringSubmatch(in); m != nil {
				buildStage = m[1]
			}
		}
		build := strings.ReplaceAll(strings.Join(inherited(buildStage), "\n"), `"`, "")
		if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "go build "+flags) {
			t.Errorf("target %s: stage %q does not run CGO_ENABLED=0 go build %s", v, buildStage, flags)
		}
		wantTags := vt.tags != ""
		if has := strings.Contains(build, "-tags "+vt.tags+" "); wantTags && !has || !wantTags && strings.Contains(build, "-tags") {
			t.Errorf("target %s: stage %q build tags wrong (want %q)", v, buildStage, vt.tags)
		}
	}
}

// dockerStage is one FROM ... AS name stage of the Dockerfile.
type dockerStage struct {
	from   string // image or stage it starts from
	instrs []string
}

// root follows FROM through named stages to the external base image.
func root(stages map[string]*dockerStage, name string) string {
	for {
		s, ok := stages[name]
		if !ok {
			return name
		}
		name = s.from
	}
}
