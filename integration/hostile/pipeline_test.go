package hostile_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logrouter/logrouter/integration/collectortest"
)

// pipeline is the system under test: kfake on TCP in the test process, and the real collector,
// archiver (into a file:// bucket) and gateway binaries as separate processes.
type pipeline struct {
	t         *testing.T
	bin       string
	brokers   string
	node      string // root of the node's log directories
	logDir    string
	podsDir   string
	bucketDir string
	colAddr   string
	arAddr    string // archiver's metrics
	gwAddr    string
	collector *collectortest.Process
	archiver  *collectortest.Process
	gateway   *collectortest.Process
	kafka     *kafkaStore
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startPipeline(t *testing.T, logDir, podsDir string) *pipeline {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	dir := t.TempDir()
	p := &pipeline{t: t, bin: collectortest.Binary(t), brokers: kc.ListenAddrs()[0], logDir: logDir, podsDir: podsDir,
		bucketDir: filepath.Join(dir, "bucket"), colAddr: freeAddr(t), gwAddr: freeAddr(t), arAddr: freeAddr(t)}
	if err := os.Mkdir(p.bucketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.collector = collectortest.StartBinary(t, p.bin, nil, "collect",
		"--kubernetes=false", "--brokers", p.brokers, "--node-name", "node-1",
		"--log-dir", logDir, "--pods-dir", podsDir,
		"--checkpoint-dir", filepath.Join(dir, "checkpoints"), "--metrics-addr", p.colAddr,
		"--poll-interval", "20ms", "--scan-interval", "100ms", "--checkpoint-interval", "100ms",
		"--rotated-idle", "300ms")
	p.archiver = collectortest.StartBinary(t, p.bin, nil, "archive",
		"--brokers", p.brokers, "--bucket", "file://"+p.bucketDir, "--spool-dir", filepath.Join(dir, "spool"),
		"--metrics-addr", p.arAddr, "--max-object-age", "1s", "--topic-refresh", "500ms")
	p.gateway = collectortest.StartBinary(t, p.bin, nil, "gateway",
		"--brokers", p.brokers, "--listen", p.gwAddr, "--metrics-addr", "", "--bucket", "file://"+p.bucketDir)
	p.kafka = newKafkaStore(t, p.brokers)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// The whole logs of a failed run, for the analysis (the failure shows their tails).
		for name, c := range map[string]*collectortest.Process{"collector": p.collector, "archiver": p.archiver, "gateway": p.gateway} {
			f, err := os.CreateTemp("", "hostile-"+name+"-*.log")
			if err == nil {
				_, _ = f.WriteString(c.Stderr.String())
				f.Close()
				t.Logf("%s log: %s", name, f.Name())
			}
		}
	})
	return p
}

// alive fails the test when a component exited on its own.
func (p *pipeline) alive() {
	p.t.Helper()
	for name, c := range map[string]*collectortest.Process{"collector": p.collector, "archiver": p.archiver, "gateway": p.gateway} {
		if c.Exited() {
			p.t.Fatalf("%s exited:\n%s", name, tail(c.Stderr.String(), 4000))
		}
	}
}

