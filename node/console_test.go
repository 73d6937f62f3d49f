package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The web console's browser tests: headless Chromium (Debian's chromium,
// installed by make deps) driven with chromedp against `sluice up` as a
// process, syncing real PostgreSQL databases. Screenshots of each page
// go to the test's artifact directory (go test -artifacts keeps them);
// SLUICE_CONSOLE_DOC=path writes the task page's to path (the README's
// docs/console-task.png).

// consoleSetup is a running `sluice up` with a task "shop" in its
// incremental phase over orders (seeded) and items, and a browser.
type consoleSetup struct {
	p       pair
	proc    *sluicetest.Process
	c       *coordinator.Client
	browser context.Context
	written int // changes written to orders after its full sync
}

const consoleSeedRows = 3000

func newConsoleSetup(t *testing.T) *consoleSetup {
	t.Helper()
	browser := consoleBrowser(t)
	s := &consoleSetup{p: newPair(t), browser: browser}
	src := testenv.Conn(t, s.p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, fmt.Sprintf(`CREATE TABLE orders (id int PRIMARY KEY, v text);
		INSERT INTO orders SELECT g, 'seed' FROM generate_series(1, %d) g;
		ANALYZE orders;
		CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, 'item' FROM generate_series(1, 50) g`, consoleSeedRows))
	s.proc = sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	s.c = s.proc.Client()
	createTask(t, s.c, taskYAML("shop", s.p, "    tables: [orders]\n"))
	waitPhase(t, s.c, "shop", proto.PhaseIncremental, 2*time.Minute)
	waitEqual(t, s.p, []string{"public.orders"}, time.Minute)
	s.write(t, 30)
	return s
}

// write makes n changes to orders at the source, one transaction each
// (nothing coalesces): inserts, then an update and a delete of each
// fifth, and waits until the destination holds the same rows and the
// task counts every change as applied.
func (s *consoleSetup) write(t *testing.T, n int) {
	t.Helper()
	src := testenv.Conn(t, s.p.src.DSN(testenv.DefaultDB))
	base := consoleSeedRows + 1000 + s.written
	for i := range n {
		id := base + i
		switch {
		case i%5 == 3:
			testenv.MustExec(t, src, `UPDATE orders SET v = 'changed' WHERE id = $1`, id-1)
		case i%5 == 4:
			testenv.MustExec(t, src, `DELETE FROM orders WHERE id = $1`, id-2)
		default:
			testenv.MustExec(t, src, `INSERT INTO orders VALUES ($1, 'new')`, id)
		}
	}
	s.written += n
	waitEqual(t, s.p, []string{"public.orders"}, time.Minute)
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		if got := s.status(t).RowsApplied; got != int64(s.written) {
			return fmt.Errorf("rows applied %d, want the %d changes written", got, s.written)
		}
		return nil
	})
}

// status is `sluice task get shop -o json`, as a user reads it.
func (s *consoleSetup) status(t *testing.T) proto.TaskStatus {
	t.Helper()
	var st proto.TaskStatus
	if err := json.Unmarshal([]byte(cli(t, s.proc, "task", "get", "shop", "-o", "json")), &st); err != nil {
		t.Fatalf("task get -o json: %v", err)
	}
	return st
}

