//go:build !collector

package main

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/logrouter/logrouter/internal/cli"
)

// The repository's docker-compose.yml, which `docker compose up --build` runs from a clone.
const composeFile = "../../docker-compose.yml"

// loadCompose loads a compose document the way docker compose does (compose-go: schema
// validation, interpolation, YAML anchors and merge keys, paths made absolute), as if it were
// the repository's docker-compose.yml.
func loadCompose(content []byte) (*types.Project, error) {
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: content}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("logrouter", true)
		o.Profiles = []string{"*"} // the tools too (docker compose run query)
	})
}

func loadComposeFile(t *testing.T) *types.Project {
	t.Helper()
	content, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadCompose(content)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestComposeFile: docker-compose.yml cannot run here (no Docker engine), so this checks what
// would make it fail or silently misbehave: every logrouter command line and LOGROUTER_
// variable against the real flags of its subcommand in the build its image target compiles,
// the files it builds from, and that volumes, ports and addresses agree between services.
func TestComposeFile(t *testing.T) {
	p := loadComposeFile(t)
	for _, err := range checkCompose(p) {
		t.Error(err)
	}
	// The stack is the whole system: a check above that matched no service would pass vacuously.
	for _, cmd := range []string{"collect", "archive", "gateway", "tokens", "demo-writer", "query"} {
		if len(servicesRunning(p, cmd)) == 0 {
			t.Errorf("no service runs logrouter %s", cmd)
		}
	}
}

// Each way the file could go wrong is caught: a copy of the document, changed in one place.
func TestComposeFileRefusesMistakes(t *testing.T) {
	content, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func(s *types.ServiceConfig)) func(*types.Project) {
		return func(p *types.Project) {
			s, ok := p.Services[name]
			if !ok {
				t.Fatalf("no service %s", name)
			}
			f(&s)
			p.Services[name] = s
		}
	}
	setEnv := func(s *types.ServiceConfig, k, v string) {
		env := types.MappingWithEquals{}
		for ek, ev := range s.Environment {
			env[ek] = ev
		}
		env[k] = &v
		s.Environment = env
	}
	replaceArg := func(s *types.ServiceConfig, old, new string) {
		i := slices.Index(s.Command, old)
		if i < 0 {
			t.Fatalf("no argument %q in %q", old, s.Command)
		}
		s.Command = slices.Clone(s.Command)
		s.Command[i] = new
	}
	for _, tc := range []struct {
		name   string
		text   func(string) string  // a change to the document's text, or
		change func(*types.Project) // to the loaded project
		want   string
	}{
		{name: "unknown flag", want: "flag provided but not defined: -no-such-flag",
			change: edit("collector", func(s *types.ServiceConfig) { s.Command = append(slices.Clone(s.Command), "--no-such-flag=1") })},
		{name: "flag value that does not parse", want: "invalid value",
			change: edit("archiver", func(s *types.ServiceConfig) { replaceArg(s, "--max-object-age=1m", "--max-object-age=soon") })},
		{name: "flag missing its value", want: `"--listen"]: exit 1`,
			change: edit("gateway", func(s *types.ServiceConfig) { s.Command = append(slices.Clone(s.Command), "--listen") })},
		{name: "stray argument", want: "unexpected arguments",
			change: edit("demo-writer", func(s *types.ServiceConfig) { s.Command = append(slices.Clone(s.Command), "extra") })},
		{name: "misspelt variable", want: "flag provided but not defined: -bucket-url",
			change: edit("archiver", func(s *types.ServiceConfig) { setEnv(s, "LOGROUTER_BUCKET_URL", "s3://x") })},
		{name: "variable that does not parse", want: "invalid value",
			change: edit("collector", func(s *types.ServiceConfig) { setEnv(s, "LOGROUTER_BUFFER_BYTES", "lots") })},
		{name: "unknown command", want: `no command "archiv"`,
			change: edit("archiver", func(s *types.ServiceConfig) { replaceArg(s, "archive", "archiv") })},
		{name: "command not in the collector build", want: "not in the collector target's build",
			change: edit("collector", func(s *types.ServiceConfig) { s.Command = types.ShellCommand{"archive"} })},
		{name: "no such Dockerfile target", want: `no stage "fulll"`,
			change: edit("gateway", func(s *types.ServiceConfig) { s.Build.Target = "fulll" })},
		{name: "no such build context", want: "build context",
			change: edit("gateway", func(s *types.ServiceConfig) { s.Build.Context += "/no-such-dir" })},
		{name: "missing bind-mounted file", want: "no-such-file.yaml",
			change: edit("gateway", func(s *types.ServiceConfig) {
				s.Volumes = append(s.Volumes, types.ServiceVolumeConfig{Type: types.VolumeTypeBind, Source: filepath.Join(p0dir(t), "no-such-file.yaml"), Target: "/etc/x.yaml"})
			})},
		{name: "undeclared volume", want: "checkpoint",
			text: func(s string) string {
				return strings.Replace(s, "- checkpoints:/var/lib/logrouter", "- checkpoint:/var/lib/logrouter", 1)
			}},
		{name: "same host port twice", want: "host port 9464",
			change: edit("archiver", func(s *types.ServiceConfig) { s.Ports[0].Published = "9464" })},
		{name: "brokers at no service", want: `"kafka1" is no service`,
			change: edit("archiver", func(s *types.ServiceConfig) { setEnv(s, "LOGROUTER_BROKERS", "kafka1:19092") })},
		{name: "brokers at the host's listener", want: "not among kafka's advertised listeners",
			change: edit("gateway", func(s *types.ServiceConfig) { setEnv(s, "LOGROUTER_BROKERS", "kafka:9092") })},
		{name: "without waiting for Kafka", want: "depends on kafka",
			change: edit("token", func(s *types.ServiceConfig) { delete(s.DependsOn, "kafka") })},
		{name: "bucket endpoint port not exposed", want: "does not expose 7071",
			change: edit("gateway", func(s *types.ServiceConfig) {
				setEnv(s, "LOGROUTER_BUCKET", strings.Replace(*s.Environment["LOGROUTER_BUCKET"], ":7070", ":7071", 1))
			})},
		{name: "bucket nobody creates", want: `bucket "other"`,
			change: edit("archiver", func(s *types.ServiceConfig) {
				setEnv(s, "LOGROUTER_BUCKET", strings.Replace(*s.Environment["LOGROUTER_BUCKET"], "s3://logrouter?", "s3://other?", 1))
			})},
		{name: "wrong S3 credentials", want: "AWS_SECRET_ACCESS_KEY",
			change: edit("archiver", func(s *types.ServiceConfig) { setEnv(s, "AWS_SECRET_ACCESS_KEY", "guess") })},
		{name: "collector reads another directory", want: "--log-dir /var/log2/containers",
			change: edit("collector", func(s *types.ServiceConfig) {
				replaceArg(s, "--log-dir=/var/log/containers", "--log-dir=/var/log2/containers")
			})},
		{name: "demo logs on another path", want: "same path",
			change: edit("demo-writer", func(s *types.ServiceConfig) {
				s.Volumes[0].Target = "/logs"
				replaceArg(s, "/var/log", "/logs")
			})},
		{name: "checkpoints lost with the container", want: "--checkpoint-dir /tmp/cp",
			change: edit("collector", func(s *types.ServiceConfig) {
				replaceArg(s, "--checkpoint-dir=/var/lib/logrouter", "--checkpoint-dir=/tmp/cp")
			})},
		{name: "token for a namespace nobody writes", want: `namespace "billing"`,
			change: edit("token", func(s *types.ServiceConfig) { replaceArg(s, "--namespace=search", "--namespace=billing") })},
		{name: "curl lines at an unpublished port", want: "--gateway-url http://localhost:8081",
			change: edit("token", func(s *types.ServiceConfig) {
				replaceArg(s, "--gateway-url=http://localhost:8080", "--gateway-url=http://localhost:8081")
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := string(content)
			if tc.text != nil {
				if doc = tc.text(doc); doc == string(content) {
					t.Fatal("the change did not apply")
				}
			}
			p, err := loadCompose([]byte(doc))
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				if tc.change != nil {
					tc.change(p)
				}
				errs = checkCompose(p)
			}
			all := errors.Join(errs...)
			if all == nil {
				t.Fatalf("no problem found, want one saying %q", tc.want)
			}
			if !strings.Contains(all.Error(), tc.want) {
				t.Errorf("problems found:\n%v\nwant one saying %q", all, tc.want)
			}
		})
	}
}

