// Package logscmd is `logrouter logs`: flags, the config file, credentials and exit codes
// around package logsclient (which reads the gateway's API) and package logview (which
// renders for the terminal).
package logscmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/logsclient"
	"github.com/logrouter/logrouter/internal/logview"
)

// Exit codes, besides 0 (a bounded read reached its end) and 1 (any other error).
const (
	ExitUsage        = 2 // bad flags or config file
	ExitAuth         = 3 // the gateway refused the credentials (401)
	ExitForbidden    = 4 // the credentials do not grant the namespace (403)
	ExitUnavailable  = 5 // network errors or an unavailable gateway outlasted --retry-for
	exitOtherFailure = 1
)

// ExitError carries the process's exit code.
type ExitError struct {
	Code int
	Err  error
}

// Error is the message, neutralised: it may quote the gateway's answer, which must not control
// the terminal either.
func (e *ExitError) Error() string { return string(logview.Neutralise(nil, e.Err.Error())) }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process's exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// Env is what the command reads from its process.
type Env struct {
	Lookup func(string) (string, bool)
	Home   string
	// IsTerminal reports whether w is a terminal.
	IsTerminal func(w io.Writer) bool
	// Transport is the base HTTP transport (nil: http.DefaultTransport).
	Transport http.RoundTripper
}

// OSEnv is the process's environment.
func OSEnv() Env {
	home, _ := os.UserHomeDir()
	return Env{Lookup: os.LookupEnv, Home: home, IsTerminal: func(w io.Writer) bool {
		f, ok := w.(*os.File)
		return ok && term.IsTerminal(int(f.Fd()))
	}}
}

// Usage is the command's synopsis.
const Usage = `usage: logrouter logs -n NS [-f] [--pod GLOB] [--container NAME] [--grep RE] [--since 2h | --from TIME] [--until TIME] [-o text|json|raw]`

type flags struct {
	namespace, pod, container, grep, since, from, until, output, color string
	gateway, tokenFile, kubeconfig, kubeContext, config, context       string
	follow                                                             bool
	retryFor                                                           time.Duration
}

