package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The pages and files are served with the security headers; anything
// else under /ui/ (a directory listing, a deeper path) is not found.
func TestConsoleHandlerRoutesAndHeaders(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		path, contains string
		code           int
	}{
		{"/ui/", `<script src="/ui/assets/app.js"`, 200},
		{"/ui/cluster", `id="login"`, 200},
		{"/ui/tasks/orders", `id="page"`, 200},
		{"/ui/assets/app.js", "POLL_MS", 200},
		{"/ui/assets/app.css", "--accent", 200},
		{"/ui/assets/", "", 404},
		{"/ui/tasks/orders/x", "", 404},
		{"/ui/other", "", 404},
	} {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rr.Code != c.code || !strings.Contains(rr.Body.String(), c.contains) {
			t.Errorf("GET %s: %d, want %d with %q:\n%.300s", c.path, rr.Code, c.code, c.contains, rr.Body.String())
		}
		if got := rr.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || strings.Contains(got, "unsafe-inline") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, got)
		}
		if got := rr.Header().Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", c.path, got)
		}
	}
	// The page holds no inline script: every script is a file of ours.
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if body := rr.Body.String(); strings.Contains(body, "<script>") || strings.Contains(body, " on") && strings.Contains(body, `onclick=`) {
		t.Errorf("the page has inline script:\n%s", body)
	}
}
