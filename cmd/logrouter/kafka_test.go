//go:build !collector

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-shellwords"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/logrouter/logrouter/internal/kafkaacl"
)

// TestKafkaACLsDoc: the output docs/kafka-access.md shows for `logrouter kafka acls --print`
// is what it prints, and every `logrouter kafka acls --print` line of the doc runs.
func TestKafkaACLsDoc(t *testing.T) {
	raw, err := os.ReadFile("../../docs/kafka-access.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	// The certificate the `kafka principal` examples read.
	dir := t.TempDir()
	writeCert(t, filepath.Join(dir, "collector.crt"), pkix.Name{CommonName: "logrouter-collector", OrganizationalUnit: []string{"logging"}, Organization: []string{"example"}})
	t.Chdir(dir)
	run := func(line string) string {
		t.Helper()
		args, err := shellwords.Parse(strings.TrimPrefix(line, "logrouter "))
		if err != nil {
			t.Fatal(err)
		}
		if i := indexOf(args, "#"); i >= 0 { // a comment after the command
			args = args[:i]
		}
		var out, errb bytes.Buffer
		if err := runKafka(context.Background(), args[1:], &out, &errb); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, errb.String())
		}
		return out.String()
	}
	outputs, commands := 0, 0
	for i, l := range lines {
		if cmd, ok := strings.CutPrefix(l, "<!-- output: "); ok {
			cmd = strings.TrimSuffix(cmd, " -->")
			j := i + 2
			var want []string
			for ; lines[j] != "```"; j++ {
				want = append(want, lines[j])
			}
			if got := run(cmd); got != strings.Join(want, "\n")+"\n" {
				t.Errorf("%s prints:\n%s\nthe doc shows:\n%s", cmd, got, strings.Join(want, "\n"))
			}
			outputs++
		}
		if strings.HasPrefix(l, "logrouter kafka acls --print") {
			if out := run(l); !strings.Contains(out, "logrouter-collector") {
				t.Errorf("%s: %q", l, out)
			}
			commands++
		}
	}
	if outputs != 3 || commands != 3 {
		t.Errorf("ran %d outputs and %d commands of docs/kafka-access.md", outputs, commands)
	}
}

// writeCert writes a self-signed certificate with this subject as PEM.
func writeCert(t *testing.T, path string, subject pkix.Name) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaPrincipalErrors: what `kafka principal` and the template refuse, and why.
func TestKafkaPrincipalErrors(t *testing.T) {
	dir := t.TempDir()
	crt := filepath.Join(dir, "c.crt")
	writeCert(t, crt, pkix.Name{CommonName: "x"})
	if err := os.WriteFile(filepath.Join(dir, "junk"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"principal"}, "--cert is required"},
		{[]string{"principal", "--cert", filepath.Join(dir, "junk")}, "no PEM CERTIFICATE block"},
		{[]string{"principal", "--cert", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"principal", "--cert", crt, "--mapping-rules", "RULE:^CN=y$/y/"}, "Kafka refuses this certificate"},
		{[]string{"principal", "--cert", crt, "--mapping-rules", "bogus"}, "invalid rule"},
		{[]string{"acls", "--print", "--principal-template", "CN=logrouter-{component}"}, "starts with User:"},
		{[]string{"acls", "--print", "--principal-template", "User:CN=logrouter"}, "needs {component}"},
	} {
		var out, errb bytes.Buffer
		err := runKafka(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// TestKafkaACLsApply: --apply creates every component's ACLs in a Kafka that enforces them,
// twice without change; a principal that may not manage ACLs gets Kafka's refusal.
func TestKafkaACLsApply(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-pw"), kfake.User("SCRAM-SHA-512", "team", "team-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	apply := func(user, pass string) (string, error) {
		var out, errb bytes.Buffer
		err := runKafka(context.Background(), []string{"acls", "--apply", "--brokers", brokers, "--kafka-sasl-mechanism", "SCRAM-SHA-512",
			"--kafka-sasl-user", user, "--kafka-sasl-password", pass, "--timeout", "20s"}, &out, &errb)
		return out.String(), err
	}
	for range 2 {
		out, err := apply("admin", "admin-pw")
		if err != nil || out != "25 ACLs in place\n" {
			t.Fatalf("--apply: %q %v", out, err)
		}
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	want := kafkaacl.Components{Collector: "User:logrouter-collector", Archiver: "User:logrouter-archiver", Gateway: "User:logrouter-gateway",
		Controller: "User:logrouter-controller", TopicPrefix: "logs.", ArchiverGroup: "logrouter-archiver", TokenTopic: "logrouter.tokens",
		CountersTopic: "logrouter.pipeline-counters", KafkaAccess: true}.Bindings()
	for _, name := range kafkaacl.ComponentNames {
		got, err := kafkaacl.List(context.Background(), admin, "User:logrouter-"+name)
		if err != nil {
			t.Fatal(err)
		}
		w := append([]kafkaacl.Binding(nil), want[name]...)
		kafkaacl.Sort(w)
		if len(got) != len(w) || len(got) == 0 {
			t.Errorf("%s: got %v, want %v", name, got, w)
			continue
		}
		for i := range got {
			if got[i] != w[i] {
				t.Errorf("%s: got %v, want %v", name, got[i], w[i])
			}
		}
	}
	if _, err := apply("team", "team-pw"); err == nil || !strings.Contains(err.Error(), "CLUSTER_AUTHORIZATION_FAILED") || !strings.Contains(err.Error(), "needs ALTER and DESCRIBE on the cluster") {
		t.Errorf("--apply as a principal without ALTER on the cluster: %v", err)
	}
}
