package archivetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// VersityGWBinary finds the versitygw S3 server: $LOGROUTER_VERSITYGW, PATH, or the cache
// directory .ci/provision-archiver.sh installs into. It returns "" when there is none.
func VersityGWBinary() string {
	if p := os.Getenv("LOGROUTER_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	cache := os.Getenv("LOGROUTER_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "logrouter")
	}
	p := filepath.Join(cache, "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// S3 is a running versitygw server with one bucket. Its credentials are explicit, never the
// process environment, so tests that each run one may run in parallel: child processes get
// Env, the test process opens the bucket with OpenBucket.
type S3 struct {
	// URL is the gocloud URL of the bucket (path style, plain HTTP).
	URL string
	// Endpoint is the server's base URL, http://host:port.
	Endpoint string
	// Bucket is the bucket's name.
	Bucket            string
	AccessKey, Secret string
}

// Env is what a child process needs to reach the bucket with URL: the credentials, and no
// EC2 metadata lookup (which would wait for a timeout off EC2).
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.Secret, "AWS_EC2_METADATA_DISABLED=true"}
}

// OpenBucket opens the bucket in the test process with the server's credentials (whatever the
// environment holds).
func (s *S3) OpenBucket(ctx context.Context) (*blob.Bucket, error) {
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.Secret, ""),
	})
	b, err := s3blob.OpenBucket(ctx, cl, s.Bucket, nil)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s at %s: %w", s.Bucket, s.Endpoint, err)
	}
	return b, nil
}

// StartS3 starts versitygw (StartS3Server), sets its credentials in the process environment
// (t.Setenv: such a test cannot run in parallel), and returns the gocloud URL of the bucket.
// It skips the test when the server is not installed.
func StartS3(t testing.TB, bucket string) string {
	t.Helper()
	s := StartS3Server(t, bucket)
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return s.URL
}

// StartS3Server starts versitygw on 127.0.0.1 with a fresh directory and one bucket, stopped
// at the end of the test. It skips the test when the server is not installed.
func StartS3Server(t testing.TB, bucket string) *S3 {
	t.Helper()
	bin := VersityGWBinary()
	if bin == "" {
		t.Skip("versitygw not installed: run .ci/provision-archiver.sh or set LOGROUTER_VERSITYGW")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bucket), 0o755); err != nil { // a posix-backend bucket is a directory
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const access, secret = "logrouter-test", "logrouter-test-secret"
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "posix", dir)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw did not start on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &S3{
		URL:      fmt.Sprintf("s3://%s?region=us-east-1&endpoint=http://%s&use_path_style=true&disable_https=true", bucket, addr),
		Endpoint: "http://" + addr, Bucket: bucket, AccessKey: access, Secret: secret,
	}
}
