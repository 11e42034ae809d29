package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/internal/topic"
)

// precreateTopics creates the bench namespaces' topics with max.message.bytes = limit.
func precreateTopics(ctx context.Context, brokers string, namespaces, limit int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	topics := make([]string, namespaces)
	for i := range topics {
		topics[i] = topic.Of(fmt.Sprintf("bench-%d", i))
	}
	v := strconv.Itoa(limit)
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, 6, 1, map[string]*string{"max.message.bytes": &v}, topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fmt.Errorf("pre-create topics: %w", err)
	}
	return nil
}
