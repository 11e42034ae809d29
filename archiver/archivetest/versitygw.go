package archivetest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
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

// StartS3 starts versitygw on 127.0.0.1 with a fresh directory and one bucket, sets the AWS
// credentials in the environment, and returns the gocloud URL of the bucket. It skips the test
// when the server is not installed.
func StartS3(t testing.TB, bucket string) string {
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
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return fmt.Sprintf("s3://%s?region=us-east-1&endpoint=http://%s&use_path_style=true&disable_https=true", bucket, addr)
}