// The console against a live task: the pages' figures against task get,
// create (with the precheck shown) / pause / resume / update / delete /
// drain / undrain through the UI, and a read token that cannot act. It
// takes well under a minute, so it runs in make test.
func TestConsolePagesAndActions(t *testing.T) {
	s := newConsoleSetup(t)
	ctx := context.Background()
	tab := consoleTab(t, s.browser)

	// Tasks page: the task's row against task get.
	consoleLogin(t, tab, s.proc.URL+"/ui/", s.proc.Token)
	want := s.status(t)
	row := `tr[data-task="shop"] `
	uiWaitText(t, tab, row+`[data-field="rows-applied"]`, thousands(want.RowsApplied))
	uiExpectText(t, tab, row+`[data-field="phase"]`, string(want.Phase))
	uiExpectText(t, tab, row+`.badge`, string(want.State))
	uiExpectText(t, tab, `[data-count="running"] b`, "1")
	consoleShot(t, tab, "tasks.png")

	// Task page: the figures, the tables and the spec.
	uiNavigate(t, tab, s.proc.URL+"/ui/tasks/shop")
	checkTaskPage(t, tab, want)
	if spec := uiText(t, tab, "#spec"); !strings.Contains(spec, "name: shop") || !strings.Contains(spec, "- orders") {
		t.Fatalf("the spec shown is not the task's as YAML:\n%s", spec)
	}
	consoleShot(t, tab, "task.png")

	// Pause and resume through the UI: the API's state follows, and
	// changes written while paused arrive after the resume.
	uiClick(t, tab, "#pause")
	waitState(t, s.c, "shop", proto.StatePaused, time.Minute)
	uiWaitText(t, tab, `#summary [data-field="state"]`, "paused")
	uiClick(t, tab, "#resume")
	waitState(t, s.c, "shop", proto.StateRunning, time.Minute)
	uiWaitText(t, tab, `#summary [data-field="state"]`, "running")
	s.write(t, 10)
	uiWaitText(t, tab, `#summary [data-field="rows-applied"]`, thousands(s.status(t).RowsApplied))

	// Update through the UI: the spec (as YAML, edited) is sent back with
	// items added; the task syncs it.
	uiClick(t, tab, "#update")
	edited := uiEval[string](t, tab, `document.querySelector('#update-yaml').value`)
	if !strings.Contains(edited, "- orders") {
		t.Fatalf("the update editor holds no spec:\n%s", edited)
	}
	uiFill(t, tab, "#update-yaml", strings.Replace(edited, "- orders", "- orders\n      - items", 1))
	uiClick(t, tab, "#update-save")
	waitEqual(t, s.p, []string{"public.orders", "public.items"}, 2*time.Minute)
	uiWaitText(t, tab, "#spec", "- items")
	uiWaitText(t, tab, `#summary [data-field="tables"]`, "2 / 2")

	// Verify through the UI: the comparison's results are listed, each
	// table equal, as the API records them.
	uiClick(t, tab, "#verify")
	uiWaitText(t, tab, "#flash-text", "Verification of 2 tables")
	uiWaitText(t, tab, "#verifications", "equal (2 tables")
	records, err := s.c.LastVerify(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 {
		t.Fatalf("the API recorded %d verifications, want 2 (orders, items): %+v", len(records), records)
	}
	for _, r := range records {
		sel := fmt.Sprintf(`#verifications tr[data-verified=%q] [data-field="differences"]`, r.Table)
		if r.Differences != 0 || r.Error != "" {
			t.Fatalf("verify of %s: %d differences, %q", r.Table, r.Differences, r.Error)
		}
		uiExpectText(t, tab, sel, "0")
	}

	// Cluster page: the node, drained and undrained through the UI.
	uiNavigate(t, tab, s.proc.URL+"/ui/cluster")
	cs, err := s.c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := cs.Nodes[0].ID
	nodeRow := fmt.Sprintf(`tr[data-node=%q] `, id)
	uiWaitText(t, tab, `[data-field="leader"]`, cs.Leader)
	uiExpectText(t, tab, nodeRow+`[data-field="node-state"]`, "live")
	consoleShot(t, tab, "cluster.png")
	uiClick(t, tab, nodeRow+"button.admin")
	waitDraining(t, s.c, id, true)
	uiWaitText(t, tab, nodeRow+`[data-field="node-state"]`, "draining")
	uiClick(t, tab, nodeRow+"button.admin")
	waitDraining(t, s.c, id, false)
	uiWaitText(t, tab, nodeRow+`[data-field="node-state"]`, "live")
	s.write(t, 10) // the task runs again on the undrained node

	// Create from pasted YAML into a database where items exists already
	// (empty) under conflicting_tables: ignore: the precheck's items are
	// the API's, one by one; its warning blocks until ticked, and is then
	// sent as ?ignore=; the task exists and syncs.
	const dstDB = "second"
	if err := s.p.dst.Exec(ctx, testenv.DefaultDB, "CREATE DATABASE "+dstDB); err != nil {
		t.Fatal(err)
	}
	if err := s.p.dst.Exec(ctx, dstDB, "CREATE TABLE items (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	spec := dsnTaskYAML("shop2", s.p.src.DSN(testenv.DefaultDB), s.p.dst.DSN(dstDB), "    tables: [items]\nconflicting_tables: ignore\n")
	const warning = "destination.conflicting_tables"
	uiNavigate(t, tab, s.proc.URL+"/ui/")
	uiClick(t, tab, "#new-task")
	uiFill(t, tab, "#create-yaml", string(spec))
	uiClick(t, tab, "#precheck")
	uiWaitText(t, tab, "#precheck-verdict", "Something blocks")
	checkPrecheckShown(t, tab, s.c, spec)
	uiClick(t, tab, fmt.Sprintf(`input[data-ignore=%q]`, warning))
	uiClick(t, tab, "#precheck")
	uiWaitText(t, tab, "#precheck-verdict", "Nothing blocks")
	checkPrecheckShown(t, tab, s.c, spec, warning)
	consoleShot(t, tab, "create.png")
	uiClick(t, tab, "#create")
	uiWaitText(t, tab, "#flash-text", "Task shop2 created")
	uiWaitText(t, tab, `tr[data-task="shop2"] td`, "shop2")
	waitConnsEqual(t, testenv.Conn(t, s.p.src.DSN(testenv.DefaultDB)), testenv.Conn(t, s.p.dst.DSN(dstDB)), []string{"public.items"}, 2*time.Minute)

	// Delete with its confirmation: the task is gone from the API.
	uiNavigate(t, tab, s.proc.URL+"/ui/tasks/shop2")
	uiClick(t, tab, "#delete")
	uiClick(t, tab, "#delete-yes")
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		if _, err := s.c.GetTask(ctx, "shop2"); err == nil {
			return fmt.Errorf("task shop2 still exists")
		}
		return nil
	})
	uiWaitText(t, tab, "#counts", "1 total")

	// A read token sees everything and cannot act: the buttons are
	// disabled, and a forced call shows the API's 403.
	read, err := s.c.CreateToken(ctx, coordinator.ScopeRead, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	viewer := consoleTab(t, s.browser) // a new tab: its own session
	uiRun(t, viewer, chromedp.Navigate(s.proc.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"), chromedp.Click(chromedp.CSS("#login button")))
	uiWaitText(t, viewer, "#flash-text", "Login failed: HTTP 401")
	consoleLogin(t, viewer, s.proc.URL+"/ui/tasks/shop", read.Token)
	uiExpectText(t, viewer, "#who", "read-only token")
	checkTaskPage(t, viewer, s.status(t))
	for _, b := range []string{"#pause", "#resume", "#verify", "#update", "#delete"} {
		if !uiEval[bool](t, viewer, fmt.Sprintf(`document.querySelector(%q).disabled`, b)) {
			t.Errorf("%s is enabled for a read token", b)
		}
	}
	uiEval[bool](t, viewer, `(() => { const b = document.querySelector('#pause'); b.disabled = false; b.click(); return true; })()`)
	uiWaitText(t, viewer, "#flash-text", "HTTP 403")
	uiWaitText(t, viewer, "#flash-text", "has scope read")
	consoleShot(t, viewer, "read-token.png")
	if st := s.status(t); st.State != proto.StateRunning {
		t.Fatalf("a read token's forced pause changed the task: %s", st.State)
	}
	s.write(t, 5)
}

// checkPrecheckShown compares the precheck items shown (check id and
// result, in order) with the API's report for spec with ignore.
func checkPrecheckShown(t *testing.T, tab context.Context, c *coordinator.Client, spec []byte, ignore ...string) {
	t.Helper()
	report, err := c.Precheck(context.Background(), spec, ignore...)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range report.Checks {
		want = append(want, p.Check+"="+string(p.Result))
	}
	shown := uiEval[[]string](t, tab, `[...document.querySelectorAll('#precheck-report li.check')].map(li => li.dataset.check + '=' + li.querySelector('.badge').textContent)`)
	if strings.Join(shown, " ") != strings.Join(want, " ") {
		t.Fatalf("precheck shown:\n%v\nthe API's:\n%v", shown, want)
	}
}

// checkTaskPage waits until the task page shows the rows applied of want,
// then compares every figure shown with want.
func checkTaskPage(t *testing.T, tab context.Context, want proto.TaskStatus) {
	t.Helper()
	sum := `#summary [data-field="%s"]`
	uiWaitText(t, tab, fmt.Sprintf(sum, "rows-applied"), thousands(want.RowsApplied))
	uiExpectText(t, tab, fmt.Sprintf(sum, "state"), string(want.State))
	uiExpectText(t, tab, fmt.Sprintf(sum, "phase"), string(want.Phase))
	uiExpectText(t, tab, fmt.Sprintf(sum, "full"), thousands(want.Full.RowsDone)+" / "+thousands(want.Full.RowsEstimated))
	uiExpectText(t, tab, fmt.Sprintf(sum, "tables"), fmt.Sprintf("%d / %d", want.Full.TablesDone, want.Full.TablesTotal))
	if want.Full.RowsDone < consoleSeedRows {
		t.Fatalf("task get shows %d rows copied, want at least %d", want.Full.RowsDone, consoleSeedRows)
	}
	// The charts are drawn once the history answers (an absent endpoint
	// says so instead).
	uiWaitText(t, tab, "#charts", "")
}

func thousands(v int64) string {
	s := strconv.FormatInt(v, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func waitDraining(t *testing.T, c *coordinator.Client, id string, want bool) {
	t.Helper()
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		cs, err := c.ClusterStatus(context.Background())
		if err != nil {
			return err
		}
		for _, n := range cs.Nodes {
			if n.ID == id && n.Draining == want {
				return nil
			}
		}
		return fmt.Errorf("node %s not draining=%v", id, want)
	})
}

// --- the browser ---------------------------------------------------------

// chromiumPath finds Chromium, installing Debian's package (as make deps
// does) when it is missing; "" when it can be neither found nor installed.
func chromiumPath(t *testing.T) string {
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
	script := filepath.Join(filepath.Dir(file), "..", "scripts", "ensure-chromium.sh")
	if out, err := exec.Command(script).CombinedOutput(); err != nil {
		t.Logf("installing chromium failed: %v\n%s", err, out)
		return ""
	}
	return find()
}

// consoleBrowser starts headless Chromium at 1366x768 for the test.
func consoleBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	if path == "" {
		t.Skip("no Chromium: not found on PATH and scripts/ensure-chromium.sh could not install it (run make deps as root or with sudo)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1366, 768),
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

// consoleTab opens a tab: a new target, so a new sessionStorage (no
// token).
func consoleTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatal(err)
	}
	return tab
}

// run runs browser actions, bounded so that a stuck page fails the test.
func uiRun(t *testing.T, tab context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	uiGet(t, tab, chromedp.Steps(actions...))
}

// uiGet runs a browser action that returns a value, bounded like uiRun.
func uiGet[T any](t *testing.T, tab context.Context, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("browser: %v; the page shows:\n%s", err, uiDump(tab))
	}
	return v
}

// uiDump is the page's address and text, for a failure's message.
func uiDump(tab context.Context) string {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(cannot read the page: " + err.Error() + ")"
	}
	return s
}

func uiNavigate(t *testing.T, tab context.Context, url string) {
	t.Helper()
	uiRun(t, tab, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#page > *")))
}

// consoleLogin opens url, logs in with token through the form, and waits
// for the page's first data.
func consoleLogin(t *testing.T, tab context.Context, url, token string) {
	t.Helper()
	uiRun(t, tab, chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("#page > *")),
		chromedp.WaitReady(chromedp.CSS("body[data-loaded]")))
}

func uiClick(t *testing.T, tab context.Context, sel string) {
	t.Helper()
	uiRun(t, tab, chromedp.WaitEnabled(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func uiFill(t *testing.T, tab context.Context, sel, value string) {
	t.Helper()
	uiRun(t, tab, chromedp.SetValue(chromedp.CSS(sel), value))
}

func uiEval[T any](t *testing.T, tab context.Context, js string) T {
	t.Helper()
	return uiGet(t, tab, chromedp.Evaluate[T](js))
}

// pageText is the text of the first element sel selects ("" when none).
func uiText(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	return uiEval[string](t, tab, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// waitPageText waits until sel's text contains want (the page polls the
// API every few seconds), failing with what it shows.
func uiWaitText(t *testing.T, tab context.Context, sel, want string) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		if got := uiText(t, tab, sel); !strings.Contains(got, want) || got == "" {
			return fmt.Errorf("%s shows %q, want %q", sel, got, want)
		}
		return nil
	})
}

func uiExpectText(t *testing.T, tab context.Context, sel, want string) {
	t.Helper()
	if got := uiText(t, tab, sel); got != want {
		t.Fatalf("%s shows %q, want %q (as task get shows)", sel, got, want)
	}
}

// consoleShot writes a PNG of the viewport to the test's artifacts (and,
// for the task page, to SLUICE_CONSOLE_DOC when set).
func consoleShot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png := uiGet(t, tab, chromedp.CaptureScreenshot())
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
	if doc := os.Getenv("SLUICE_CONSOLE_DOC"); doc != "" && name == "task.png" {
		if err := os.WriteFile(doc, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
