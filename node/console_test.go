package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/browsertest"
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
	browser := browsertest.Browser(t)
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
	tab := browsertest.NewTab(t, s.browser)

	// Tasks page: the task's row against task get.
	consoleLogin(tab, s.proc.URL+"/ui/", s.proc.Token)
	want := s.status(t)
	row := `tr[data-task="shop"] `
	tab.WaitText(row+`[data-field="rows-applied"]`, thousands(want.RowsApplied))
	tab.ExpectText(row+`[data-field="phase"]`, string(want.Phase))
	tab.ExpectText(row+`.badge`, string(want.State))
	tab.ExpectText(`[data-count="running"] b`, "1")
	consoleShot(t, tab, "tasks.png")

	// Task page: the figures, the tables and the spec.
	consoleOpen(tab, s.proc.URL+"/ui/tasks/shop")
	checkTaskPage(t, tab, want)
	checkTablesShown(t, tab, s.c)
	if spec := tab.Text("#spec"); !strings.Contains(spec, "name: shop") || !strings.Contains(spec, "- orders") {
		t.Fatalf("the spec shown is not the task's as YAML:\n%s", spec)
	}
	consoleShot(t, tab, "task.png")

	// Pause and resume through the UI: the API's state follows, and
	// changes written while paused arrive after the resume.
	tab.Click("#pause")
	waitState(t, s.c, "shop", proto.StatePaused, time.Minute)
	tab.WaitText(`#summary [data-field="state"]`, "paused")
	tab.Click("#resume")
	waitState(t, s.c, "shop", proto.StateRunning, time.Minute)
	tab.WaitText(`#summary [data-field="state"]`, "running")
	s.write(t, 10)
	tab.WaitText(`#summary [data-field="rows-applied"]`, thousands(s.status(t).RowsApplied))

	// Update through the UI: the spec (as YAML, edited) is sent back with
	// items added; the task syncs it.
	tab.Click("#update")
	edited := browsertest.Eval[string](tab, `document.querySelector('#update-yaml').value`)
	if !strings.Contains(edited, "- orders") {
		t.Fatalf("the update editor holds no spec:\n%s", edited)
	}
	tab.Fill("#update-yaml", strings.Replace(edited, "- orders", "- orders\n      - items", 1))
	tab.Click("#update-save")
	waitEqual(t, s.p, []string{"public.orders", "public.items"}, 2*time.Minute)
	tab.WaitText("#spec", "- items")
	tab.WaitText(`#summary [data-field="tables"]`, "2 / 2")

	// Verify through the UI: the comparison's results are listed, each
	// table equal, as the API records them.
	tab.Click("#verify")
	tab.WaitText("#flash-text", "Verification of 2 tables")
	tab.WaitText("#verifications", "equal (2 tables")
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
		tab.ExpectText(sel, "0")
	}

	// Cluster page: the node, drained and undrained through the UI.
	consoleOpen(tab, s.proc.URL+"/ui/cluster")
	cs, err := s.c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := cs.Nodes[0].ID
	nodeRow := fmt.Sprintf(`tr[data-node=%q] `, id)
	tab.WaitText(`[data-field="leader"]`, cs.Leader)
	tab.ExpectText(nodeRow+`[data-field="node-state"]`, "live")
	consoleShot(t, tab, "cluster.png")
	tab.Click(nodeRow + "button.admin")
	waitDraining(t, s.c, id, true)
	tab.WaitText(nodeRow+`[data-field="node-state"]`, "draining")
	tab.Click(nodeRow + "button.admin")
	waitDraining(t, s.c, id, false)
	tab.WaitText(nodeRow+`[data-field="node-state"]`, "live")
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
	consoleOpen(tab, s.proc.URL+"/ui/")
	tab.Click("#new-task")
	tab.Fill("#create-yaml", string(spec))
	tab.Click("#precheck")
	tab.WaitText("#precheck-verdict", "Something blocks")
	checkPrecheckShown(t, tab, s.c, spec)
	tab.Click("#create") // refused while the warning is not ignored
	tab.WaitText("#flash-text", "HTTP 422: precheck failed")
	tab.WaitText(`#precheck-report li[data-check="`+warning+`"]`, "warning")
	if _, err := s.c.GetTask(ctx, "shop2"); err == nil {
		t.Fatal("shop2 was created despite the precheck's warning")
	}
	tab.Click(fmt.Sprintf(`input[data-ignore=%q]`, warning))
	tab.Click("#precheck")
	tab.WaitText("#precheck-verdict", "Nothing blocks")
	checkPrecheckShown(t, tab, s.c, spec, warning)
	consoleShot(t, tab, "create.png")
	tab.Click("#create")
	tab.WaitText("#flash-text", "Task shop2 created")
	tab.WaitText(`tr[data-task="shop2"] td`, "shop2")
	waitConnsEqual(t, testenv.Conn(t, s.p.src.DSN(testenv.DefaultDB)), testenv.Conn(t, s.p.dst.DSN(dstDB)), []string{"public.items"}, 2*time.Minute)

	// Delete with its confirmation: the task is gone from the API.
	consoleOpen(tab, s.proc.URL+"/ui/tasks/shop2")
	tab.Click("#delete")
	tab.Click("#delete-yes")
	testenv.CheckFor(t, time.Minute, 200*time.Millisecond, func() error {
		if _, err := s.c.GetTask(ctx, "shop2"); err == nil {
			return fmt.Errorf("task shop2 still exists")
		}
		return nil
	})
	tab.WaitText("#counts", "1 total")
	// The filter by state.
	consoleOpen(tab, s.proc.URL+"/ui/?state=paused")
	tab.WaitText("#task-rows", "no task in this state")
	consoleOpen(tab, s.proc.URL+"/ui/?state=running")
	tab.WaitText(`tr[data-task="shop"] td`, "shop")

	// A read token sees everything and cannot act: the buttons are
	// disabled, and a forced call shows the API's 403.
	read, err := s.c.CreateToken(ctx, coordinator.ScopeRead, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	viewer := browsertest.NewTab(t, s.browser) // a new tab: its own session
	viewer.Run(chromedp.Navigate(s.proc.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"), chromedp.Click(chromedp.CSS("#login button")))
	viewer.WaitText("#flash-text", "Login failed: HTTP 401")
	consoleLogin(viewer, s.proc.URL+"/ui/tasks/shop", read.Token)
	viewer.ExpectText("#who", "read-only token")
	checkTaskPage(t, viewer, s.status(t))
	for _, b := range []string{"#pause", "#resume", "#verify", "#update", "#delete"} {
		if !browsertest.Eval[bool](viewer, fmt.Sprintf(`document.querySelector(%q).disabled`, b)) {
			t.Errorf("%s is enabled for a read token", b)
		}
	}
	browsertest.Eval[bool](viewer, `(() => { const b = document.querySelector('#pause'); b.disabled = false; b.click(); return true; })()`)
	viewer.WaitText("#flash-text", "HTTP 403")
	viewer.WaitText("#flash-text", "has scope read")
	consoleShot(t, viewer, "read-token.png")
	if st := s.status(t); st.State != proto.StateRunning {
		t.Fatalf("a read token's forced pause changed the task: %s", st.State)
	}
	s.write(t, 5)
}

// checkPrecheckShown compares the precheck items shown (check id and
// result, in order) with the API's report for spec with ignore.
func checkPrecheckShown(t *testing.T, tab *browsertest.Tab, c *coordinator.Client, spec []byte, ignore ...string) {
	t.Helper()
	report, err := c.Precheck(context.Background(), spec, ignore...)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range report.Checks {
		want = append(want, p.Check+"="+string(p.Result))
	}
	shown := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#precheck-report li.check')].map(li => li.dataset.check + '=' + li.querySelector('.badge').textContent)`)
	if strings.Join(shown, " ") != strings.Join(want, " ") {
		t.Fatalf("precheck shown:\n%v\nthe API's:\n%v", shown, want)
	}
}

// checkTaskPage waits until the task page shows the rows applied of want,
// then compares every figure shown with want.
func checkTaskPage(t *testing.T, tab *browsertest.Tab, want proto.TaskStatus) {
	t.Helper()
	sum := `#summary [data-field="%s"]`
	tab.WaitText(fmt.Sprintf(sum, "rows-applied"), thousands(want.RowsApplied))
	tab.ExpectText(fmt.Sprintf(sum, "state"), string(want.State))
	tab.ExpectText(fmt.Sprintf(sum, "phase"), string(want.Phase))
	tab.ExpectText(fmt.Sprintf(sum, "full"), thousands(want.Full.RowsDone)+" / "+thousands(want.Full.RowsEstimated))
	tab.ExpectText(fmt.Sprintf(sum, "tables"), fmt.Sprintf("%d / %d", want.Full.TablesDone, want.Full.TablesTotal))
	if want.Full.RowsDone < consoleSeedRows {
		t.Fatalf("task get shows %d rows copied, want at least %d", want.Full.RowsDone, consoleSeedRows)
	}
	// The charts are drawn once the history answers (an absent endpoint
	// says so instead).
	tab.WaitText("#charts", "")
}

// checkTablesShown compares the task page's per-table counts with what
// `task get --tables` reads (GET /api/v1/tasks/shop/tables): the figures
// shown are the API's, table by table.
func checkTablesShown(t *testing.T, tab *browsertest.Tab, c *coordinator.Client) {
	t.Helper()
	var ts *proto.TablesStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		var err error
		if ts, err = c.TaskTables(context.Background(), "shop"); err != nil {
			t.Fatalf("task tables: %v", err)
		}
		counted := len(ts.Tables) > 0
		for _, r := range ts.Tables {
			counted = counted && r.Applied != nil && r.Applied.Insert > 0
		}
		if counted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API shows no applied counts for the task's tables: %+v", ts.Tables)
		}
	}
	for _, r := range ts.Tables {
		row := fmt.Sprintf(`tr[data-table=%q] [data-field=%%q]`, r.Table)
		tab.WaitText(fmt.Sprintf(row, "insert"), thousands(r.Applied.Insert))
		tab.ExpectText(fmt.Sprintf(row, "update"), thousands(r.Applied.Update))
		tab.ExpectText(fmt.Sprintf(row, "delete"), thousands(r.Applied.Delete))
	}
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

// consoleOpen opens a console page (the tab is logged in) and waits
// for it to be built.
func consoleOpen(tab *browsertest.Tab, url string) {
	tab.Run(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#page > *")))
}

// consoleLogin opens url, logs in with token through the form, and waits
// for the page's first data.
func consoleLogin(tab *browsertest.Tab, url, token string) {
	tab.Run(chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.CSS("#page > *")),
		chromedp.WaitReady(chromedp.CSS("body[data-loaded]")))
}

// consoleShot keeps a screenshot of the page in the test's artifacts and,
// for the task page, at SLUICE_CONSOLE_DOC when set (the README's).
func consoleShot(t *testing.T, tab *browsertest.Tab, name string) {
	t.Helper()
	png := tab.Screenshot(name)
	if doc := os.Getenv("SLUICE_CONSOLE_DOC"); doc != "" && name == "task.png" {
		if err := os.WriteFile(doc, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
