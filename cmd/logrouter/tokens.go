//go:build !collector

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/params"
	"github.com/logrouter/logrouter/api/token"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/kafkaconn"
)

func init() {
	commands["tokens"] = command{summary: "create, list and revoke gateway tokens (create|list|revoke)", run: runTokens,
		actions: []string{"create", "list", "revoke"}}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const tokensUsage = `usage:
  logrouter tokens create --namespace NS [--namespace NS2] [--ttl 90d] [--name NAME] [--admin] [--gateway-url URL]
  logrouter tokens list [--output table|json]
  logrouter tokens revoke ID`

func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokensUsage)
		return errors.New("missing action")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stderr, tokensUsage+"\n\nRun 'logrouter tokens ACTION -h' for an action's flags.")
		return flag.ErrHelp
	}
	action, args := args[0], args[1:]
	fs := cli.NewFlagSet("tokens "+action, stderr)
	kc := kafkaconn.Config{ClientID: "logrouter-tokens"}
	kc.Register(fs, "localhost:9092")
	topic := fs.String("token-topic", token.DefaultTopic, "compacted Kafka topic holding the token store (the gateway's --token-topic)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var namespaces multiFlag
	var name, ttl, output, gatewayURL *string
	var admin *bool
	var id string
	switch action {
	case "create":
		fs.Var(&namespaces, "namespace", "namespace the token may read (repeat for several)")
		name = fs.String("name", "", "a name for people (team, tool)")
		ttl = fs.String("ttl", api.DefaultTTL, "lifetime: days (90d) or a duration (36h); 0 = no expiry")
		admin = fs.Bool("admin", false, "the token may manage tokens over the API (it reads no namespace unless given --namespace)")
		gatewayURL = fs.String("gateway-url", "", "also print ready-to-paste curl commands that use the new token on the gateway at this URL (e.g. http://localhost:8080)")
	case "list":
		output = fs.String("output", "table", "table or json")
	case "revoke":
		// The ID may come first (tokens revoke ID --flags) or last (tokens revoke --flags ID).
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			id, args = args[0], args[1:]
		}
	default:
		fmt.Fprintln(stderr, tokensUsage)
		return fmt.Errorf("unknown action %q", action)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if action == "revoke" && id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := cli.Parse(fs, nil, cli.LookupEnv); err != nil { // LOGROUTER_<FLAG> for flags not given
		return err
	}
	opts, err := kc.Options()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := token.EnsureTopic(ctx, kadm.NewClient(cl), *topic); err != nil {
		return err
	}
	switch action {
	case "create":
		d, err := token.ParseTTL(*ttl)
		spec := token.Spec{Name: *name, Namespaces: namespaces, Admin: *admin, TTL: d}
		if err = errors.Join(err, spec.Validate(params.Namespace)); err != nil {
			return err
		}
		secret, rec, err := token.Create(ctx, cl, *topic, spec, time.Now())
		if err != nil {
			return err
		}
		exp := "never"
		if !rec.ExpiresAt.IsZero() {
			exp = rec.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "created token %s (namespaces %s, admin %v, expires %s); the secret below is shown only once\n",
			rec.ID, strings.Join(rec.Namespaces, ","), rec.Admin, exp)
		fmt.Fprintln(stdout, secret)
		if *gatewayURL != "" {
			for _, ns := range rec.Namespaces {
				fmt.Fprintf(stderr, "\nRead %s with it:\n%s", ns, gatewayCurls(strings.TrimSuffix(*gatewayURL, "/"), secret, ns))
			}
		}
		return nil
	}
	store, err := loadStore(ctx, opts, *topic)
	if err != nil {
		return err
	}
	if action == "revoke" {
		if !token.ValidID(id) {
			return fmt.Errorf("revoke: %q is not a token ID (16 hex digits; see tokens list)", id)
		}
		rec, ok := store.Get(id)
		if !ok {
			return fmt.Errorf("revoke: no token %s", id)
		}
		if _, err := token.Revoke(ctx, cl, *topic, rec, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked token %s; gateways refuse it within seconds\n", id)
		return nil
	}
	list := store.List()
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tNAMESPACES\tADMIN\tCREATED\tEXPIRES\tSTATUS")
	now := time.Now()
	for _, r := range list {
		status := "active"
		if err := r.Check(now); errors.Is(err, token.ErrRevoked) {
			status = "revoked"
		} else if err != nil {
			status = "expired"
		}
		exp := "never"
		if !r.ExpiresAt.IsZero() {
			exp = r.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", r.ID, r.Name, strings.Join(r.Namespaces, ","), r.Admin, r.CreatedAt.Format(time.RFC3339), exp, status)
	}
	return tw.Flush()
}

// loadStore reads the token topic to its end.
func loadStore(ctx context.Context, opts []kgo.Opt, topic string) (*token.Store, error) {
	store, err := token.NewStore(opts, topic, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Run(sctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-store.Ready():
		return store, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading token topic %s: %w", topic, ctx.Err())
	}
}

// gatewayCurls are ready-to-paste requests for a namespace's logs with a token, on the gateway
// at base (http://host:port): follow the live stream from the start, and read one page.
func gatewayCurls(base, secret, namespace string) string {
	return fmt.Sprintf(`  curl -N -H 'Authorization: Bearer %[1]s' -H 'Accept: application/x-ndjson' '%[2]s/v1/namespaces/%[3]s/logs?from=earliest'
  curl -s -H 'Authorization: Bearer %[1]s' '%[2]s/v1/namespaces/%[3]s/logs?limit=5'
`, secret, base, namespace)
}
