//go:build !collector

package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/archiver"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/kafkaacl"
	"github.com/logrouter/logrouter/internal/kafkaconn"
	"github.com/logrouter/logrouter/internal/topic"
)

func init() {
	commands["kafka"] = command{summary: "Kafka ACLs of logrouter's own components (acls --print|--apply), a certificate's principal (principal --cert)", run: runKafka,
		actions: []string{"acls", "principal"}}
}

const kafkaUsage = `usage:
  logrouter kafka acls --print [--format table|kafka-acls] [--principal-template 'User:logrouter-{component}']
  logrouter kafka acls --apply --brokers HOST:PORT [--kafka-sasl-* ...]
  logrouter kafka principal --cert FILE [--mapping-rules RULES]`

// DefaultComponentPrincipalTemplate names each component's principal.
const defaultComponentPrincipalTemplate = "User:logrouter-{component}"

func runKafka(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, kafkaUsage)
		return errors.New("missing action")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stderr, kafkaUsage+"\n\nRun 'logrouter kafka acls -h' for its flags.")
		return flag.ErrHelp
	}
	if args[0] == "principal" {
		return runKafkaPrincipal(args[1:], stdout, stderr)
	}
	if args[0] != "acls" {
		fmt.Fprintln(stderr, kafkaUsage)
		return fmt.Errorf("unknown action %q", args[0])
	}
	fs := cli.NewFlagSet("kafka acls", stderr)
	kc := kafkaconn.Config{ClientID: "logrouter-kafka-acls"}
	kc.Register(fs, "localhost:9092")
	print := fs.Bool("print", false, "print the ACLs")
	apply := fs.Bool("apply", false, "create the ACLs in Kafka (creating an existing ACL changes nothing)")
	format := fs.String("format", "table", "--print format: table, or kafka-acls (kafka-acls.sh command lines)")
	tmpl := fs.String("principal-template", defaultComponentPrincipalTemplate,
		"each component's principal, {component} replaced by collector, archiver, gateway or controller (mTLS: the principal Kafka maps the certificate's subject to, e.g. 'User:CN=logrouter-{component},O=example')")
	skip := fs.String("skip", "", "components to leave out, comma-separated (for example gateway when it is not deployed)")
	prefix := fs.String("topic-prefix", "logs.", "prefix of the namespace topics (the collectors' --topic-template up to {namespace})")
	group := fs.String("archiver-group", archiver.DefaultConfig().Group, "the archiver's consumer group (its --group)")
	tokenTopic := fs.String("token-topic", token.DefaultTopic, "the gateway's token topic (its --token-topic)")
	countersTopic := fs.String("counters-topic", topic.CountersTopic, "the pipeline counters topic")
	access := fs.Bool("kafka-access", true, "the controller provisions teams' Kafka access (cluster ALTER and DESCRIBE: ACLs and SCRAM credentials)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (--apply)")
	if err := cli.Parse(fs, args[1:], cli.LookupEnv); err != nil {
		return err
	}
	var errs []error
	if *print == *apply {
		errs = append(errs, errors.New("give exactly one of --print and --apply"))
	}
	if !strings.Contains(*tmpl, "{component}") {
		errs = append(errs, fmt.Errorf("--principal-template %q: needs {component} (each component its own principal)", *tmpl))
	}
	if !strings.HasPrefix(*tmpl, "User:") || len(*tmpl) == len("User:") {
		errs = append(errs, fmt.Errorf("--principal-template %q: a Kafka principal starts with User: (SASL users and certificate subjects alike)", *tmpl))
	}
	if *format != "table" && *format != "kafka-acls" {
		errs = append(errs, fmt.Errorf("--format %q: want table or kafka-acls", *format))
	}
	if *prefix == "" {
		errs = append(errs, errors.New("--topic-prefix must not be empty (it would grant every topic)"))
	}
	skipped := map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		known := false
		for _, n := range kafkaacl.ComponentNames {
			known = known || n == s
		}
		if !known {
			errs = append(errs, fmt.Errorf("--skip %q: want one of %s", s, strings.Join(kafkaacl.ComponentNames, ", ")))
		}
		skipped[s] = true
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	principal := func(c string) string {
		if skipped[c] {
			return ""
		}
		return strings.ReplaceAll(*tmpl, "{component}", c)
	}
	comps := kafkaacl.Components{
		Collector: principal("collector"), Archiver: principal("archiver"), Gateway: principal("gateway"), Controller: principal("controller"),
		TopicPrefix: *prefix, ArchiverGroup: *group, TokenTopic: *tokenTopic, CountersTopic: *countersTopic, KafkaAccess: *access,
	}
	bindings := comps.Bindings()
	if *print {
		for _, name := range kafkaacl.ComponentNames {
			bs := bindings[name]
			if len(bs) == 0 {
				continue
			}
			if *format == "table" {
				fmt.Fprintf(stdout, "# %s\n", name)
			}
			for _, b := range bs {
				if *format == "kafka-acls" {
					fmt.Fprintln(stdout, kafkaacl.KafkaACLsCommand(b))
				} else {
					fmt.Fprintln(stdout, b)
				}
			}
		}
		return nil
	}
	opts, err := kc.Options()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	n := 0
	for _, name := range kafkaacl.ComponentNames {
		if err := kafkaacl.Create(ctx, cl, bindings[name]); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n += len(bindings[name])
	}
	fmt.Fprintf(stdout, "%d ACLs in place\n", n)
	return nil
}

// runKafkaPrincipal prints the principal Kafka gives a client presenting the certificate, so
// that a platform team sees which --principal-template its certificates need.
func runKafkaPrincipal(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("kafka principal", stderr)
	certFile := fs.String("cert", "", "the client certificate (PEM; the first certificate in the file)")
	rules := fs.String("mapping-rules", "", "the brokers' ssl.principal.mapping.rules (empty: DEFAULT, the whole subject)")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	if *certFile == "" {
		return errors.New("--cert is required")
	}
	raw, err := os.ReadFile(*certFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM CERTIFICATE block", *certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", *certFile, err)
	}
	p, err := kafkaacl.CertPrincipal(cert.RawSubject, *rules)
	if err != nil {
		return fmt.Errorf("%s: %w", *certFile, err)
	}
	fmt.Fprintln(stdout, p)
	return nil
}
