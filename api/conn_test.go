package api

import (
	"strings"
	"testing"
)

func TestNetHTTPError(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int
		why    string
		ok     bool
	}{
		{"bad request", "HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "400 Bad Request", 400, "", true},
		{"with reason", "HTTP/1.1 400 Bad Request: missing required Host header" + netHTTPErrorHeaders + "400 Bad Request: missing required Host header", 400, "missing required Host header", true},
		{"too large", "HTTP/1.1 431 Request Header Fields Too Large" + netHTTPErrorHeaders + "431 Request Header Fields Too Large", 431, "", true},
		{"unsupported transfer encoding", "HTTP/1.1 501 Not Implemented" + netHTTPErrorHeaders + "Unsupported transfer encoding", 501, "", true},
		// A handler's http.Error-style answer carries more headers (Date at least).
		{"handler response", "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbad\n", 0, "", false},
		{"ok response", "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: x\r\n\r\n", 0, "", false},
		{"not a status line", "hello" + netHTTPErrorHeaders, 0, "", false},
		{"short", "HTTP/1.1 4" + netHTTPErrorHeaders, 0, "", false},
		{"success status", "HTTP/1.1 200 OK" + netHTTPErrorHeaders, 0, "", false},
		{"body write", "HTTP/1.1 ", 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, why, ok := netHTTPError([]byte(tt.in))
			if status != tt.status || why != tt.why || ok != tt.ok {
				t.Fatalf("netHTTPError = %d, %q, %v; want %d, %q, %v", status, why, ok, tt.status, tt.why, tt.ok)
			}
		})
	}
}

func FuzzNetHTTPError(f *testing.F) {
	f.Add([]byte("HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "400 Bad Request"))
	f.Add([]byte("HTTP/1.1 4" + netHTTPErrorHeaders))
	f.Fuzz(func(t *testing.T, b []byte) {
		status, _, ok := netHTTPError(b)
		if ok && (status < 400 || status > 599 || !strings.HasPrefix(string(b), "HTTP/1.1 ")) {
			t.Fatalf("matched %q as %d", b, status)
		}
	})
}
