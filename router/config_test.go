package router

import (
	"strings"
	"testing"
)

func TestConfigCluster(t *testing.T) {
	for _, tt := range []struct {
		cluster string
		wantErr string
	}{
		{"", ""},
		{"eu-1", ""},
		{"prod.eu-west-1", ""},
		{"EU", `--cluster "EU"`},
		{"a_b", `--cluster "a_b"`},
		{"-a", `--cluster "-a"`},
		{strings.Repeat("a", 254), `--cluster "` + strings.Repeat("a", 254) + `"`},
	} {
		c := DefaultConfig()
		c.LogDir, c.CheckpointDir, c.Sink.Kafka.Brokers = "/var/log/containers", "/tmp/x", "127.0.0.1:9092"
		c.Cluster = tt.cluster
		err := c.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("--cluster %q: got %v, want %q", tt.cluster, err, tt.wantErr)
		}
	}
}
