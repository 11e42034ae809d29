// Command sarama reads a namespace's topic with IBM/sarama, using the Secret logrouter-kafka
// mounted as a directory (docs/kafka-access.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	dir := flag.String("secret", "/etc/logrouter-kafka", "where the Secret logrouter-kafka is mounted")
	app := flag.String("app", "my-app", "this application's name: its consumer group is <group.prefix><app>")
	n := flag.Int("n", 0, "stop after this many records (0: run until interrupted)")
	flag.Parse()
	read := func(key string) string {
		b, err := os.ReadFile(filepath.Join(*dir, key))
		if err != nil {
			log.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	cfg := sarama.NewConfig()
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = read("username"), read("password")
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{} }
	cfg.Net.TLS.Enable = read("security.protocol") == "SASL_SSL" // with ca.crt in cfg.Net.TLS.Config.RootCAs
	cfg.Metadata.Full = false                                    // the principal may describe its own topics only
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	group, err := sarama.NewConsumerGroup(strings.Split(read("bootstrap.servers"), ","), read("group.prefix")+*app, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer group.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	h := &handler{n: *n, stop: stop}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{read("topic")}, h); err != nil {
			log.Fatal(err)
		}
	}
}

type handler struct {
	n, seen int
	stop    context.CancelFunc
}

func (*handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		fmt.Printf("%s\n", m.Value)
		s.MarkMessage(m, "")
		if h.seen++; h.n > 0 && h.seen >= h.n {
			s.Commit()
			h.stop()
		}
	}
	return nil
}

// scramClient is sarama's SCRAM client (sarama leaves SCRAM to the application) over
// franz-go's SCRAM implementation; github.com/xdg-go/scram serves as well.
type scramClient struct {
	sess  sasl.Session
	first []byte
	steps int
	done  bool
}

func (c *scramClient) Begin(user, pass, _ string) (err error) {
	c.sess, c.first, err = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism().Authenticate(context.Background(), "")
	return err
}

func (c *scramClient) Step(challenge string) (string, error) {
	if c.steps++; c.steps == 1 {
		return string(c.first), nil
	}
	done, msg, err := c.sess.Challenge([]byte(challenge))
	c.done = done
	return string(msg), err
}

func (c *scramClient) Done() bool { return c.done }
