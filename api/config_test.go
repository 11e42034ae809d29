package api

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		wants []string // substrings of the joined error; none = valid
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "no template placeholder", edit: func(c *Config) { c.TopicTemplate = "logs" }, wants: []string{"--topic-template"}},
		{name: "bad topic chars", edit: func(c *Config) { c.TopicTemplate = "logs/{namespace}" }, wants: []string{"invalid Kafka topic"}},
		{name: "many problems at once", edit: func(c *Config) {
			c.Kafka.Brokers = ""
			c.TLSCertFile = "x"
			c.Heartbeat = 0
			c.MaxStreamsPerToken = -1
			c.TokenTopic = "bad topic"
		}, wants: []string{"--brokers", "--tls-cert", "--heartbeat", "--max-streams-per-token", "--token-topic"}},
		{name: "archive in memory", edit: func(c *Config) { c.Bucket = "mem://" }, wants: []string{"--bucket", "s3, gs, azblob, file"}},
		{name: "file bucket with a host", edit: func(c *Config) { c.Bucket = "file://archive/dir" }, wants: []string{"--bucket", "file:///abs/path"}},
		{name: "file bucket", edit: func(c *Config) { c.Bucket = "file:///var/lib/archive" }},
		{name: "tiny header limit", edit: func(c *Config) { c.MaxHeaderBytes = 100 }, wants: []string{"--max-header-bytes"}},
		{name: "reserved namespaces", edit: func(c *Config) { c.KubeReserved = "node-audit, node-etcd" }},
		{name: "reserved namespace not a name", edit: func(c *Config) { c.KubeReserved = "node-audit,Node_Etcd" }, wants: []string{"--kube-reserved-namespaces", `"Node_Etcd"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	c := DefaultConfig()
	if got := c.Topic("team-a"); got != "logs.team-a" {
		t.Fatalf("Topic = %q", got)
	}
}

func TestDecodeConfig(t *testing.T) {
	c, err := DecodeConfig(strings.NewReader(`{"listen":"127.0.0.1:9000","heartbeat":5000000000}`))
	if err != nil || c.Listen != "127.0.0.1:9000" || c.Heartbeat != 5*time.Second || c.TopicTemplate != "logs.{namespace}" {
		t.Fatalf("DecodeConfig = %+v, %v", c, err)
	}
	for _, bad := range []string{`{"lissten":":1"}`, `{"listen":":1"} {}`, `{"heartbeat":-1}`, `[`} {
		if _, err := DecodeConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("DecodeConfig(%s) accepted", bad)
		}
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept []string
		stream bool
		want   string // "" = 406
	}{
		{nil, true, modePage},
		{[]string{"text/event-stream"}, true, "text/event-stream"},
		{[]string{"application/x-ndjson"}, true, "application/x-ndjson"},
		{[]string{"text/html, application/json;q=0.9"}, true, modePage},
		{[]string{"TEXT/EVENT-STREAM; charset=utf-8"}, true, "text/event-stream"},
		{[]string{"*/*"}, true, modePage},
		{[]string{"text/html"}, true, ""},
		{[]string{"text/event-stream"}, false, ""},
		{[]string{"*/*"}, false, "application/x-ndjson"},
		{nil, false, "application/x-ndjson"},
	}
	for _, tt := range tests {
		got, err := negotiate(tt.accept, tt.stream)
		if (tt.want == "") != (err != nil) || got != tt.want {
			t.Errorf("negotiate(%q, %v) = %q, %v; want %q", tt.accept, tt.stream, got, err, tt.want)
		}
	}
}
