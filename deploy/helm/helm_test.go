package helm

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/router"
)

// renderCase is one set of values the chart must render with: every example file and every
// helm command of docs/helm.md.
type renderCase struct {
	name    string
	release Release
	values  map[string]any
}

var defaultRelease = Release{Name: "logrouter", Namespace: "logrouter"}

func cases(t testing.TB) []renderCase {
	t.Helper()
	ex, err := Examples()
	if err != nil {
		t.Fatal(err)
	}
	var cs []renderCase
	for _, e := range ex {
		cs = append(cs, renderCase{name: "examples/" + e.Name, release: defaultRelease, values: e.Values})
	}
	return append(cs, docCommands(t)...)
}

func render(t testing.TB, c renderCase) []Document {
	t.Helper()
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(ch, c.values, c.release)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return Documents(out)
}

// strictDecoder decodes into the typed Kubernetes (and Prometheus Operator) API objects and
// fails on unknown and duplicate fields.
func strictDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	sch := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := monitoringv1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	return serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
}

func decodeAll(t *testing.T, c renderCase) []runtime.Object {
	t.Helper()
	dec := strictDecoder(t)
	var objs []runtime.Object
	for _, d := range render(t, c) {
		obj, _, err := dec.Decode([]byte(d.YAML), nil, nil)
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", c.name, d.Template, err, d.YAML)
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestStrictDecoding checks that every object of every case is a valid typed object, and what
// the issue asks of each component.
func TestRenderedObjects(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			objs := decodeAll(t, c)
			checkObjects(t, c, objs)
		})
	}
}

type workload struct {
	kind, name string
	labels     map[string]string
	pod        corev1.PodSpec
}

func checkObjects(t *testing.T, c renderCase, objs []runtime.Object) {
	var workloads []workload
	sas := map[string]bool{}
	pdbs := map[string]bool{}
	netpols := map[string]bool{}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			workloads = append(workloads, workload{"DaemonSet", o.Name, o.Spec.Template.Labels, o.Spec.Template.Spec})
		case *appsv1.Deployment:
			workloads = append(workloads, workload{"Deployment", o.Name, o.Spec.Template.Labels, o.Spec.Template.Spec})
		case *corev1.ServiceAccount:
			sas[o.Name] = true
		case *policyv1.PodDisruptionBudget:
			pdbs[o.Name] = true
		case *networkingv1.NetworkPolicy:
			netpols[o.Name] = true
		}
	}
	if len(workloads) == 0 {
		t.Fatal("no workloads rendered")
	}
	names := map[string]bool{}
	for _, w := range workloads {
		names[w.labels["app.kubernetes.io/component"]] = true
		t.Run(w.name, func(t *testing.T) {
			p := w.pod
			if !sas[p.ServiceAccountName] || p.ServiceAccountName != w.name {
				t.Errorf("service account %q: want its own, rendered (%v)", p.ServiceAccountName, slices.Sorted(maps.Keys(sas)))
			}
			if p.SecurityContext == nil || p.SecurityContext.SeccompProfile == nil || p.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod seccomp profile is not RuntimeDefault")
			}
			if !netpols[w.name] {
				t.Error("no NetworkPolicy")
			}
			for _, v := range p.Volumes {
				if v.EmptyDir != nil && w.kind == "DaemonSet" {
					t.Errorf("volume %s is an emptyDir", v.Name)
				}
			}
			if len(p.Containers) != 1 {
				t.Fatalf("%d containers", len(p.Containers))
			}
			ct := p.Containers[0]
			env := envOf(ct)
			sc := ct.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil ||
				!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security context %+v: want read-only root, no escalation, unprivileged, drop ALL", sc)
			}
			if ct.LivenessProbe == nil || ct.LivenessProbe.HTTPGet == nil || ct.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("liveness probe %+v: want /healthz", ct.LivenessProbe)
			}
			if ct.ReadinessProbe == nil || ct.ReadinessProbe.HTTPGet == nil || ct.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness probe %+v: want /readyz", ct.ReadinessProbe)
			}
			for _, pr := range []*corev1.Probe{ct.LivenessProbe, ct.ReadinessProbe} {
				if pr != nil && pr.HTTPGet != nil && !hasPort(ct, pr.HTTPGet.Port.StrVal) {
					t.Errorf("probe port %q is not a container port", pr.HTTPGet.Port.StrVal)
				}
			}
			// Probes and scrapes reach the servers the flags start.
			if addr := env["LOGROUTER_METRICS_ADDR"]; !hasPortNumber(ct, "metrics", addr) {
				t.Errorf("LOGROUTER_METRICS_ADDR %q does not match the metrics port", addr)
			}
			grace := int64(0)
			if p.TerminationGracePeriodSeconds != nil {
				grace = *p.TerminationGracePeriodSeconds
			}
			switch w.kind {
			case "DaemonSet":
				checkCollector(t, p, ct, env, grace)
			case "Deployment":
				if !pdbs[w.name] {
					t.Error("no PodDisruptionBudget")
				}
				if len(p.TopologySpreadConstraints) == 0 && p.Affinity == nil {
					t.Error("no topology spread or anti-affinity")
				}
				if p.SecurityContext.RunAsNonRoot == nil || !*p.SecurityContext.RunAsNonRoot {
					t.Error("not runAsNonRoot")
				}
				if len(sc.Capabilities.Add) > 0 {
					t.Errorf("adds capabilities %v", sc.Capabilities.Add)
				}
			}
			switch w.labels["app.kubernetes.io/component"] {
			case "gateway":
				pre := ct.Lifecycle
				if pre == nil || pre.PreStop == nil || pre.PreStop.Sleep == nil || pre.PreStop.Sleep.Seconds < 1 {
					t.Fatalf("gateway preStop %+v: want a sleep", pre)
				}
				sg := duration(t, env["LOGROUTER_SHUTDOWN_GRACE"])
				if time.Duration(grace)*time.Second <= time.Duration(pre.PreStop.Sleep.Seconds)*time.Second+sg {
					t.Errorf("terminationGracePeriodSeconds %d <= preStop %ds + --shutdown-grace %v", grace, pre.PreStop.Sleep.Seconds, sg)
				}
			case "archiver":
				if dt := duration(t, env["LOGROUTER_DRAIN_TIMEOUT"]); time.Duration(grace)*time.Second <= dt {
					t.Errorf("terminationGracePeriodSeconds %d <= --drain-timeout %v", grace, dt)
				}
				budget := mustInt(t, env["LOGROUTER_MEMORY_BUDGET"])
				if lim := ct.Resources.Limits.Memory(); lim.Value() <= budget {
					t.Errorf("memory limit %v <= --memory-budget %d", lim, budget)
				}
			}
		})
	}
	for _, want := range []string{"collector", "archiver", "gateway", "controller"} {
		en, _ := chartValue(c.values, want+".enabled")
		if en != false && !names[want] {
			t.Errorf("no %s rendered", want)
		}
	}
}

