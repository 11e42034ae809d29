// Package ui is the web console the gateway serves at /ui/: hand-written ES modules, HTML and
// CSS embedded in the binary as they are (no build step, no third-party assets), so it works
// offline and what runs in the browser is exactly what is in this directory. It talks to the
// gateway's public API only, with the bearer token the user pasted (kept in sessionStorage) or
// the one an identity proxy adds. See docs/console.md.
package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// CSP is the console's Content-Security-Policy: only its own scripts and styles (no inline
// ones, no eval), requests only to the gateway itself, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the embedded console. Paths are matched exactly against the embedded files
// (no directory listings, no path cleaning); "/ui/" is index.html.
type Handler struct {
	files map[string][]byte
	// etag per file: the binary is the version, so a reload revalidates cheaply.
	etag map[string]string
}

// New loads the embedded assets.
func New() *Handler {
	h := &Handler{files: map[string][]byte{}, etag: map[string]string{}}
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		h.files[name] = b
		h.etag[name] = etagOf(b)
		return nil
	})
	return h
}

func etagOf(b []byte) string {
	// FNV-1a: a cache validator, not a security control.
	var x uint64 = 14695981039346656037
	for _, c := range b {
		x ^= uint64(c)
		x *= 1099511628211
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 18)
	out = append(out, '"')
	for i := 60; i >= 0; i -= 4 {
		out = append(out, hex[(x>>uint(i))&0xf])
	}
	return string(append(out, '"'))
}

// SetSecurityHeaders sets the headers every console response carries, errors included.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// Lookup returns the asset for an escaped request path under Prefix and its content type;
// ok is false when there is none.
func (h *Handler) Lookup(escapedPath string) (name string, ok bool) {
	rest, found := strings.CutPrefix(escapedPath, Prefix)
	if !found {
		return "", false
	}
	if rest == "" {
		rest = "index.html"
	}
	_, ok = h.files[rest]
	return rest, ok
}

// ServeHTTP serves GET and HEAD of an embedded file; the caller has routed the path here and
// answers unknown paths and other methods itself (as problem+json).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := h.Lookup(r.URL.EscapedPath())
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	SetSecurityHeaders(hd)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8" // not every mime table knows .js
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	}
	hd.Set("Content-Type", ct)
	// no-cache: revalidate every time, so an upgraded gateway never serves a stale module mix.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", h.etag[name]) // ServeContent answers If-None-Match from it
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.files[name]))
}
