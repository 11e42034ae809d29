package system

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// s3Fault is what the fault proxy does to requests.
type s3Fault int32

const (
	s3Pass     s3Fault = iota
	s3Errors           // every request answered 503 SlowDown
	s3ReadOnly         // writes (PUT, POST, DELETE) answered 403 AccessDenied
	s3Hang             // every request held for 30 s, then answered 504
)

// faultProxy is an HTTP proxy in front of versitygw whose behaviour the test switches.
type faultProxy struct {
	mode     atomic.Int32
	refused  atomic.Int64 // requests answered with a fault
	upstream *url.URL
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch s3Fault(f.mode.Load()) {
	case s3Errors:
		f.refused.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`))
		return
	case s3ReadOnly:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected: read-only bucket</Message></Error>`))
			return
		}
	case s3Hang:
		f.refused.Add(1)
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	httputil.NewSingleHostReverseProxy(f.upstream).ServeHTTP(w, r)
}

var endpointRe = regexp.MustCompile(`endpoint=http://[^&]+`)

// startFaultProxy puts a fault proxy in front of the S3 server of bucketURL and returns the
// proxy and the bucket URL through it.
func startFaultProxy(t *testing.T, bucketURL string) (*faultProxy, string) {
	m := endpointRe.FindString(bucketURL)
	if m == "" {
		t.Fatalf("no endpoint in %s", bucketURL)
	}
	up, err := url.Parse(m[len("endpoint="):])
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &faultProxy{upstream: up}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f, endpointRe.ReplaceAllString(bucketURL, "endpoint=http://"+ln.Addr().String())
}
