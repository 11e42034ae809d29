package integration

// Compatibility of the collector's namespace topics with the clients teams use to read them:
// IBM/sarama consumer groups and Debian's kcat (librdkafka). The collector runs in-process
// against kfake; each client reads logs.<namespace> and every record is decoded per the
// documented schema (collectortest.Workload.Verify).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/record"
	"github.com/logrouter/logrouter/router"
)

// defaultCompression is the collector's default codec (router.DefaultConfig), what teams'
// consumers meet in a deployment.
var defaultCompression = router.DefaultConfig().Sink.Compression

// compatSetup runs the collector, producing with the given compression codec, against an
// in-process kfake broker over a fake node with two namespaces of 2 pods x 2 containers, half
// of each container's lines written before it starts and half while it runs, and returns once
// every line is in Kafka and the collector has stopped.
func compatSetup(t *testing.T, compression string, lines int) (w *collectortest.Workload, brokers string) {
	t.Helper()
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	brokers = cl.ListenAddrs()[0]
	w = collectortest.NewWorkload(t, []string{"team-a", "team-b"}, 2, []string{"app", "sidecar"})
	w.Write(t, lines/2, 200) // a backlog before the collector starts
	cfg := collectortest.Config(t, w.Node, brokers, 3)
	cfg.Sink.Compression = compression
	col := collectortest.Start(t, cfg)
	w.Write(t, lines-lines/2, 200) // and lines while it runs
	adm := collectortest.Admin(t, brokers)
	collectortest.WaitForRecords(t, adm, w.Want(), 30*time.Second)
	if err := col.Stop(); err != nil {
		t.Fatal(err)
	}
	// Stopped and flushed: nothing more may arrive.
	collectortest.WaitForRecords(t, adm, w.Want(), 5*time.Second)
	for topic, n := range w.Want() {
		collectortest.CheckCompression(t, brokers, topic, compression, int(n))
	}
	return w, brokers
}

// saramaHandler collects what its claims deliver and marks each message consumed.
type saramaHandler struct {
	mu     sync.Mutex
	msgs   []collectortest.Msg
	setups int
	got    chan struct{} // signalled after each message
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.setups++
	h.mu.Unlock()
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			msg := collectortest.Msg{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
				Key: bytes.Clone(m.Key), Value: bytes.Clone(m.Value)}
			for _, hd := range m.Headers {
				msg.Headers = append(msg.Headers, collectortest.Header{Key: string(hd.Key), Value: string(hd.Value)})
			}
			h.mu.Lock()
			h.msgs = append(h.msgs, msg)
			h.mu.Unlock()
			sess.MarkMessage(m, "")
			select {
			case h.got <- struct{}{}:
			default:
			}
		}
	}
}