// Run runs `logrouter logs` with args.
func Run(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("logs", stderr)
	var f flags
	fs.StringVar(&f.namespace, "n", "", "namespace to read (or the context's namespace)")
	fs.StringVar(&f.namespace, "namespace", "", "same as -n")
	fs.BoolVar(&f.follow, "f", false, "keep following new records")
	fs.BoolVar(&f.follow, "follow", false, "same as -f")
	fs.StringVar(&f.pod, "pod", "", "only pods matching this glob (path.Match: web-*, api-[0-9]*); a plain name is filtered by the gateway")
	fs.StringVar(&f.container, "container", "", "only this container")
	fs.StringVar(&f.grep, "grep", "", "only messages matching this RE2 expression (the gateway filters)")
	fs.StringVar(&f.since, "since", "", "start this long ago (2h, 30m, 7d); reaches into the archive for what Kafka no longer holds")
	fs.StringVar(&f.from, "from", "", "start at this time (RFC 3339, e.g. 2026-11-21T10:00:00Z, or a date 2026-11-21)")
	fs.StringVar(&f.until, "until", "", "stop before this time (RFC 3339 or a date); not with -f")
	fs.StringVar(&f.output, "o", "text", "output: text (aligned, coloured on a terminal), json (the records, one per line) or raw (messages only)")
	fs.StringVar(&f.color, "color", "auto", "colour: auto (on a terminal unless NO_COLOR is set), always or never")
	fs.StringVar(&f.gateway, "gateway", "", "gateway URL (or the context's gateway)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token (a logrouter token or a Kubernetes token); else $LOGROUTER_TOKEN, the context, the kubeconfig")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "use this kubeconfig's identity (default: $KUBECONFIG or ~/.kube/config when no token is given)")
	fs.StringVar(&f.kubeContext, "kube-context", "", "kubeconfig context (default: its current context)")
	fs.StringVar(&f.config, "config", "", "config file (default ~/.config/logrouter/config.yaml)")
	fs.StringVar(&f.context, "context", "", "context of the config file (default: its current-context)")
	fs.DurationVar(&f.retryFor, "retry-for", time.Minute, "retry network errors and an unavailable gateway this long before giving up (exit 5)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, Usage+"\n\nexit codes: 0 done, 1 error, 2 usage, 3 not authenticated, 4 namespace not granted, 5 gateway unreachable\n\nflags:")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, env.Lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &ExitError{Code: ExitUsage, Err: err}
	}
	o, err := f.resolve(env, stdout)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	rt, err := f.credentials(env, o.ctx)
	if err != nil {
		return &ExitError{Code: ExitAuth, Err: err}
	}
	warn := func(s string) { fmt.Fprintf(stderr, "logrouter logs: %s\n", logview.Neutralise(nil, s)) }
	c, err := logsclient.New(logsclient.Config{Gateway: o.gateway, HTTP: &http.Client{Transport: rt}, RetryFor: f.retryFor, Warn: warn}, o.namespace)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	p := logview.New(stdout, o.view)
	err = c.Read(ctx, o.query, func(e *logsclient.Entry) error {
		if o.podGlob != "" {
			if ok, _ := path.Match(o.podGlob, e.Pod); !ok {
				return nil
			}
		}
		if err := p.Print(&logview.Line{Time: e.Time, Pod: e.Pod, Container: e.Container, Stream: e.Stream,
			Message: e.Message, Exact: e.MessageBase64, Record: e.Record}); err != nil {
			return err
		}
		if f.follow {
			return p.Flush()
		}
		return nil
	})
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	if f.follow && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // Ctrl-C ends following
	}
	return classify(err, o)
}

func classify(err error, o *options) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, logsclient.ErrUnauthenticated):
		return &ExitError{Code: ExitAuth, Err: fmt.Errorf("the gateway %s refused the credentials: %w", o.gateway, err)}
	case errors.Is(err, logsclient.ErrForbidden):
		return &ExitError{Code: ExitForbidden, Err: fmt.Errorf("the credentials may not read namespace %q: %w", o.namespace, err)}
	case errors.Is(err, logsclient.ErrUnavailable):
		return &ExitError{Code: ExitUnavailable, Err: err}
	}
	return &ExitError{Code: exitOtherFailure, Err: err}
}

type options struct {
	ctx                Context
	gateway, namespace string
	podGlob            string
	query              logsclient.Query
	view               logview.Options
}

