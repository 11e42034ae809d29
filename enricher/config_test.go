package enricher

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestValidateJoinsAllProblems(t *testing.T) {
	c := DefaultConfig()
	c.NodeName = ""
	c.PodLabels = "a,,b"
	c.NamespaceLabels = "x y"
	c.MetadataWait = -time.Second
	c.DeletedPodGrace = -time.Second
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate = %v, want ErrConfig", err)
	}
	for _, want := range []string{"node name is empty", "--kubernetes-pod-labels", "--kubernetes-namespace-labels",
		"--kubernetes-metadata-wait -1s is negative", "--kubernetes-deleted-pod-grace -1s is negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "--kubernetes-pod-annotations") {
		t.Errorf("valid annotations allow-list reported: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"defaults with node", func(c *Config) { c.NodeName = "n" }, true},
		{"disabled needs no node", func(c *Config) { c.Enabled = false }, true},
		{"no node", func(c *Config) {}, false},
		{"empty allow-lists copy nothing", func(c *Config) { c.NodeName = "n"; c.PodLabels, c.PodAnnotations, c.NamespaceLabels = "", "", "" }, true},
		{"zero wait ships partial at once", func(c *Config) { c.NodeName = "n"; c.MetadataWait = 0 }, true},
		{"bad annotation glob", func(c *Config) { c.NodeName = "n"; c.PodAnnotations = "logrouter.io/*," }, false},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestRegister(t *testing.T) {
	c := DefaultConfig()
	c.NodeName = "n1"
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	// The collector owns --node-name; Register must not collide with it.
	fs.String("node-name", "", "")
	c.Register(fs)
	err := fs.Parse([]string{"--kubernetes=false", "--kubeconfig=/k", "--kubernetes-pod-labels=app",
		"--kubernetes-pod-annotations=a/*", "--kubernetes-namespace-labels=", "--kubernetes-metadata-wait=2s",
		"--kubernetes-deleted-pod-grace=1m"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Enabled: false, Kubeconfig: "/k", NodeName: "n1", PodLabels: "app", PodAnnotations: "a/*",
		NamespaceLabels: "", MetadataWait: 2 * time.Second, DeletedPodGrace: time.Minute}
	if c != want {
		t.Errorf("config = %+v\nwant %+v", c, want)
	}
}

func TestDecodeConfig(t *testing.T) {
	c, err := DecodeConfig(strings.NewReader(`{"nodeName":"n","podLabels":"app","metadataWait":"2s"}`), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "n" || c.PodLabels != "app" || c.MetadataWait != 2*time.Second || c.PodAnnotations != DefaultConfig().PodAnnotations {
		t.Errorf("decoded %+v", c)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"nodeName":"n","podLabel":"app"}`, `unknown field "podLabel"`},
		{`{"nodeName":"n","metadataWait":"soon"}`, `metadataWait: time: invalid duration`},
		{`{"nodeName":"n","deletedPodGrace":5}`, `cannot unmarshal number`},
		{`{"podLabels":"a"}`, `node name is empty`},
		{`{"nodeName":"n"} {}`, `data after the JSON object`},
	} {
		_, err := DecodeConfig(strings.NewReader(tc.in), DefaultConfig())
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeConfig(%s) = %v, want ErrConfig mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	c := DefaultConfig()
	c.NodeName = "n"
	if _, err := New(c, nil, nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New with nil client = %v", err)
	}
	c.Enabled = false
	if _, err := New(c, nil, nil, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New disabled = %v", err)
	}
}

func TestClientFromConfig(t *testing.T) {
	c := DefaultConfig()
	c.Kubeconfig = t.TempDir() + "/missing"
	if _, err := ClientFromConfig(c); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	c.Kubeconfig = ""
	if _, err := ClientFromConfig(c); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in-cluster outside a cluster: %v", err)
	}
}