func p0dir(t *testing.T) string {
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(abs)
}

// checkCompose returns every problem of a loaded compose project.
func checkCompose(p *types.Project) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	hostPorts := map[string]string{}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					fail("%s: volume %q is not declared under volumes:", name, v.Source)
				}
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					fail("%s: bind mount %s: %v", name, v.Source, err)
				}
			}
		}
		for _, port := range s.Ports {
			key := port.HostIP + ":" + port.Published + "/" + port.Protocol
			if other, ok := hostPorts[key]; ok && port.Published != "" {
				fail("%s and %s both publish host port %s", other, name, port.Published)
			}
			hostPorts[key] = name
		}
		if s.Build == nil {
			continue
		}
		// A logrouter image: the entrypoint is the binary, the command its arguments.
		if err := checkBuild(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if err := checkInvocation(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}

	kafkaAddrs := func(name string, s types.ServiceConfig) {
		brokers := flagValues(s, "brokers")
		if len(brokers) == 0 {
			fail("%s: no --brokers (the default, localhost, is the container itself)", name)
		}
		for _, b := range brokers {
			for _, addr := range strings.Split(b, ",") {
				svc, port, ok := serviceAddr(p, name, "brokers", addr, &errs)
				if !ok {
					continue
				}
				adv := envValue(p.Services[svc], "KAFKA_ADVERTISED_LISTENERS")
				if !regexp.MustCompile(`(^|,)[A-Z_]+://` + regexp.QuoteMeta(svc+":"+port) + `(,|$)`).MatchString(adv) {
					fail("%s: --brokers %s is not among %s's advertised listeners (%s): Kafka would send the client elsewhere", name, addr, svc, adv)
				}
				if d, ok := s.DependsOn[svc]; !ok || d.Condition != types.ServiceConditionHealthy {
					fail("%s: depends on kafka (%s) being healthy, or it starts before the broker", name, svc)
				}
			}
		}
	}
	for _, cmd := range []string{"collect", "archive", "gateway", "tokens"} {
		for _, name := range servicesRunning(p, cmd) {
			kafkaAddrs(name, p.Services[name])
		}
	}
	for _, cmd := range []string{"archive", "gateway", "query"} {
		for _, name := range servicesRunning(p, cmd) {
			checkBucket(p, name, &errs)
		}
	}
	checkNode(p, &errs)
	checkToken(p, &errs)
	return errs
}

