package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"

	"github.com/logrouter/logrouter/archiver/archivetest"
	"github.com/logrouter/logrouter/archiver/layout"
	"github.com/logrouter/logrouter/integration/collectortest"
	"github.com/logrouter/logrouter/internal/syncbuf"
)

type archiverProc struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
}

func startArchiver(t testing.TB, bin string, args ...string) *archiverProc {
	t.Helper()
	buf := &syncbuf.Buffer{}
	cmd := exec.Command(bin, append([]string{"archive"}, args...)...)
	cmd.Stderr = buf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &archiverProc{cmd: cmd, stderr: buf}
}

// TestArchiveSIGKILLExactlyOnce produces sequence-numbered records to several namespace topics
// (one created mid-test) while an archiver subprocess is SIGKILLed at random points 24 times;
// a last, clean run finishes the archive. Every (topic, partition, offset) must then be in
// exactly one data object, with the record that was produced there.
func TestArchiveSIGKILLExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess kill test")
	}
	bin := collectortest.Binary(t)
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "bucket"), 0o755)
		killTest(t, bin, "file://"+filepath.Join(dir, "bucket"))
	})
	// The same proof against a real S3-compatible server (write-if-absent enforced by the
	// server); skipped when versitygw is not installed.
	t.Run("s3", func(t *testing.T) {
		killTest(t, bin, archivetest.StartS3(t, "archive"))
	})
}

func killTest(t *testing.T, bin, bucketURL string) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "logs.ns-0", "logs.ns-1", "logs.ns-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	brokers := strings.Join(kc.ListenAddrs(), ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("logs.ns-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	dir := t.TempDir()
	args := []string{"--brokers", brokers, "--bucket", bucketURL, "--spool-dir", filepath.Join(dir, "spool"),
		"--group", "kill-test", "--instance-id", "archiver-0", "--metrics-addr", "", "--format", "parquet",
		"--max-object-bytes", "32768", "--max-object-age", "300ms", "--topic-refresh", "300ms",
		"--session-timeout", "6s", "--log-level", "debug"}

	// Producer: sequence-numbered records, batch by batch, while the archiver is killed.
	type produced struct {
		msg string
		pos archivetest.Pos
	}
	var mu sync.Mutex
	var all []produced
	prodDone := make(chan error, 1)
	go func() {
		base := time.Now().Add(-90 * time.Minute) // Kafka time crosses hour boundaries
		seq := 0
		for batch := 0; batch < 60; batch++ {
			if batch == 20 {
				if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "logs.late"); err != nil {
					prodDone <- err
					return
				}
			}
			var rs []*kgo.Record
			for i := 0; i < 250; i++ {
				ns := fmt.Sprintf("ns-%d", seq%3)
				if batch >= 20 && seq%4 == 0 {
					ns = "late" // a topic created while archiving
				}
				kt := base.Add(time.Duration(seq) * 400 * time.Millisecond)
				r := archivetest.Record(archivetest.Line{Namespace: ns, Pod: fmt.Sprintf("pod-%d", seq%7), Container: "app",
					Time: kt, Message: archivetest.Seq(ns, seq) + strings.Repeat("x", seq%300), KafkaTime: kt, Partition: -1})
				rs = append(rs, r)
				seq++
			}
			if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				prodDone <- err
				return
			}
			mu.Lock()
			for _, r := range rs {
				all = append(all, produced{string(r.Value), archivetest.Pos{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}})
			}
			mu.Unlock()
			time.Sleep(150 * time.Millisecond) // production spans the kill phase
		}
		prodDone <- nil
	}()

	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	countClaims := func() int {
		n := 0
		it := b.List(&blob.ListOptions{Prefix: "_claims/"})
		for {
			o, err := it.Next(ctx)
			if err != nil {
				return n
			}
			if strings.HasSuffix(o.Key, ".json") {
				n++
			}
		}
	}
	progressed := 0 // runs that claimed ranges before they were killed

	const kills = 21
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var lastLog string
	for i := 0; i < kills; i++ {
		before := countClaims()
		p := startArchiver(t, bin, args...)
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		// Every third kill lands anywhere from startup on (recovery, joining the group); the
		// others land while the run is archiving (after it took its partitions).
		if i%3 != 0 {
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(p.stderr.String(), "partition position") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("archiver exited before it was killed: %v\n%s", err, tail(p.stderr.String(), 3000))
		case <-time.After(time.Duration(rng.IntN(700)) * time.Millisecond):
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		lastLog = p.stderr.String()
		if countClaims() > before {
			progressed++
		}
		if ctx.Err() != nil {
			t.Fatalf("out of time after %d kills", i)
		}
	}
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	_ = lastLog

	// A clean run finishes the archive; then SIGTERM must drain and exit 0.
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := startArchiver(t, bin, args...)
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	for {
		behind := ""
		ends.Each(func(o kadm.ListedOffset) {
			if !strings.HasPrefix(o.Topic, "logs.") || behind != "" {
				return
			}
			next := int64(0)
			for {
				data, err := b.ReadAll(ctx, layout.ClaimKey("", o.Topic, o.Partition, next))
				if err != nil {
					break
				}
				c, err := layout.DecodeClaim(data)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				next = c.Next()
			}
			if next < o.Offset {
				behind = fmt.Sprintf("%s[%d] %d of %d", o.Topic, o.Partition, next, o.Offset)
			}
		})
		// Done when the archive is complete and this run has taken its partitions (it handles
		// SIGTERM from then on).
		if behind == "" && strings.Contains(p.stderr.String(), "partition position") {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("archiver exited: %v\n%s", err, tail(p.stderr.String(), 3000))
		default:
		}
		if ctx.Err() != nil {
			p.cmd.Process.Kill()
			<-exited
			t.Fatalf("final run did not finish: %s\n%s", behind, tail(p.stderr.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("archiver exit after SIGTERM: %v\n%s", err, tail(p.stderr.String(), 6000))
	}

	audit, err := archivetest.Read(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range audit.Problems {
		t.Error(pr)
	}
	mu.Lock()
	defer mu.Unlock()
	missing, dup := 0, 0
	for _, pr := range all {
		switch n := audit.Count[pr.pos]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
		if r, ok := audit.Rows[pr.pos]; ok && !strings.Contains(pr.msg, r.Message) {
			t.Errorf("%v holds %q, produced %q", pr.pos, r.Message, pr.msg)
		}
	}
	if missing > 0 || dup > 0 || len(audit.Count) != len(all) {
		t.Fatalf("%d records produced, %d archived: %d missing, %d duplicated", len(all), len(audit.Count), missing, dup)
	}
	// Staging objects left behind are uploads a SIGKILL cut off before their claim: evidence
	// that kills landed inside the commit protocol (the sweeper deletes them after a grace).
	staged := 0
	it := b.List(&blob.ListOptions{Prefix: "_staging/"})
	for {
		if _, err := it.Next(ctx); err != nil {
			break
		}
		staged++
	}
	t.Logf("%d records in %d objects after %d SIGKILLs (%d of the killed runs had claimed ranges); %d unclaimed staging objects left by kills",
		len(all), len(audit.Objects), kills, progressed, staged)
	if progressed < kills/2 {
		t.Errorf("only %d of %d killed runs claimed anything: the kills did not exercise the commit protocol", progressed, kills)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
