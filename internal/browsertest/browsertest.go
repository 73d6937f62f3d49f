// Package browsertest drives headless Chromium (Debian's chromium, which
// make deps installs) from tests with chromedp, for the web console.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicedb/sluice/internal/testenv"
)

// Width and Height are the viewport: a 1366x768 laptop screen.
const (
	Width  = 1366
	Height = 768
)

// actionTimeout bounds one step, so that a stuck page fails the test.
const actionTimeout = 30 * time.Second

// chromiumPath finds Chromium, installing Debian's package (as make deps
// does) when it is missing; "" when it can be neither found nor installed.
func chromiumPath(t testing.TB) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "ensure-chromium.sh")
	if out, err := exec.Command(script).CombinedOutput(); err != nil {
		t.Logf("installing chromium failed: %v\n%s", err, out)
		return ""
	}
	return find()
}

// Browser starts headless Chromium for the test (stopped at cleanup), or
// skips the test when Chromium can be neither found nor installed.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath(t)
	if path == "" {
		t.Skip("no Chromium: not found on PATH and scripts/ensure-chromium.sh could not install it (run make deps as root or with sudo)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(Width, Height),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(browser); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return browser
}

// Tab is one browser tab: its own target, so its own sessionStorage.
type Tab struct {
	t   testing.TB
	ctx context.Context
}

// NewTab opens a tab of browser at the laptop viewport.
func NewTab(t testing.TB, browser context.Context) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first run on a tab's context opens it, for as long as that
	// run's context lives: so without a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(Width, Height)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return &Tab{t: t, ctx: ctx}
}

// Run runs actions in order, failing the test (with the page's text) on
// an error or after actionTimeout.
func (tab *Tab) Run(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	Get(tab, chromedp.Steps(actions...))
}

// Get runs an action that returns a value, as Run does.
func Get[T any](tab *Tab, action chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		tab.t.Fatalf("browser: %v; the page shows:\n%s", err, tab.dump())
	}
	return v
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	return Get(tab, chromedp.Evaluate[T](js))
}

// dump is the page's address and text, for a failure's message.
func (tab *Tab) dump() string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return s
}

// Click waits until the element is enabled, and clicks it.
func (tab *Tab) Click(sel string) {
	tab.t.Helper()
	tab.Run(chromedp.WaitEnabled(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// Fill sets a field's value.
func (tab *Tab) Fill(sel, value string) {
	tab.t.Helper()
	tab.Run(chromedp.SetValue(chromedp.CSS(sel), value))
}

// Text is the text of the first element sel selects ("" when none).
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return Eval[string](tab, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// WaitText waits until sel's text contains want (and is not empty),
// failing with what it shows after 30 s.
func (tab *Tab) WaitText(sel, want string) {
	tab.t.Helper()
	testenv.CheckFor(tab.t, 30*time.Second, 200*time.Millisecond, func() error {
		if got := tab.Text(sel); got == "" || !strings.Contains(got, want) {
			return fmt.Errorf("%s shows %q, want %q", sel, got, want)
		}
		return nil
	})
}

// ExpectText fails unless sel's text is exactly want.
func (tab *Tab) ExpectText(sel, want string) {
	tab.t.Helper()
	if got := tab.Text(sel); got != want {
		tab.t.Fatalf("%s shows %q, want %q", sel, got, want)
	}
}

// Screenshot writes a PNG of the viewport to the test's artifact
// directory (kept with go test -artifacts) and returns it.
func (tab *Tab) Screenshot(name string) []byte {
	tab.t.Helper()
	png := Get(tab, chromedp.CaptureScreenshot())
	path := filepath.Join(tab.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
	tab.t.Logf("screenshot %s", path)
	return png
}
