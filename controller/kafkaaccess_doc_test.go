package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/logrouter/logrouter/pipeline/api/v1alpha1"
)

const kafkaAccessDoc = "../docs/kafka-access.md"

// accessDocBlock is a fenced block of docs/kafka-access.md with the marker comment before it.
type accessDocBlock struct {
	lang, marker string
	lines        []string
}

var markerLine = regexp.MustCompile(`^<!-- (\w+): (.+) -->$`)

func accessDocBlocks(t *testing.T) []accessDocBlock {
	t.Helper()
	raw, err := os.ReadFile(kafkaAccessDoc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var out []accessDocBlock
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := accessDocBlock{lang: strings.TrimPrefix(lines[i], "```")}
		if i > 0 && markerLine.MatchString(lines[i-1]) {
			b.marker = strings.TrimSuffix(strings.TrimPrefix(lines[i-1], "<!-- "), " -->")
		}
		j := i + 1
		for ; j < len(lines) && lines[j] != "```"; j++ {
			b.lines = append(b.lines, lines[j])
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: unterminated block", kafkaAccessDoc, i+1)
		}
		out = append(out, b)
		i = j
	}
	return out
}

// secretDir writes a Secret's keys as files, as a secret volume mounts it.
func secretDir(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	dir := t.TempDir()
	for k, v := range s.Data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var kubectlSecretKey = regexp.MustCompile(`^kubectl -n (\S+) get secret logrouter-kafka -o jsonpath='\{\.data\.([^}]+)\}' \| base64 -d > (\S+)$`)

// checkAccessDoc runs the team examples of docs/kafka-access.md with team-a's Secret: the
// kcat lines (the kubectl line is done by reading the Secret from the API server), the Go
// programs (which must be the files under docs/examples) and the policy YAML (applied, dry
// run, to the real kube-apiserver).
func checkAccessDoc(t *testing.T, e *accessEnv, s *corev1.Secret) {
	ctx := context.Background()
	ran := map[string]int{}
	for _, b := range accessDocBlocks(t) {
		kind, arg, _ := strings.Cut(b.marker, ": ")
		switch {
		case kind == "run" && arg == "kcat":
			kcat, err := exec.LookPath("kcat")
			if err != nil {
				t.Skip("kcat is not on PATH (apt-get install -y kcat)")
			}
			dir := t.TempDir()
			for _, l := range b.lines {
				if m := kubectlSecretKey.FindStringSubmatch(l); m != nil {
					var sec corev1.Secret
					if err := e.c.Get(ctx, types.NamespacedName{Namespace: m[1], Name: KafkaSecretName}, &sec); err != nil {
						t.Fatalf("%s: %v", l, err)
					}
					key := strings.ReplaceAll(m[2], `\.`, ".")
					if len(sec.Data[key]) == 0 {
						t.Fatalf("%s: the Secret has no key %q", l, key)
					}
					if err := os.WriteFile(filepath.Join(dir, m[3]), sec.Data[key], 0o600); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if !strings.HasPrefix(l, "kcat ") {
					t.Fatalf("unexpected line in the kcat block: %q", l)
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				cmd := exec.CommandContext(cctx, "bash", "-c", kcat+strings.TrimPrefix(l, "kcat"))
				cmd.Dir = dir
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				cancel()
				if err != nil || !strings.Contains(out.String(), "line of logs.team-a") {
					t.Errorf("%s: %v; stdout %q\n%s", l, err, out.String(), errb.String())
				}
				ran["kcat"]++
			}
		case kind == "file":
			want, err := os.ReadFile(filepath.Join("../docs", arg))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(b.lines, "\n") + "\n"; got != string(want) {
				t.Errorf("the block before docs/%s differs from the file (copy the file into the doc)", arg)
			}
			bin := filepath.Join(t.TempDir(), "example")
			build := exec.Command("go", "build", "-o", bin, "./"+filepath.Dir(filepath.Join("docs", arg)))
			build.Dir = ".."
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build docs/%s: %v\n%s", arg, err, out)
			}
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			out, err := exec.CommandContext(cctx, bin, "-secret", secretDir(t, s), "-app", "docs-"+filepath.Base(filepath.Dir(arg)), "-n", "1").CombinedOutput()
			cancel()
			if err != nil || strings.TrimSpace(string(out)) != "line of logs.team-a" {
				t.Errorf("docs/%s: %v\n%s", arg, err, out)
			}
			ran["go"]++
		case b.lang == "yaml" && strings.Contains(strings.Join(b.lines, "\n"), "kind: LogRouterPolicy"):
			var p v1alpha1.LogRouterPolicy
			if err := yaml.UnmarshalStrict([]byte(strings.Join(b.lines, "\n")), &p); err != nil {
				t.Fatalf("the policy example: %v", err)
			}
			var cur v1alpha1.LogRouterPolicy
			if err := e.c.Get(ctx, types.NamespacedName{Name: v1alpha1.PolicyName}, &cur); err != nil {
				t.Fatal(err)
			}
			p.ResourceVersion = cur.ResourceVersion
			if err := e.c.Update(ctx, &p, client.DryRunAll); err != nil {
				t.Errorf("the API server refuses the policy example: %v", err)
			}
			ran["policy"]++
		case b.marker == "status: annotation":
			// The Secret's status annotation: the fields exist in the API (strict decoding).
			dec := json.NewDecoder(strings.NewReader(strings.Join(b.lines, "\n")))
			dec.DisallowUnknownFields()
			var a v1alpha1.NamespaceKafkaAccess
			if err := dec.Decode(&a); err != nil || a.Namespace != "team-a" || len(a.Conditions) != 1 {
				t.Errorf("the status annotation example: %v", err)
			}
			ran["annotation"]++
		case b.marker == "status: policy":
			var p v1alpha1.LogRouterPolicy
			if err := yaml.UnmarshalStrict([]byte(strings.Join(b.lines, "\n")), &p); err != nil || p.Status.KafkaAccessSummary == nil {
				t.Errorf("the policy status example: %v", err)
			}
			ran["status"]++
		case b.lang == "sh" && strings.Contains(strings.Join(b.lines, "\n"), "jsonpath='{.metadata.annotations."):
			// The annotation's name, as kubectl's jsonpath spells it; the value is read back
			// from the API server.
			want := "jsonpath='{.metadata.annotations." + strings.ReplaceAll(AnnotationKafkaAccess, ".", `\.`) + "}'"
			if !strings.Contains(b.lines[0], want) {
				t.Errorf("the kubectl line %q does not read %s", b.lines[0], want)
			}
			var sec corev1.Secret
			if err := e.c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: KafkaSecretName}, &sec); err != nil {
				t.Fatal(err)
			}
			var a v1alpha1.NamespaceKafkaAccess
			if err := json.Unmarshal([]byte(sec.Annotations[AnnotationKafkaAccess]), &a); err != nil || a.Namespace != "team-a" {
				t.Errorf("team-a's Secret annotation: %v", err)
			}
			ran["kubectl"]++
		}
	}
	if ran["kcat"] != 3 || ran["go"] != 2 || ran["policy"] != 1 || ran["status"] != 1 || ran["annotation"] != 1 || ran["kubectl"] != 1 {
		t.Errorf("ran %v of docs/kafka-access.md's examples", ran)
	}
	// The Java example loads client.properties: its keys and the JAAS line with the credential.
	props := string(s.Data["client.properties"])
	u, p := creds(s)
	for _, want := range []string{"bootstrap.servers=" + e.brokers + "\n", "security.protocol=SASL_PLAINTEXT\n", "sasl.mechanism=SCRAM-SHA-512\n",
		`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="` + u + `" password="` + p + `";`} {
		if !strings.Contains(props, want) {
			t.Errorf("client.properties lacks %q:\n%s", want, props)
		}
	}
}