// waitFor polls cond every 100 ms until it returns "" or timeout passes (then it fails with
// cond's last reason).
func (p *pipeline) waitFor(what string, timeout time.Duration, cond func() string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		p.alive()
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not done after %s: %s\ncollector log:\n%s", what, timeout, why, tail(p.collector.Stderr.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics scrapes the collector's /metrics: series (name and labels as exposed) to value.
func (p *pipeline) metrics() map[string]float64 { return scrape(p.colAddr) }

// scrape reads a component's /metrics: series (name and labels as exposed) to value.
func scrape(addr string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil // not listening yet
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// logLines returns the collector's log lines (JSON) whose msg starts with prefix.
func (p *pipeline) logLines(prefix string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(p.collector.Stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			if s, _ := m["msg"].(string); strings.HasPrefix(s, prefix) {
				out = append(out, m)
			}
		}
	}
	return out
}

// token creates a gateway token for namespace ns with `logrouter tokens create`.
func (p *pipeline) token(ns string) string {
	p.t.Helper()
	cmd := exec.Command(p.bin, "tokens", "create", "--brokers", p.brokers, "--namespace", ns, "--name", "corpus-"+ns)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("tokens create: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// get runs a gateway request and returns the whole body.
func (p *pipeline) get(path, token, accept string) []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.gwAddr+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET %s: %s\n%s", path, resp.Status, tail(string(body), 2000))
	}
	return body
}

// rec is one Kafka record of the collector, decoded.
type rec struct {
	Topic     string
	Partition int32
	Offset    int64
	Value     []byte
	R         struct {
		Message       string `json:"message"`
		MessageBase64 []byte `json:"message_base64"`
		Stream        string `json:"stream"`
		Namespace     string `json:"namespace"`
		Pod           string `json:"pod"`
		Container     string `json:"container"`
		File          string `json:"file"`
		Src           string `json:"src"`
		Offset        int64  `json:"offset"`
		ParseError    string `json:"parse_error"`
		Split         *struct {
			Index int  `json:"index"`
			Last  bool `json:"last"`
		} `json:"split"`
	}
}

// bytes is the record's message as the line's bytes.
func (r *rec) bytes() []byte {
	if r.R.MessageBase64 != nil {
		return r.R.MessageBase64
	}
	return []byte(r.R.Message)
}

// kafkaStore consumes every namespace topic from its start, in the background.
type kafkaStore struct {
	mu   sync.Mutex
	recs []*rec
	bad  []string
	byTP map[string]map[int32]map[int64]*rec
}

func newKafkaStore(t *testing.T, brokers string) *kafkaStore {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^logs\.`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(200*time.Millisecond), kgo.MetadataMaxAge(500*time.Millisecond),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	s := &kafkaStore{byTP: map[string]map[int32]map[int64]*rec{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				x := &rec{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: r.Value}
				err := json.Unmarshal(r.Value, &x.R)
				s.mu.Lock()
				defer s.mu.Unlock()
				if err != nil {
					s.bad = append(s.bad, fmt.Sprintf("%s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err))
					return
				}
				s.recs = append(s.recs, x)
				if s.byTP[r.Topic] == nil {
					s.byTP[r.Topic] = map[int32]map[int64]*rec{}
				}
				if s.byTP[r.Topic][r.Partition] == nil {
					s.byTP[r.Topic][r.Partition] = map[int64]*rec{}
				}
				s.byTP[r.Topic][r.Partition][r.Offset] = x
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return s
}

// pod returns the records of one pod, in file order (offset, then split index).
func (s *kafkaStore) pod(ns, pod string) []*rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*rec
	for _, r := range s.recs {
		if r.R.Namespace == ns && r.R.Pod == pod {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.R.Src != b.R.Src {
			return false // another file of the container: keep Kafka's order
		}
		if a.R.Offset != b.R.Offset {
			return a.R.Offset < b.R.Offset
		}
		return splitIndex(a) < splitIndex(b)
	})
	return out
}

func splitIndex(r *rec) int {
	if r.R.Split == nil {
		return -1
	}
	return r.R.Split.Index
}

// topic returns every record of a topic.
func (s *kafkaStore) topic(name string) []*rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*rec
	for _, r := range s.recs {
		if r.Topic == name {
			out = append(out, r)
		}
	}
	return out
}

func (s *kafkaStore) at(topic string, partition int32, offset int64) *rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byTP[topic][partition][offset]
}

// logical is one line put back together from its records (split chunks joined).
type logical struct {
	msg        []byte
	stream     string
	parseError string
	split      bool
	recs       []*rec
}

// join puts a pod's records back into lines: split chunks of one line are joined in index
// order. A problem (a chunk missing, a line without its last chunk) is returned.
func join(recs []*rec) ([]logical, string) {
	var out []logical
	for i := 0; i < len(recs); i++ {
		r := recs[i]
		l := logical{msg: append([]byte(nil), r.bytes()...), stream: r.R.Stream, parseError: r.R.ParseError, recs: []*rec{r}}
		if r.R.Split != nil {
			l.split = true
			if r.R.Split.Index != 0 {
				return out, fmt.Sprintf("offset %d: first chunk has index %d", r.R.Offset, r.R.Split.Index)
			}
			for !recs[i].R.Split.Last {
				i++
				// A chunk's offset is where its first part lies: the chunks of a line are the
				// next records in file order.
				if i == len(recs) || recs[i].R.Split == nil || recs[i].R.Split.Index != len(l.recs) {
					return out, fmt.Sprintf("offset %d: chunk %d missing", r.R.Offset, len(l.recs))
				}
				l.msg = append(l.msg, recs[i].bytes()...)
				l.recs = append(l.recs, recs[i])
			}
		}
		out = append(out, l)
	}
	return out, ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func short(b []byte) string {
	if len(b) > 120 {
		return fmt.Sprintf("%q... (%d bytes)", b[:120], len(b))
	}
	return strconv.Quote(string(b))
}

// archived reads every Parquet object of the bucket with parquet-go's generic row reader (not
// the archiver's reader): rows by Kafka position.
type archRow struct {
	file       string
	message    string
	bytes      []byte
	hasBytes   bool
	parseError string
	splitIndex int32
	hasSplit   bool
}

func readArchive(t *testing.T, dir string) (map[[3]string][]archRow, int) {
	t.Helper()
	rows := map[[3]string][]archRow{}
	objects := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") || !strings.Contains(path, "namespace=") {
			return err
		}
		objects++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		col := map[string]int{}
		for _, name := range []string{"message", "message_bytes", "parse_error", "split_index", "kafka_topic", "kafka_partition", "kafka_offset"} {
			leaf, ok := f.Schema().Lookup(name)
			if !ok {
				return fmt.Errorf("%s: no column %s", path, name)
			}
			col[name] = leaf.ColumnIndex
		}
		r := parquet.NewReader(f)
		defer r.Close()
		buf := make([]parquet.Row, 64)
		for {
			k, err := r.ReadRows(buf)
			for _, row := range buf[:k] {
				vals := map[int]parquet.Value{}
				for _, v := range row {
					vals[v.Column()] = v
				}
				a := archRow{file: path, message: string(vals[col["message"]].ByteArray()), parseError: string(vals[col["parse_error"]].ByteArray())}
				if v := vals[col["message_bytes"]]; !v.IsNull() {
					a.hasBytes, a.bytes = true, append([]byte(nil), v.ByteArray()...)
				}
				if v := vals[col["split_index"]]; !v.IsNull() {
					a.hasSplit, a.splitIndex = true, v.Int32()
				}
				k := [3]string{string(vals[col["kafka_topic"]].ByteArray()), strconv.Itoa(int(vals[col["kafka_partition"]].Int32())), strconv.FormatInt(vals[col["kafka_offset"]].Int64(), 10)}
				rows[k] = append(rows[k], a)
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, objects
}

func posKey(r *rec) [3]string {
	return [3]string{r.Topic, strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Offset, 10)}
}

// sseEvent is one Server-Sent Events block.
type sseEvent struct {
	event, id, data string
	hasData         bool
}

// parseSSE splits a text/event-stream body into events as a browser does (HTML's event stream
// interpretation: lines end in CRLF, LF or CR; "field: value"; blank line dispatches).
func parseSSE(body []byte) []sseEvent {
	var out []sseEvent
	var cur sseEvent
	var data []string
	lines := regexp.MustCompile(`\r\n|\r|\n`).Split(string(body), -1)
	for _, l := range lines {
		if l == "" {
			if cur.hasData || cur.event != "" {
				cur.data = strings.Join(data, "\n")
				out = append(out, cur)
			}
			cur, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			cur.event = value
		case "id":
			cur.id = value
		case "data":
			cur.hasData = true
			data = append(data, value)
		}
	}
	return out
}