func (h *saramaHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// saramaGroupRead reads topic with a sarama consumer group (one member, oldest offset first)
// until it has want messages or the timeout passes, then closes the group, which commits.
func saramaGroupRead(t *testing.T, brokers, group, topic string, version sarama.KafkaVersion, want int, timeout time.Duration) []collectortest.Msg {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "logrouter-compat-test"
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	cfg.Metadata.RefreshFrequency = time.Second
	// A loaded CI machine with the race detector can stall heartbeats; a rebalance would
	// re-deliver what was not committed yet and fail the exactly-once check for no fault of
	// the collector.
	cfg.Consumer.Group.Session.Timeout = 30 * time.Second
	g, err := sarama.NewConsumerGroup([]string{brokers}, group, cfg)
	if err != nil {
		t.Fatalf("sarama %s: new consumer group: %v", version, err)
	}
	closed := false
	defer func() {
		if !closed {
			g.Close()
		}
	}()
	h := &saramaHandler{got: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					break
				}
				done <- err
				return
			}
		}
		done <- nil
	}()
	var groupErrs []error
	var errMu sync.Mutex
	go func() {
		for err := range g.Errors() {
			errMu.Lock()
			groupErrs = append(groupErrs, err)
			errMu.Unlock()
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
wait:
	for h.count() < want {
		select {
		case <-h.got:
		case err := <-done:
			t.Fatalf("sarama %s: consume: %v", version, err)
		case <-timer.C:
			break wait
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("sarama %s: consume: %v", version, err)
	}
	closed = true
	if err := g.Close(); err != nil {
		t.Errorf("sarama %s: close: %v", version, err)
	}
	errMu.Lock()
	for _, err := range groupErrs {
		t.Errorf("sarama %s: consumer group error: %v", version, err)
	}
	errMu.Unlock()
	if n := h.count(); n < want {
		t.Errorf("sarama %s: read %d of %d messages from %s in %s", version, n, want, topic, timeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.setups != 1 {
		t.Logf("sarama %s: %d group sessions (the lone member was rebalanced)", version, h.setups)
	}
	return h.msgs
}

// TestCollectorCompatSaramaConsumerGroup: a sarama consumer group per namespace reads the
// collector's logs.<namespace> topic from the start; every line arrives exactly once, in order
// per container, under the container's key and in one partition per container, with the
// documented headers and value fields; the group's commits land at the end offsets.
func TestCollectorCompatSaramaConsumerGroup(t *testing.T) {
	w, brokers := compatSetup(t, defaultCompression, 300)
	schema := collectortest.LoadSchema(t)
	collectortest.CheckSchemaDocumentsFields(t, schema)
	adm := collectortest.Admin(t, brokers)
	want := w.Want()
	for _, v := range []sarama.KafkaVersion{sarama.V2_8_0_0, sarama.V3_6_0_0, sarama.V4_1_0_0} {
		t.Run("kafka-"+v.String(), func(t *testing.T) {
			for _, ns := range w.Namespaces {
				topic := collectortest.Topic(ns)
				group := fmt.Sprintf("compat-sarama-%s-%s", v, ns)
				msgs := saramaGroupRead(t, brokers, group, topic, v, int(want[topic]), 20*time.Second)
				w.Verify(t, "sarama "+v.String(), ns, schema, msgs)
				collectortest.CheckCommitted(t, adm, group, topic)
			}
		})
	}
}

// kcatPath returns kcat's path, or skips the test when it is not installed
// (.ci/provision-collector.sh installs Debian's kcat).
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH (install Debian's kcat: .ci/provision-collector.sh or apt-get install -y kcat); skipping the librdkafka compatibility test")
	}
	return p
}

// runKcat runs kcat with args, bounded by timeout, and returns its stdout.
func runKcat(t *testing.T, kcat string, timeout time.Duration, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v (timeout %s)\nstderr:\n%s", strings.Join(args, " "), err, timeout, stderr.String())
	}
	return stdout.Bytes()
}

// parseKcatJSON parses kcat -J output: one JSON envelope per line.
func parseKcatJSON(t *testing.T, out []byte) []collectortest.Msg {
	t.Helper()
	var msgs []collectortest.Msg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var env struct {
			Topic     string          `json:"topic"`
			Partition int32           `json:"partition"`
			Offset    int64           `json:"offset"`
			Headers   json.RawMessage `json:"headers"`
			Key       *string         `json:"key"`
			Payload   *string         `json:"payload"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			t.Fatalf("kcat -J: %v: %.300s", err, line)
		}
		if env.Key == nil || env.Payload == nil {
			t.Fatalf("kcat -J: record without key or payload: %.300s", line)
		}
		m := collectortest.Msg{Topic: env.Topic, Partition: env.Partition, Offset: env.Offset, Key: []byte(*env.Key), Value: []byte(*env.Payload)}
		// kcat 1.7 writes headers as a flat array ["k1","v1","k2","v2",...].
		if len(env.Headers) > 0 {
			var flat []string
			if err := json.Unmarshal(env.Headers, &flat); err != nil || len(flat)%2 != 0 {
				t.Fatalf("kcat -J: headers %s: want a flat [key, value, ...] array", env.Headers)
			}
			for i := 0; i < len(flat); i += 2 {
				m.Headers = append(m.Headers, collectortest.Header{Key: flat[i], Value: flat[i+1]})
			}
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// parseKcatFormat parses kcat -f '%t\t%p\t%o\t%k\t%h\t%s\n' output. The value is JSON, which
// holds no raw tab or newline, and the headers ("k=v,k=v") hold no comma or tab.
func parseKcatFormat(t *testing.T, out []byte) []collectortest.Msg {
	t.Helper()
	var msgs []collectortest.Msg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "\t", 6)
		if len(f) != 6 {
			t.Fatalf("kcat -f: %d fields in %.300q", len(f), line)
		}
		p, err1 := strconv.ParseInt(f[1], 10, 32)
		o, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("kcat -f: partition/offset in %.300q", line)
		}
		m := collectortest.Msg{Topic: f[0], Partition: int32(p), Offset: o, Key: []byte(f[3]), Value: []byte(f[5])}
		if f[4] != "" {
			for _, kv := range strings.Split(f[4], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("kcat -f: header %q in %.300q", kv, line)
				}
				m.Headers = append(m.Headers, collectortest.Header{Key: k, Value: v})
			}
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestCollectorCompatKcat: Debian's kcat (librdkafka) reads each logs.<namespace> topic from
// the beginning to its end, once with the JSON envelope (-J) and once with a format string
// (-f), and every record checks out per the documented schema.
func TestCollectorCompatKcat(t *testing.T) {
	kcat := kcatPath(t)
	w, brokers := compatSetup(t, defaultCompression, 300)
	schema := collectortest.LoadSchema(t)
	collectortest.CheckSchemaDocumentsFields(t, schema)
	adm := collectortest.Admin(t, brokers)
	for _, ns := range w.Namespaces {
		topic := collectortest.Topic(ns)
		common := []string{"-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "10"}
		t.Run("json-envelope/"+ns, func(t *testing.T) {
			out := runKcat(t, kcat, 30*time.Second, append(common, "-J")...)
			w.Verify(t, "kcat -J", ns, schema, parseKcatJSON(t, out))
		})
		t.Run("format/"+ns, func(t *testing.T) {
			out := runKcat(t, kcat, 30*time.Second, append(common, "-f", `%t\t%p\t%o\t%k\t%h\t%s\n`)...)
			w.Verify(t, "kcat -f", ns, schema, parseKcatFormat(t, out))
		})
		t.Run("consumer-group/"+ns, func(t *testing.T) {
			// librdkafka's balanced consumer (kcat -G): joins a group, reads from the earliest
			// offset to the end of every assigned partition, and commits on exit.
			group := "compat-kcat-" + ns
			out := runKcat(t, kcat, 30*time.Second, "-b", brokers, "-G", group, "-X", "auto.offset.reset=earliest",
				"-e", "-q", "-m", "10", "-J", topic)
			w.Verify(t, "kcat -G", ns, schema, parseKcatJSON(t, out))
			collectortest.CheckCommitted(t, adm, group, topic)
		})
	}
}

// TestCollectorCompatCompression: with each of the collector's other --compression codecs
// (zstd, the default, is covered above), a sarama consumer group and kcat decode the batches
// and every record checks out.
func TestCollectorCompatCompression(t *testing.T) {
	for _, codec := range []string{"gzip", "snappy", "lz4", "none"} {
		if codec == defaultCompression {
			continue
		}
		t.Run(codec, func(t *testing.T) {
			w, brokers := compatSetup(t, codec, 100)
			schema := collectortest.LoadSchema(t)
			want := w.Want()
			adm := collectortest.Admin(t, brokers)
			ns := w.Namespaces[0]
			topic := collectortest.Topic(ns)
			group := "compat-compression-" + codec
			msgs := saramaGroupRead(t, brokers, group, topic, sarama.V3_6_0_0, int(want[topic]), 20*time.Second)
			w.Verify(t, "sarama "+codec, ns, schema, msgs)
			collectortest.CheckCommitted(t, adm, group, topic)
			if kcat, err := exec.LookPath("kcat"); err == nil {
				out := runKcat(t, kcat, 30*time.Second, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "10", "-J")
				w.Verify(t, "kcat "+codec, ns, schema, parseKcatJSON(t, out))
			} else {
				t.Log("kcat is not on PATH: only sarama checked")
			}
		})
	}
}

// TestCollectorCompatBinary runs the shipped binary, `logrouter collect`, configured as the
// DaemonSet is (flags, LOGROUTER_* environment variables and NODE_NAME), stops it with SIGTERM
// as Kubernetes does, and reads what it produced with a sarama consumer group and kcat.
// LOGROUTER_BIN names a prebuilt binary; without it the test builds ./cmd/logrouter.
func TestCollectorCompatBinary(t *testing.T) {
	bin := collectortest.Binary(t)
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	brokers := cl.ListenAddrs()[0]
	w := collectortest.NewWorkload(t, []string{"team-a", "team-b"}, 2, []string{"app", "sidecar"})
	w.Write(t, 100, 200)
	env := []string{
		"NODE_NAME=" + collectortest.NodeName,
		"LOGROUTER_BROKERS=" + brokers,
		"LOGROUTER_CHECKPOINT_DIR=" + t.TempDir(),
		"LOGROUTER_KUBERNETES=false", // no API server here: path metadata only
	}
	p := collectortest.StartBinary(t, bin, env, "collect",
		"--log-dir", w.Node.LogDir, "--pods-dir", w.Node.PodsDir,
		"--topic-partitions", "3", "--metrics-addr", "127.0.0.1:0",
		"--poll-interval", "20ms", "--scan-interval", "50ms", "--checkpoint-interval", "50ms", "--shutdown-grace", "10s")
	w.Write(t, 100, 200)
	adm := collectortest.Admin(t, brokers)
	collectortest.WaitForRecordsWhile(t, adm, w.Want(), 30*time.Second, func() error {
		if p.Exited() {
			return fmt.Errorf("logrouter collect exited early:\n%s", p.Stderr.String())
		}
		return nil
	})
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatalf("logrouter collect after SIGTERM: %v\n%s", err, p.Stderr.String())
	}
	collectortest.WaitForRecords(t, adm, w.Want(), 5*time.Second)
	for topic, n := range w.Want() {
		collectortest.CheckCompression(t, brokers, topic, defaultCompression, int(n))
	}
	schema := collectortest.LoadSchema(t)
	want := w.Want()
	kcat, kcatErr := exec.LookPath("kcat")
	for _, ns := range w.Namespaces {
		topic := collectortest.Topic(ns)
		group := "compat-binary-" + ns
		msgs := saramaGroupRead(t, brokers, group, topic, sarama.V3_6_0_0, int(want[topic]), 20*time.Second)
		w.Verify(t, "sarama", ns, schema, msgs)
		collectortest.CheckCommitted(t, adm, group, topic)
		if kcatErr == nil {
			out := runKcat(t, kcat, 30*time.Second, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "10", "-J")
			w.Verify(t, "kcat", ns, schema, parseKcatJSON(t, out))
		}
	}
	if kcatErr != nil {
		t.Log("kcat is not on PATH: only sarama checked")
	}
}

// TestCollectorCompatOptionalFields: records that carry the schema's optional fields (a line
// of invalid UTF-8 with message_base64, the chunks of an oversized line with split, a line the
// runtime's framing does not parse with parse_error) and a message full of characters JSON
// must escape read the same through sarama and kcat: byte-identical values, decoded per the
// schema into exactly the lines written.
func TestCollectorCompatOptionalFields(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	brokers := cl.ListenAddrs()[0]
	w := collectortest.NewWorkload(t, []string{"team-a"}, 1, []string{"app"})
	c := w.Containers[0] // CRI
	ts := time.Now().UTC()
	long := strings.Repeat("0123456789", 300)
	escapes := "h\u00e9llo \u2713 \U0001F680 \u2028 tab\t quote\" backslash\\ ctrl\x01\x1f del\x7f </script>"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Write(ts, "stdout", "before"))
	must(c.WriteRaw([]byte("this is not CRI\n")))
	must(c.Write(ts, "stderr", "bad \xff\xfe utf8"))
	must(c.Write(ts, "stdout", long))
	must(c.Write(ts, "stdout", escapes))
	must(c.Write(ts, "stdout", "after"))
	cfg := collectortest.Config(t, w.Node, brokers, 3)
	cfg.MaxLineBytes = 1000
	col := collectortest.Start(t, cfg)
	topic := collectortest.Topic("team-a")
	collectortest.WaitForMessage(t, brokers, topic, "after", 30*time.Second)
	if err := col.Stop(); err != nil {
		t.Fatal(err)
	}
	adm := collectortest.Admin(t, brokers)
	total := collectortest.TopicRecords(t, adm, topic)
	schema := collectortest.LoadSchema(t)

	check := func(t *testing.T, client string, msgs []collectortest.Msg) map[int64]string {
		t.Helper()
		if int64(len(msgs)) != total {
			t.Fatalf("%s: read %d records, the topic holds %d", client, len(msgs), total)
		}
		slices.SortFunc(msgs, func(a, b collectortest.Msg) int { return int(a.Offset - b.Offset) })
		values := map[int64]string{}
		var recs []record.Record
		for _, m := range msgs {
			if m.Partition != msgs[0].Partition {
				t.Fatalf("%s: one container's records in partitions %d and %d", client, msgs[0].Partition, m.Partition)
			}
			if string(m.Key) != c.ID {
				t.Errorf("%s: key %q, want %q", client, m.Key, c.ID)
			}
			if err := collectortest.CheckFields(schema, m.Value); err != nil {
				t.Errorf("%s: offset %d: %v: %.300s", client, m.Offset, err, m.Value)
			}
			rec, err := record.Decode(m.Value)
			if err != nil {
				t.Fatalf("%s: offset %d: %v", client, m.Offset, err)
			}
			recs = append(recs, rec)
			values[m.Offset] = string(m.Value)
		}
		// Reassemble split chunks; everything else is one record per line.
		var lines []record.Record
		var joined strings.Builder
		next := 0
		for i, r := range recs {
			if r.Split == nil {
				if next != 0 {
					t.Fatalf("%s: record %d: unsplit record inside a split line", client, i)
				}
				lines = append(lines, r)
				continue
			}
			if r.Split.Index != next || len(r.Message) > cfg.MaxLineBytes {
				t.Fatalf("%s: record %d: split %+v with %d bytes, want index %d of at most %d bytes", client, i, *r.Split, len(r.Message), next, cfg.MaxLineBytes)
			}
			joined.WriteString(r.Message)
			next++
			if r.Split.Last {
				r.Message, r.Split = joined.String(), nil
				lines = append(lines, r)
				joined.Reset()
				next = 0
			}
		}
		if next != 0 {
			t.Fatalf("%s: split line not finished", client)
		}
		if chunks := len(recs) - 5; chunks < (len(long)+cfg.MaxLineBytes-1)/cfg.MaxLineBytes {
			t.Errorf("%s: the %d-byte line came in %d records, want at least %d chunks of --max-line-bytes %d", client, len(long), chunks, (len(long)+cfg.MaxLineBytes-1)/cfg.MaxLineBytes, cfg.MaxLineBytes)
		}
		type want struct {
			msg, stream, parseErr string
			b64                   []byte
		}
		wants := []want{
			{msg: "before", stream: "stdout"},
			{msg: "this is not CRI", parseErr: "*"},
			{msg: "bad \ufffd\ufffd utf8", stream: "stderr", b64: []byte("bad \xff\xfe utf8")},
			{msg: long, stream: "stdout"},
			{msg: escapes, stream: "stdout"},
			{msg: "after", stream: "stdout"},
		}
		if len(lines) != len(wants) {
			t.Fatalf("%s: %d lines after reassembly, want %d", client, len(lines), len(wants))
		}
		for i, wl := range wants {
			l := lines[i]
			if l.Message != wl.msg || !bytes.Equal(l.MessageBase64, wl.b64) || (wl.parseErr == "") != (l.ParseError == "") ||
				(wl.parseErr == "" && (l.Stream != wl.stream || !l.Time.Equal(ts))) ||
				l.Namespace != "team-a" || l.Pod != c.Pod || l.Container != c.Name || l.ContainerID != c.ID || l.Node != collectortest.NodeName {
				t.Errorf("%s: line %d: %+v\nwant message %.60q stream %q parse error %v message_base64 %q", client, i, l, wl.msg, wl.stream, wl.parseErr != "", wl.b64)
			}
		}
		return values
	}

	msgs := saramaGroupRead(t, brokers, "compat-optional-fields", topic, sarama.V3_6_0_0, int(total), 20*time.Second)
	fromSarama := check(t, "sarama", msgs)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Log("kcat is not on PATH: only sarama checked")
		return
	}
	out := runKcat(t, kcat, 30*time.Second, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "10", "-J")
	fromKcat := check(t, "kcat -J", parseKcatJSON(t, out))
	for off, v := range fromSarama {
		if fromKcat[off] != v {
			t.Errorf("offset %d: sarama and kcat read different values:\n%.300s\n%.300s", off, v, fromKcat[off])
		}
	}
}
