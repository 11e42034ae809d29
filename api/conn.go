package api

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/logrouter/logrouter/api/problem"
)

// headerBytes is the size of r's request line and header fields as a client sends them with
// one space after each colon ("Name: value\r\n" each, Host included, and the blank line):
// the block --max-header-bytes limits. net/http's own MaxHeaderBytes check allows 4096 bytes
// more than configured, so the exact limit is enforced here.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	for i, te := range r.TransferEncoding { // net/http moves Transfer-Encoding out of Header
		if i == 0 {
			n += len("Transfer-Encoding: ") + 2
		} else {
			n += len(", ")
		}
		n += len(te)
	}
	return n + 2
}

// netHTTPErrorHeaders follow the status line of the answers net/http writes by itself, before
// any handler runs, to a request it cannot parse (a bad percent-escape in the path, a header
// block over its limit, a bad Host). Handler responses always carry a Date header after
// Connection, so they never match.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// problemListener hands out connections that turn net/http's own plain-text refusals into
// problem+json, so that every error of the API has the documented shape. With tls set it also
// terminates TLS itself: net/http would otherwise write its refusals to the *tls.Conn, where
// they can no longer be seen.
type problemListener struct {
	net.Listener
	g   *Gateway
	tls *tls.Config
}

func (l *problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	return &problemConn{Conn: c, g: l.g}, nil
}

// problemConn is one connection; under TLS, Conn is the *tls.Conn, which handshakes on the
// first read, under the deadline net/http sets for reading the request (--read-header-timeout).
// It has no ConnectionState method on purpose: net/http would then take it for TLS and not
// serve HTTP/2 on it.
type problemConn struct {
	net.Conn
	g *Gateway
}

func (c *problemConn) Write(b []byte) (int, error) {
	status, why, ok := netHTTPError(b)
	if !ok {
		return c.Conn.Write(b)
	}
	if _, err := c.Conn.Write(c.g.unparsed(status, why, c.RemoteAddr())); err != nil {
		return 0, err
	}
	return len(b), nil
}

// netHTTPError reports whether b is one of net/http's own refusals, with its status and the
// reason net/http put in the status line, if any ("400 Bad Request: missing required Host
// header").
func netHTTPError(b []byte) (status int, why string, ok bool) {
	const prefix = "HTTP/1.1 "
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0, "", false
	}
	i := bytes.Index(b, []byte(netHTTPErrorHeaders))
	if i < len(prefix)+3 || bytes.Contains(b[:i], []byte("\r\n")) {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(b[len(prefix) : len(prefix)+3]))
	if err != nil || status < 400 || status > 599 {
		return 0, "", false
	}
	_, why, _ = strings.Cut(string(b[len(prefix)+3:i]), ": ")
	return status, why, true
}

// unparsed renders the problem response for a request net/http refused before routing, and
// counts and audits it like any other request.
func (g *Gateway) unparsed(status int, why string, remote net.Addr) []byte {
	e := &problem.Error{Status: status, Code: problem.CodeBadRequest,
		Detail: "the request could not be parsed (for example a bad percent-escape such as %zz in the path, or a malformed header line)"}
	switch {
	case status == http.StatusRequestHeaderFieldsTooLarge:
		e.Code, e.Detail = problem.CodeHeaderTooLarge, fmt.Sprintf("the request line and headers are larger than %d bytes (--max-header-bytes)", g.cfg.MaxHeaderBytes)
	case why != "":
		e.Detail = "the request could not be parsed: " + why
	}
	g.m.requests.WithLabelValues("other", strconv.Itoa(status), e.Code).Inc()
	g.log.Info("audit", "principal", "", "namespace", "", "endpoint", "other", "method", "",
		"status", status, "code", e.Code, "bytes", 0, "duration_ms", 0, "remote", hostOf(remote.String()))
	body := problem.Body("", e)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), problem.ContentType, len(body), body)
}
