package main

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPrecreateTopics: bench's --precreate-max-message-bytes creates every bench namespace's
// topic with the given limit, as docs/benchmarks.md runs it.
func TestPrecreateTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := precreateTopics(ctx, c.ListenAddrs()[0], 3, 1048588); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "logs.bench-0", "logs.bench-1", "logs.bench-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		got := ""
		for _, cfg := range rc.Configs {
			if cfg.Key == "max.message.bytes" && cfg.Value != nil {
				got = *cfg.Value
			}
		}
		if rc.Err != nil || got != "1048588" {
			t.Errorf("%s: max.message.bytes %q, err %v", rc.Name, got, rc.Err)
		}
	}
}
