//go:build !collector

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/logrouter/logrouter/archiver/query"
	"github.com/logrouter/logrouter/internal/bucketurl"
	"github.com/logrouter/logrouter/internal/cli"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/internal/topic"
)

func init() {
	commands["query"] = command{summary: "read archived records of a namespace and time range", run: runQuery}
}

// parseQueryTime accepts RFC 3339 or a duration before now ("2h" means two hours ago).
func parseQueryTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	if s == "now" {
		return now, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2026-11-21T10:00:00Z), a duration ago (2h) or now: %q", s)
	}
	return t, nil
}

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("query", stderr)
	bucketURL := fs.String("bucket", "", "archive bucket URL")
	prefix := fs.String("prefix", "", "key prefix of the archive inside the bucket")
	ns := fs.String("namespace", "", "namespace (required)")
	since := fs.String("since", "1h", "start of the range (RFC 3339, or a duration ago)")
	until := fs.String("until", "now", "end of the range, exclusive (RFC 3339, a duration ago, or now)")
	topicName := fs.String("topic", "", "only records of this topic: the namespace's (logs.<ns>) or one of its suffix topics (logs.<ns>.<suffix>); default all of them")
	pod := fs.String("pod", "", "only this pod")
	container := fs.String("container", "", "only this container")
	grep := fs.String("grep", "", "only messages matching this regular expression (RE2)")
	output := fs.String("output", "ndjson", "output: ndjson or text")
	lookahead := fs.Duration("lookahead", 6*time.Hour, "how long after its time a line may have reached Kafka (late lines); later Kafka hours are read for it")
	clockSkew := fs.Duration("clock-skew", time.Hour, "how far a line's time may run ahead of its Kafka time (node clocks ahead, future timestamps); earlier Kafka hours are read for it")
	stats := fs.Bool("stats", false, "print query statistics to stderr")
	if err := cli.Parse(fs, args, cli.LookupEnv); err != nil {
		return err
	}
	now := time.Now()
	req := query.Request{Namespace: *ns, Topic: *topicName, Pod: *pod, Container: *container}
	var errs []error
	var err error
	if *topicName != "" {
		if err := topic.Valid(*topicName); err != nil {
			errs = append(errs, fmt.Errorf("--topic: %w", err))
		}
	}
	if *bucketURL == "" {
		errs = append(errs, errors.New("--bucket is required"))
	} else if err := bucketurl.Check(*bucketURL); err != nil {
		// A misread URL would answer "nothing archived" instead of an error.
		errs = append(errs, fmt.Errorf("--bucket: %w", err))
	}
	if req.Since, err = parseQueryTime(*since, now); err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	if req.Until, err = parseQueryTime(*until, now); err != nil {
		errs = append(errs, fmt.Errorf("--until: %w", err))
	}
	if *grep != "" {
		if req.Grep, err = regexp.Compile(*grep); err != nil {
			errs = append(errs, fmt.Errorf("--grep: %w", err))
		}
	}
	if *lookahead < 0 {
		errs = append(errs, fmt.Errorf("--lookahead %v: want >= 0", *lookahead))
	}
	if *clockSkew < 0 {
		errs = append(errs, fmt.Errorf("--clock-skew %v: want >= 0", *clockSkew))
	}
	if *output != "ndjson" && *output != "text" {
		errs = append(errs, fmt.Errorf("--output %q: want ndjson or text", *output))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b, err := blob.OpenBucket(ctx, *bucketURL)
	if err != nil {
		return fmt.Errorf("open bucket: %w", err)
	}
	defer b.Close()
	w := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	emit := func(r record.Record) error {
		if *output == "text" {
			_, err := fmt.Fprintf(w, "%s %s/%s %s %s\n", r.Time.UTC().Format(time.RFC3339Nano), r.Pod, r.Container, r.Stream, r.Message)
			return err
		}
		return enc.Encode(r)
	}
	st, err := query.New(b, *prefix, query.WithLookahead(*lookahead), query.WithLookbehind(*clockSkew)).Run(ctx, req, emit)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if *stats {
		fmt.Fprintf(stderr, "objects listed %d, opened %d; records scanned %d, matched %d\n", st.ObjectsListed, st.ObjectsOpened, st.RecordsScanned, st.RecordsMatched)
	}
	if err == nil && st.Outside.Any() {
		fmt.Fprintln(stderr, outsideWarning(st.Outside, *clockSkew, *lookahead))
	}
	return err
}

// outsideWarning tells the user that records of the range may sit in Kafka hours the query did
// not read, and which flag to widen.
func outsideWarning(o query.Outside, clockSkew, lookahead time.Duration) string {
	var b strings.Builder
	b.WriteString("warning: records of this range may be missing:")
	if o.Unread > 0 {
		fmt.Fprintf(&b, " %d object(s) in the hour next to the hours read hold records of the range and were not read;", o.Unread)
	}
	if o.Lookbehind > 0 {
		fmt.Fprintf(&b, " lines run further ahead of their Kafka time than --clock-skew %v covers: rerun with --clock-skew %v;", clockSkew, o.Lookbehind)
	}
	if o.Lookahead > 0 {
		fmt.Fprintf(&b, " lines reached Kafka later after their time than --lookahead %v covers: rerun with --lookahead %v;", lookahead, o.Lookahead)
	}
	return strings.TrimSuffix(b.String(), ";")
}