// resolve combines flags, the config file's context and the environment into options.
func (f *flags) resolve(env Env, stdout io.Writer) (*options, error) {
	var errs []error
	cfgPath, missingOK := f.config, false
	if cfgPath == "" {
		if v, ok := env.Lookup("LOGROUTER_CONFIG"); ok && v != "" {
			cfgPath = v
		} else {
			cfgPath, missingOK = DefaultConfigPath(env.Lookup, env.Home), true
		}
	}
	file, err := LoadFile(expandHome(cfgPath, env.Home), missingOK)
	if err != nil {
		return nil, err
	}
	cx, err := file.Context(f.context)
	if err != nil {
		return nil, err
	}
	o := &options{ctx: cx, gateway: first(f.gateway, cx.Gateway), namespace: first(f.namespace, cx.Namespace)}
	if o.gateway == "" {
		errs = append(errs, errors.New("no gateway: pass --gateway URL or set gateway in the config file's context"))
	} else if _, err := logsclient.New(logsclient.Config{Gateway: o.gateway}, ""); err != nil {
		errs = append(errs, err) // before credentials: a typo in the URL is the first thing to say
	}
	if o.namespace == "" {
		errs = append(errs, errors.New("no namespace: pass -n NS or set namespace in the config file's context"))
	}
	q := &o.query
	q.Follow, q.Container, q.Grep = f.follow, f.container, f.grep
	if strings.ContainsAny(f.pod, `*?[\`) {
		if _, err := path.Match(f.pod, ""); err != nil {
			errs = append(errs, fmt.Errorf("--pod %q: %w", f.pod, err))
		}
		o.podGlob = f.pod
	} else {
		q.Pod = f.pod
	}
	now := time.Now()
	switch {
	case f.since != "" && f.from != "":
		errs = append(errs, errors.New("--since and --from both say where to start; give one"))
	case f.since != "":
		d, err := parseSince(f.since)
		if err != nil {
			errs = append(errs, err)
		}
		q.From = now.Add(-d)
	case f.from != "":
		if q.From, err = parseTime("--from", f.from); err != nil {
			errs = append(errs, err)
		}
	}
	if f.until != "" {
		if q.Until, err = parseTime("--until", f.until); err != nil {
			errs = append(errs, err)
		}
		if f.follow {
			errs = append(errs, errors.New("--until ends the read and -f follows for ever; give one"))
		}
		if !q.From.IsZero() && !q.Until.IsZero() && !q.From.Before(q.Until) {
			errs = append(errs, errors.New("--until must be after the start"))
		}
	}
	format, err := logview.ParseFormat(f.output)
	if err != nil {
		errs = append(errs, fmt.Errorf("-o: %w", err))
	}
	tty := env.IsTerminal != nil && env.IsTerminal(stdout)
	o.view = logview.Options{Format: format, Terminal: tty}
	switch f.color {
	case "auto":
		noColor, _ := env.Lookup("NO_COLOR")
		o.view.Color = tty && noColor == ""
	case "always":
		o.view.Color = true
	case "never":
	default:
		errs = append(errs, fmt.Errorf("--color %q: want auto, always or never", f.color))
	}
	if f.retryFor <= 0 {
		errs = append(errs, errors.New("--retry-for must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// credentials picks the first identity given: --token-file, $LOGROUTER_TOKEN, the context's
// token-file, the context's (or --kubeconfig's, $KUBECONFIG's, ~/.kube/config's) kubeconfig.
func (f *flags) credentials(env Env, cx Context) (http.RoundTripper, error) {
	base := env.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	if f.tokenFile != "" {
		t, err := readToken(expandHome(f.tokenFile, env.Home))
		if err != nil {
			return nil, err
		}
		return &bearer{token: t, next: base}, nil
	}
	if t, ok := env.Lookup("LOGROUTER_TOKEN"); ok && strings.TrimSpace(t) != "" {
		return &bearer{token: strings.TrimSpace(t), next: base}, nil
	}
	if cx.TokenFile != "" {
		t, err := readToken(expandHome(cx.TokenFile, env.Home))
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", cx.Name, err)
		}
		return &bearer{token: t, next: base}, nil
	}
	kc := first(f.kubeconfig, expandHome(cx.Kubeconfig, env.Home))
	if kc == "" {
		if v, ok := env.Lookup("KUBECONFIG"); ok && v != "" {
			kc = filepath.SplitList(v)[0]
		} else if p := filepath.Join(env.Home, ".kube", "config"); env.Home != "" && exists(p) {
			kc = p
		} else {
			return nil, errNoCredentials
		}
	}
	return kubeTransport(kc, first(f.kubeContext, cx.KubeContext), base)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parseSince parses a duration with a days unit too (7d, 1d12h).
func parseSince(arg string) (time.Duration, error) {
	s := arg
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("--since %q: want a duration such as 2h, 30m or 7d", arg)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			s = "0s"
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d+days <= 0 {
		return 0, fmt.Errorf("--since %q: want a positive duration such as 2h, 30m or 7d", arg)
	}
	return d + days, nil
}

func parseTime(flagName, s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil // without a zone: UTC
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-11-21T10:00:00Z) or a date (2026-11-21)", flagName, s)
}
