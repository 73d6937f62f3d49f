// Package console is the web console every node serves at /ui/: plain
// HTML, CSS and JavaScript embedded in the binary (no CDN, no build step).
// The assets hold no data and need no token; the pages read and act
// through the HTTP API with the token the user logs in with, so the API's
// token scopes decide what a user sees and may do.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// Handler serves the console under Prefix: the page shell for /ui/,
// /ui/tasks/NAME and /ui/cluster, and its static files under
// /ui/assets/. Every answer carries headers that forbid inline scripts,
// other origins and framing.
func Handler() http.Handler {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic("console: embedded assets: " + err.Error())
	}
	mux := http.NewServeMux()
	files := http.StripPrefix(Prefix+"assets/", http.FileServerFS(static))
	mux.Handle("GET "+Prefix+"assets/", noListing(files))
	shell := func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	}
	mux.HandleFunc("GET "+Prefix+"{$}", shell)
	mux.HandleFunc("GET "+Prefix+"cluster", shell)
	mux.HandleFunc("GET "+Prefix+"tasks/{name}", shell)
	return secure(mux)
}

// noListing answers 404 for a directory, which the file server would list.
func noListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// csp allows only the console's own files: no inline script or style, no
// other origin, no framing. img-src allows data: for the favicon.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// A new binary may bring new assets, and they are small: no
		// caching.
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