func checkCollector(t *testing.T, p corev1.PodSpec, ct corev1.Container, env map[string]string, grace int64) {
	if !slices.ContainsFunc(p.Tolerations, func(t corev1.Toleration) bool { return t.Operator == corev1.TolerationOpExists && t.Key == "" }) {
		t.Errorf("tolerations %+v do not tolerate every taint", p.Tolerations)
	}
	if p.PriorityClassName == "" {
		t.Error("no priorityClassName")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range ct.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/var/log"]; !ok || !m.ReadOnly {
		t.Errorf("/var/log mount %+v: want read-only", m)
	}
	ckpt := env["LOGROUTER_CHECKPOINT_DIR"]
	m, ok := mounts[ckpt]
	if !ok || m.ReadOnly {
		t.Fatalf("checkpoint dir %q is not a writable mount", ckpt)
	}
	for _, v := range p.Volumes {
		if v.Name != m.Name {
			continue
		}
		if v.HostPath == nil {
			t.Fatalf("checkpoint volume %s is not a hostPath", v.Name)
		}
		// As non-root, a directory the kubelet creates (root's) is not writable: it must exist.
		nonroot := p.SecurityContext.RunAsNonRoot != nil && *p.SecurityContext.RunAsNonRoot
		if ty := v.HostPath.Type; nonroot && (ty == nil || *ty != corev1.HostPathDirectory) {
			t.Errorf("non-root checkpoint hostPath type %q: want Directory", ptrString(ty))
		}
	}
	sc := ct.SecurityContext
	psc := p.SecurityContext
	if psc.RunAsNonRoot != nil && *psc.RunAsNonRoot {
		if len(sc.Capabilities.Add) != 0 {
			t.Errorf("non-root collector adds %v", sc.Capabilities.Add)
		}
	} else if len(sc.Capabilities.Add) > 0 && !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"DAC_READ_SEARCH"}) {
		t.Errorf("root collector capabilities add %v: want none or only DAC_READ_SEARCH", sc.Capabilities.Add)
	}
	if sg := duration(t, env["LOGROUTER_SHUTDOWN_GRACE"]); time.Duration(grace)*time.Second <= sg {
		t.Errorf("terminationGracePeriodSeconds %d <= --shutdown-grace %v", grace, sg)
	}
	// Memory follows the byte budget: request = limit = --buffer-bytes + overhead, and the Go
	// soft limit the collector derives (buffer + 32 MiB) fits under it.
	buf := mustInt(t, env["LOGROUTER_BUFFER_BYTES"])
	req, lim := ct.Resources.Requests.Memory(), ct.Resources.Limits.Memory()
	if req.Cmp(*lim) != 0 {
		t.Errorf("memory request %v != limit %v", req, lim)
	}
	if lim.Value() < buf+32<<20+32<<20 {
		t.Errorf("memory limit %v: want at least --buffer-bytes %d + the 32 MiB soft-limit headroom + 32 MiB", lim, buf)
	}
}