// logrouterArgs are the arguments of the logrouter binary in a service built from the
// Dockerfile: its command, after the entrypoint's own arguments when it sets one that runs
// /logrouter (the image's entrypoint).
func logrouterArgs(s types.ServiceConfig) []string {
	if s.Build == nil {
		return nil
	}
	if len(s.Entrypoint) > 0 {
		if s.Entrypoint[0] != "/logrouter" {
			return nil
		}
		return append(slices.Clone([]string(s.Entrypoint[1:])), s.Command...)
	}
	return slices.Clone([]string(s.Command))
}

// servicesRunning names the services whose command is logrouter cmd.
func servicesRunning(p *types.Project, cmd string) []string {
	var names []string
	for _, name := range p.ServiceNames() {
		if args := logrouterArgs(p.Services[name]); len(args) > 0 && args[0] == cmd {
			names = append(names, name)
		}
	}
	return names
}

var stageLine = regexp.MustCompile(`(?im)^FROM\s+.*\s+AS\s+(\S+)\s*$`)

// checkBuild: the build context and its Dockerfile exist, the target is one of its stages, and
// the command is compiled into the binary that target builds (the collector target builds
// with -tags collector, which leaves most commands out).
func checkBuild(s types.ServiceConfig) error {
	if fi, err := os.Stat(s.Build.Context); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s: not a directory (%v)", s.Build.Context, err)
	}
	df := s.Build.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	b, err := os.ReadFile(filepath.Join(s.Build.Context, df))
	if err != nil {
		return err
	}
	// The stages, each with its text up to the next FROM.
	stages := map[string]string{}
	idx := stageLine.FindAllSubmatchIndex(b, -1)
	for i, m := range idx {
		end := len(b)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		stages[string(b[m[2]:m[3]])] = string(b[m[0]:end])
	}
	stage, ok := stages[s.Build.Target]
	if !ok {
		return fmt.Errorf("%s has no stage %q (it has %v)", df, s.Build.Target, slices.Sorted(mapKeys(stages)))
	}
	// The stage and those it copies from.
	text := stage
	for _, m := range regexp.MustCompile(`--from=(\S+)`).FindAllStringSubmatch(stage, -1) {
		text += stages[m[1]]
	}
	var tags []string
	if m := regexp.MustCompile(`-tags[ =](\S+)`).FindStringSubmatch(text); m != nil {
		tags = strings.Split(m[1], ",")
	}
	args := logrouterArgs(s)
	if len(args) == 0 {
		return errors.New("no command: the image's entrypoint needs a subcommand")
	}
	if len(tags) > 0 {
		cmds, err := commandsBuiltWith(tags)
		if err != nil {
			return err
		}
		if !slices.Contains(cmds, args[0]) {
			return fmt.Errorf("command %q is not in the %s target's build (-tags %s has %v)", args[0], s.Build.Target, strings.Join(tags, ","), cmds)
		}
	}
	return nil
}

