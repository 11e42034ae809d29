// Command franzgo reads a namespace's topic with franz-go, using the Secret logrouter-kafka
// mounted as a directory (docs/kafka-access.md).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	dir := flag.String("secret", "/etc/logrouter-kafka", "where the Secret logrouter-kafka is mounted")
	app := flag.String("app", "my-app", "this application's name: its consumer group is <group.prefix><app>")
	n := flag.Int("n", 0, "stop after this many records (0: run until interrupted)")
	flag.Parse()
	read := func(key string) string {
		b, err := os.ReadFile(filepath.Join(*dir, key))
		if err != nil && key != "ca.crt" {
			log.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(read("bootstrap.servers"), ",")...),
		kgo.SASL(scram.Auth{User: read("username"), Pass: read("password")}.AsSha512Mechanism()),
		kgo.ConsumeTopics(read("topic")),               // or kgo.ConsumeRegex() with read("topic.prefix")
		kgo.ConsumerGroup(read("group.prefix") + *app), // a group outside the prefix is refused
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if read("security.protocol") == "SASL_SSL" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := read("ca.crt"); ca != "" {
			tc.RootCAs = x509.NewCertPool()
			tc.RootCAs.AppendCertsFromPEM([]byte(ca))
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for seen := 0; *n == 0 || seen < *n; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(t string, p int32, err error) { log.Fatalf("%s[%d]: %v", t, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			fmt.Printf("%s\n", r.Value)
			seen++
		})
		// The group's offsets are committed by franz-go every 5 s and when the client closes.
	}
}