// TestCollectorLeastPrivilege: by default the collector runs as uid 0 with no capability at
// all (it reads root's 0640 files as their owner); only logAccess=capability adds one.
func TestCollectorLeastPrivilege(t *testing.T) {
	for _, tt := range []struct {
		mode    string
		add     []corev1.Capability
		nonRoot bool
	}{{"", nil, false}, {"root", nil, false}, {"capability", []corev1.Capability{"DAC_READ_SEARCH"}, false}, {"nonroot", nil, true}} {
		vals := map[string]any{"kafka": map[string]any{"brokers": "k:9092"}, "archiver": map[string]any{"enabled": false}}
		if tt.mode != "" {
			vals["collector"] = map[string]any{"logAccess": tt.mode}
		}
		for _, o := range decodeAll(t, renderCase{name: "logAccess " + tt.mode, release: defaultRelease, values: vals}) {
			ds, ok := o.(*appsv1.DaemonSet)
			if !ok {
				continue
			}
			p := ds.Spec.Template.Spec
			if got := p.Containers[0].SecurityContext.Capabilities.Add; !slices.Equal(got, tt.add) {
				t.Errorf("logAccess %q: capabilities add %v, want %v", tt.mode, got, tt.add)
			}
			if got := p.SecurityContext.RunAsNonRoot != nil && *p.SecurityContext.RunAsNonRoot; got != tt.nonRoot {
				t.Errorf("logAccess %q: runAsNonRoot %v", tt.mode, got)
			}
			if !tt.nonRoot && (p.SecurityContext.RunAsUser == nil || *p.SecurityContext.RunAsUser != 0) {
				t.Errorf("logAccess %q: runAsUser %v, want 0", tt.mode, p.SecurityContext.RunAsUser)
			}
		}
	}
}

// TestDefaultsMatchGo: the chart's defaults are the binary's defaults, so the chart does not
// silently change behaviour, and its memory arithmetic follows the real budget.
func TestDefaultsMatchGo(t *testing.T) {
	ch, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	v := ch.Values
	rc, ac, gc := router.DefaultConfig(), archiver.DefaultConfig(), api.DefaultConfig()
	tests := []struct {
		path string
		want any
	}{
		{"collector.bufferBytes", rc.BufferBytes},
		{"collector.shutdownGraceSeconds", int64(rc.ShutdownGrace / time.Second)},
		{"topics.template", rc.TopicTemplate},
		{"topics.partitions", int64(rc.Sink.Partitions)},
		{"topics.replicationFactor", int64(rc.Sink.ReplicationFactor)},
		{"topics.retention", rc.Sink.Retention.String()},
		{"archiver.memoryBudgetBytes", ac.MemoryBudget},
		{"archiver.maxSpoolBytes", ac.MaxSpoolBytes},
		{"archiver.maxObjectBytes", ac.MaxObjectBytes},
		{"archiver.maxObjectAge", ac.MaxObjectAge.String()},
		{"archiver.drainTimeoutSeconds", int64(ac.DrainTimeout / time.Second)},
		{"archiver.format", ac.Format},
		{"gateway.shutdownGraceSeconds", int64(gc.ShutdownGrace / time.Second)},
	}
	for _, tt := range tests {
		got, ok := chartValue(v, tt.path)
		if !ok {
			t.Errorf("%s: not in values.yaml", tt.path)
			continue
		}
		if f, isNum := got.(float64); isNum {
			got = int64(f)
		}
		if s, isStr := got.(string); isStr {
			if d, err := time.ParseDuration(s); err == nil {
				if w, ok := tt.want.(string); ok {
					wd, _ := time.ParseDuration(w)
					got, tt.want = d, wd
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("values.yaml %s = %v, Go default %v", tt.path, got, tt.want)
		}
	}
}

func chartValue(v map[string]any, p string) (any, bool) {
	var cur any = v
	for _, k := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			if cv, ok2 := cur.(chartutil.Values); ok2 {
				m = cv
			} else {
				return nil, false
			}
		}
		cur, ok = m[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func hasPort(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
}

func hasPortNumber(c corev1.Container, name, addr string) bool {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return false
	}
	n, err := strconv.Atoi(addr[i+1:])
	return err == nil && slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name && int(p.ContainerPort) == n })
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return q.Value()
}