var registration = regexp.MustCompile(`commands\["([a-z-]+)"\]\s*=`)

// commandsBuiltWith lists the subcommands the files of this package that build with tags register.
func commandsBuiltWith(tags []string) ([]string, error) {
	ctx := build.Default
	ctx.BuildTags = tags
	pkg, err := ctx.ImportDir(".", 0)
	if err != nil {
		return nil, err
	}
	var cmds []string
	for _, f := range pkg.GoFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range registration.FindAllSubmatch(b, -1) {
			cmds = append(cmds, string(m[1]))
		}
	}
	return cmds, nil
}

// checkInvocation parses a service's logrouter command line and LOGROUTER_ variables with the
// real flag set of its subcommand (parseOnly).
func checkInvocation(s types.ServiceConfig) error {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return parseOnly(logrouterArgs(s), env)
}

// flagValues are the values a service gives flag, on its command line (--flag=v or --flag v)
// or, when it gives none there, as LOGROUTER_<FLAG>.
func flagValues(s types.ServiceConfig, flag string) []string {
	var vals []string
	args := logrouterArgs(s)
	for i, a := range args {
		a = "-" + strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "-"+flag+"="); ok {
			vals = append(vals, v)
		} else if a == "-"+flag && i+1 < len(args) {
			vals = append(vals, args[i+1])
		}
	}
	if len(vals) == 0 {
		if v := envValue(s, cli.EnvName(flag)); v != "" {
			vals = append(vals, v)
		}
	}
	return vals
}

