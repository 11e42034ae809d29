package ui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsAreSelfContained: the console loads nothing from elsewhere and never turns text
// into markup, so the CSP can stay strict and log lines stay text. These are the constructs
// that would need a looser policy or parse HTML.
func TestAssetsAreSelfContained(t *testing.T) {
	h := New()
	for _, want := range []string{"index.html", "app.js", "api.js", "tail.js", "logview.js", "style.css"} {
		if _, ok := h.files[want]; !ok {
			t.Errorf("asset %s missing", want)
		}
	}
	forbidden := map[string]*regexp.Regexp{
		"remote URL":         regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`),
		"CSS import of URL":  regexp.MustCompile(`(?i)@import|url\(\s*["']?(https?:)?//`),
		"inline script":      regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`),
		"inline style":       regexp.MustCompile(`(?i)<style|\sstyle\s*=`),
		"event attribute":    regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`),
		"HTML from strings":  regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser`),
		"code from strings":  regexp.MustCompile(`\beval\(|new Function\(|setTimeout\(\s*["'\x60]`),
		"cookies":            regexp.MustCompile(`document\.cookie`),
		"persistent storage": regexp.MustCompile(`localStorage|indexedDB`),
	}
	for name, b := range h.files {
		for what, re := range forbidden {
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s: %s at byte %d: %q", name, what, loc[0], b[loc[0]:min(len(b), loc[1]+20)])
			}
		}
	}
}

func TestHandlerHeaders(t *testing.T) {
	h := New()
	for path, ctype := range map[string]string{"/ui/": "text/html; charset=utf-8", "/ui/app.js": "text/javascript; charset=utf-8", "/ui/style.css": "text/css; charset=utf-8"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ctype {
			t.Errorf("%s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("Content-Security-Policy") != CSP || rec.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", path, rec.Header())
		}
		if !strings.Contains(CSP, "frame-ancestors 'none'") || strings.Contains(CSP, "unsafe") {
			t.Errorf("CSP %q", CSP)
		}
		// Revalidation: the ETag answers 304.
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
		rec2 := httptest.NewRecorder()
		h.ServeHTTP(rec2, req)
		if rec2.Code != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", path, rec2.Code)
		}
	}
	for _, p := range []string{"/ui/x.js", "/ui/assets/app.js", "/ui/../ui/app.js", "/other"} {
		if _, ok := h.Lookup(p); ok {
			t.Errorf("Lookup(%q) found a file", p)
		}
	}
}