// TestPlainManifestsUpToDate: deploy/kubernetes/ is what `go run ./deploy/render` writes, and
// holds nothing else.
func TestPlainManifestsUpToDate(t *testing.T) {
	want, err := PlainManifests()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "kubernetes")
	have, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range have {
		if _, ok := want[filepath.Base(p)]; !ok {
			t.Errorf("%s is not rendered from the chart: remove it (go run ./deploy/render does)", p)
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(b) {
			t.Errorf("deploy/kubernetes/%s is stale: run go run ./deploy/render", name)
		}
	}
}

// docCommands returns the helm template/install/upgrade commands of docs/helm.md and
// README.md, which run here through the SDK (their values files and --set flags parsed as helm
// does).
func docCommands(t testing.TB) []renderCase {
	t.Helper()
	var cs []renderCase
	for _, doc := range []string{"docs/helm.md", "README.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		inCode := false
		var pending string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
				continue
			}
			if !inCode {
				continue
			}
			line = strings.TrimSpace(line)
			if strings.HasSuffix(line, "\\") {
				pending += strings.TrimSuffix(line, "\\") + " "
				continue
			}
			cmd := pending + line
			pending = ""
			fields, err := shellWords(cmd)
			if err != nil {
				t.Fatalf("%s: %q: %v", doc, cmd, err)
			}
			if len(fields) < 2 || fields[0] != "helm" {
				continue
			}
			switch fields[1] {
			case "template", "install", "upgrade":
			default:
				t.Fatalf("%s: %q: the test cannot run helm %s: teach docCommands", doc, cmd, fields[1])
			}
			c, err := parseHelmCommand(fields[2:])
			if err != nil {
				t.Fatalf("%s: %q: %v", doc, cmd, err)
			}
			c.name = doc + ": " + cmd
			cs = append(cs, c)
			n++
		}
		if n == 0 {
			t.Fatalf("%s has no helm commands", doc)
		}
	}
	return cs
}

func parseHelmCommand(args []string) (renderCase, error) {
	c := renderCase{release: Release{Namespace: "default"}, values: map[string]any{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
				return v, nil
			}
			i++
			if i >= len(args) {
				return "", fmt.Errorf("%s needs a value", a)
			}
			return args[i], nil
		}
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "-n", "--namespace":
			v, err := next()
			if err != nil {
				return c, err
			}
			c.release.Namespace = v
		case "-f", "--values":
			v, err := next()
			if err != nil {
				return c, err
			}
			b, err := os.ReadFile(filepath.Join("..", "..", v))
			if err != nil {
				return c, err
			}
			fv, err := chartutil.ReadValues(b)
			if err != nil {
				return c, err
			}
			c.values = mergeMaps(c.values, fv)
		case "--set":
			v, err := next()
			if err != nil {
				return c, err
			}
			if err := strvals.ParseInto(v, c.values); err != nil {
				return c, err
			}
		case "--create-namespace", "--install", "--atomic", "--wait":
		default:
			if strings.HasPrefix(a, "-") {
				return c, fmt.Errorf("flag %s is not handled by the test: teach parseHelmCommand", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 || pos[1] != "deploy/helm/logrouter" {
		return c, fmt.Errorf("want NAME deploy/helm/logrouter, got %q", pos)
	}
	c.release.Name = pos[0]
	return c, nil
}

func mergeMaps(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// shellWords splits a command line as a POSIX shell does for the quoting the docs use: single
// quotes, double quotes and backslashes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quote")
			}
			inWord = true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func ptrString[T ~string](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return string(*p)
}