func flagValue(s types.ServiceConfig, flag string) string {
	v := flagValues(s, flag)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func envValue(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// serviceAddr checks that addr (host:port), which a service's flag names, is a service of the
// project that exposes that port to the others.
func serviceAddr(p *types.Project, from, flag, addr string, errs *[]error) (svc, port string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: --%s %s: %w", from, flag, addr, err))
		return "", "", false
	}
	s, found := p.Services[host]
	if !found {
		*errs = append(*errs, fmt.Errorf("%s: --%s %s: %q is no service", from, flag, addr, host))
		return "", "", false
	}
	exposed := slices.Contains(s.Expose, port)
	for _, pc := range s.Ports {
		exposed = exposed || fmt.Sprint(pc.Target) == port
	}
	if !exposed {
		*errs = append(*errs, fmt.Errorf("%s: --%s %s: service %s does not expose %s", from, flag, addr, host, port))
		return "", "", false
	}
	return host, port, true
}

// checkBucket: an s3:// bucket's endpoint is a service of the project, the bucket is created
// there before that service starts (a one-shot it depends on makes the directory, which is a
// bucket of versitygw's posix backend), and the credentials are that server's.
func checkBucket(p *types.Project, name string, errs *[]error) {
	fail := func(format string, args ...any) { *errs = append(*errs, fmt.Errorf(name+": "+format, args...)) }
	s := p.Services[name]
	raw := flagValue(s, "bucket")
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		fail("--bucket %q: want an s3:// bucket URL (%v)", raw, err)
		return
	}
	q := u.Query()
	if q.Get("use_path_style") != "true" || q.Get("disable_https") != "true" || q.Get("region") == "" {
		fail("--bucket %q: a local S3 server needs region=, use_path_style=true and disable_https=true", raw)
	}
	ep, err := url.Parse(q.Get("endpoint"))
	if err != nil || ep.Host == "" {
		fail("--bucket %q: no endpoint=http://<service>:<port>", raw)
		return
	}
	svc, _, ok := serviceAddr(p, name, "bucket endpoint", ep.Host, errs)
	if !ok {
		return
	}
	if d, ok := s.DependsOn[svc]; !ok || d.Condition != types.ServiceConditionHealthy {
		fail("depends on %s being healthy, or its first uploads fail", svc)
	}
	server := p.Services[svc]
	for _, kv := range [][2]string{{"AWS_ACCESS_KEY_ID", "ROOT_ACCESS_KEY"}, {"AWS_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY"}} {
		if envValue(s, kv[0]) == "" || envValue(s, kv[0]) != envValue(server, kv[1]) {
			fail("%s is not %s's %s", kv[0], svc, kv[1])
		}
	}
	// versitygw ... posix ROOT: the bucket is the directory ROOT/<bucket> on the volume at ROOT.
	i := slices.Index(server.Command, "posix")
	if i < 0 || i+1 >= len(server.Command) {
		fail("%s does not run versitygw's posix backend (command %q)", svc, server.Command)
		return
	}
	root := server.Command[i+1]
	vol := volumeAt(server, root)
	if vol == "" {
		fail("%s's posix root %s is not on a volume", svc, root)
		return
	}
	created := false
	for dep, d := range server.DependsOn {
		init := p.Services[dep]
		mnt := mountOf(init, vol)
		if d.Condition == types.ServiceConditionCompletedSuccessfully && mnt != "" &&
			slices.Contains(append(slices.Clone(init.Entrypoint), init.Command...), filepath.Join(mnt, u.Host)) {
			created = true
		}
	}
	if !created {
		fail("bucket %q: no one-shot service that %s depends on creates %s", u.Host, svc, filepath.Join(root, u.Host))
	}
}

// volumeAt is the named volume mounted at target in s.
func volumeAt(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target {
			return v.Source
		}
	}
	return ""
}

// mountOf is where s mounts the named volume vol.
func mountOf(s types.ServiceConfig, vol string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == vol {
			return v.Target
		}
	}
	return ""
}

// volumeUnder returns the mount of s that holds path (the longest), if any.
func volumeUnder(s types.ServiceConfig, path string) (types.ServiceVolumeConfig, bool) {
	var best types.ServiceVolumeConfig
	found := false
	for _, v := range s.Volumes {
		if (path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")) && len(v.Target) >= len(best.Target) {
			best, found = v, true
		}
	}
	return best, found
}

