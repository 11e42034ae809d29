package integration

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logrouter/logrouter/api"
	"github.com/logrouter/logrouter/api/token"
)

// TestGatewayTLSAndProbes serves HTTPS with --tls-cert/--tls-key and checks the probes, the
// metrics and the OpenAPI document on the API listener.
func TestGatewayTLSAndProbes(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	e := startGateway(t, 1, func(c *api.Config, _ *[]api.Option) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	if !strings.HasPrefix(e.base, "https://") {
		t.Fatalf("base %s", e.base)
	}
	// A client that connects and never starts the TLS handshake is dropped after
	// --read-header-timeout (checked at the end of the test).
	idle, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	e.createTopic("logs.team-a", 1)
	e.produce(seqLines("team-a", 0, 3, 1)...)
	secret, _, err := token.Create(t.Context(), e.kcl, token.DefaultTopic, token.Spec{Namespaces: []string{"team-a"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/v1/namespaces/team-a/logs?limit=3", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if resp.ProtoMajor != 2 || !strings.Contains(string(body), "team-a msg 00002") {
				t.Fatalf("proto %s, body %s", resp.Proto, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for path, want := range map[string]string{
		"/healthz": "ok", "/readyz": "ok", "/openapi.json": `"openapi": "3.0.3"`,
		"/metrics": `logrouter_gateway_requests_total{code="",endpoint="logs",status="200"}`,
	} {
		resp, err := client.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	// Requests net/http refuses before routing are problem+json under TLS too (HTTP/1.1).
	for _, tt := range []struct {
		name, req, code string
		status          int
	}{
		{"bad escape", "GET /v1/namespaces/ns%zz/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "bad_request", 400},
		{"header block over net/http's limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 30000) + "\r\nConnection: close\r\n\r\n", "header_too_large", 431},
		{"header block just over the limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 17000) + "\r\nConnection: close\r\n\r\n", "header_too_large", 431},
	} {
		c, err := tls.Dial("tcp", e.gw.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, tt.req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.StatusCode != tt.status {
			t.Fatalf("%s: status %d", tt.name, resp.StatusCode)
		}
		if code := problemCode(t, resp); code != tt.code {
			t.Fatalf("%s: code %q, want %q", tt.name, code, tt.code)
		}
		c.Close()
	}
	_ = idle.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(idle); err != nil {
		t.Fatalf("idle connection before the handshake was not dropped: %v", err)
	}
	// Plain HTTP to the TLS listener is refused.
	resp, err := http.Get("http://" + e.gw.Addr().String() + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served")
		}
	}
}