// checkNode: the collector reads what the demo writer writes, through one volume mounted at
// the same path in both (the /var/log/containers symlinks are absolute), and keeps its
// checkpoints on a writable volume that outlives the container.
func checkNode(p *types.Project, errs *[]error) {
	writers := servicesRunning(p, "demo-writer")
	for _, name := range servicesRunning(p, "collect") {
		fail := func(format string, args ...any) { *errs = append(*errs, fmt.Errorf(name+": "+format, args...)) }
		s := p.Services[name]
		for _, flag := range []string{"log-dir", "pods-dir"} {
			dir := flagValue(s, flag)
			v, ok := volumeUnder(s, dir)
			if dir == "" || !ok || v.Type != types.VolumeTypeVolume {
				fail("--%s %s is not on a volume", flag, dir)
				continue
			}
			fed := false
			for _, w := range writers {
				ws := p.Services[w]
				wdir := flagValue(ws, "dir")
				want := map[string]string{"log-dir": filepath.Join(wdir, "containers"), "pods-dir": filepath.Join(wdir, "pods")}[flag]
				if wv, ok := volumeUnder(ws, wdir); ok && wv.Source == v.Source && wv.Target == v.Target && want == dir {
					fed = true
				}
			}
			if !fed {
				fail("--%s %s: no demo writer writes there through volume %s mounted at the same path", flag, dir, v.Source)
			}
		}
		cp := flagValue(s, "checkpoint-dir")
		if v, ok := volumeUnder(s, cp); cp == "" || !ok || v.Type != types.VolumeTypeVolume || v.ReadOnly {
			fail("--checkpoint-dir %s is not on a writable named volume: checkpoints would be lost with the container", cp)
		}
	}
}

// checkToken: the token service's token reads namespaces the demo writes, and its curl lines
// name a host port that the gateway publishes for its API listener.
func checkToken(p *types.Project, errs *[]error) {
	demoNS := map[string]bool{}
	for _, w := range servicesRunning(p, "demo-writer") {
		for _, ns := range strings.Split(flagValue(p.Services[w], "namespaces"), ",") {
			demoNS[strings.TrimSpace(ns)] = true
		}
	}
	for _, name := range servicesRunning(p, "tokens") {
		fail := func(format string, args ...any) { *errs = append(*errs, fmt.Errorf(name+": "+format, args...)) }
		s := p.Services[name]
		for _, ns := range flagValues(s, "namespace") {
			if !demoNS[ns] {
				fail("token for namespace %q, which no demo writer writes", ns)
			}
		}
		raw := flagValue(s, "gateway-url")
		u, err := url.Parse(raw)
		if raw == "" || err != nil {
			fail("--gateway-url %q: the curl lines need the gateway's URL on the host", raw)
			continue
		}
		published := false
		for _, g := range servicesRunning(p, "gateway") {
			gs := p.Services[g]
			_, listen, _ := net.SplitHostPort(flagValue(gs, "listen"))
			for _, pc := range gs.Ports {
				published = published || (pc.Published == u.Port() && fmt.Sprint(pc.Target) == listen)
			}
			if d, ok := s.DependsOn[g]; !ok || d.Condition == "" {
				fail("does not depend on %s: its curl lines would print before the gateway starts", g)
			}
		}
		if !published {
			fail("--gateway-url %s: no gateway publishes host port %q for its --listen port", raw, u.Port())
		}
	}
}

var composeRun = regexp.MustCompile(`(?m)^docker compose run --rm ([a-z-]+)((?: [^ \n]+)*)$`)

// TestComposeDocCommands: each `docker compose run` line of the docs names a service of the
// file, and the arguments it gives (which replace the service's command) parse as that
// service's logrouter command, with the service's environment.
func TestComposeDocCommands(t *testing.T) {
	p := loadComposeFile(t)
	n := 0
	for _, doc := range []string{"../../docs/compose.md", "../../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range composeRun.FindAllStringSubmatch(string(b), -1) {
			n++
			s, ok := p.Services[m[1]]
			if !ok {
				t.Errorf("%s: %q: no service %s", doc, m[0], m[1])
				continue
			}
			if args := strings.Fields(m[2]); len(args) > 0 {
				s.Command = args
			}
			if s.Build == nil || len(logrouterArgs(s)) == 0 {
				t.Errorf("%s: %q: %s does not run logrouter", doc, m[0], m[1])
			} else if err := checkInvocation(s); err != nil {
				t.Errorf("%s: %q: %v", doc, m[0], err)
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d docker compose run lines, want the documented ones", n)
	}
}
