package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The alert rules of deploy/prometheus, loaded by a real Prometheus (from
// Debian's package; make e2e installs it) that scrapes a running `sluice
// up` with its token: promtool accepts them, every rule's query evaluates
// without error against the live series, the failure rules say nothing
// while the task runs, and the destination going away makes the
// retrying rule's query answer for the task and its alert fire (its
// `for:` shortened for the test); the node going away makes the node-down
// rule's answer.
func TestPrometheusRulesAgainstRunningSluice(t *testing.T) {
	prom, err1 := exec.LookPath("prometheus")
	promtool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		t.Skip("prometheus or promtool not installed (make e2e installs them with scripts/ensure-prometheus.sh)")
	}
	rulesFile := filepath.Join(repoRoot(t), "deploy", "prometheus", "sluice-rules.yml")
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules := readRules(t, rulesFile)

	p := newPair(t)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE m (id int PRIMARY KEY, v text); INSERT INTO m SELECT g, 'v' FROM generate_series(1, 500) g`)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()
	createTask(t, c, taskYAML("prom", p, ""))
	waitPhase(t, c, "prom", proto.PhaseIncremental, 2*time.Minute)
	for i := 0; i < 50; i++ { // some traffic for the rate() queries
		testenv.MustExec(t, srcConn, `INSERT INTO m VALUES ($1, 'w')`, 1000+i)
	}
	waitEqual(t, p, []string{"public.m"}, time.Minute)

	api := startPrometheus(t, prom, promtool, proc.URL, proc.Token, rulesFile)
	api.waitFor(t, `max by (task) (sluice_task_state{task="prom",state="running"})`, 1)
	api.waitFor(t, `up{job="sluice"}`, 1)

	// Every rule's query evaluates (an empty answer is fine); the ones
	// that watch for trouble say nothing while all is well.
	quiet := map[string]bool{"SluiceTaskFailed": true, "SluiceTaskRetrying": true, "SluiceNodeDown": true, "SluiceNoLeader": true}
	for _, r := range rules {
		res := api.query(t, r.Expr)
		if quiet[r.Alert] && len(res) > 0 {
			t.Errorf("%s answers %v while the task runs and the node is up", r.Alert, res)
		}
	}
	// Prometheus evaluates the rules itself too: none reports an error.
	testenv.CheckFor(t, time.Minute, time.Second, func() error { return api.rulesHealthy(len(rules)) })

	// The destination goes away: the task retries, the rule sees it.
	if err := p.dst.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.MustExec(t, srcConn, `INSERT INTO m VALUES (5000, 'x')`)
	waitRetrying(t, c, "prom")
	api.waitFor(t, ruleExpr(t, rules, "SluiceTaskRetrying"), 1, "task", "prom")
	api.waitFiring(t, "SluiceTaskRetrying", "prom")
	if err := p.dst.Start(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, p, []string{"public.m"}, 2*time.Minute)
	api.waitFor(t, ruleExpr(t, rules, "SluiceTaskRetrying"), 0)

	// The node goes away: the scrape fails, the node-down rule answers.
	proc.Kill()
	api.waitFor(t, ruleExpr(t, rules, "SluiceNodeDown"), 1)
}

// repoRoot is the module's root, found from this file's place.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..")
}

type promRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func readRules(t *testing.T, path string) []promRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []promRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []promRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", path)
	}
	return out
}

func ruleExpr(t *testing.T, rules []promRule, alert string) string {
	t.Helper()
	for _, r := range rules {
		if r.Alert == alert {
			return r.Expr
		}
	}
	t.Fatalf("no alert %s in the rules", alert)
	return ""
}

// promAPI is the HTTP API of a Prometheus the test runs.
type promAPI struct{ base string }

// startPrometheus runs prometheus scraping target every second with the
// token, evaluating the rules file with every `for:` cut to 0s, its data
// in a temporary directory; the process is ended by its PID at cleanup.
func startPrometheus(t *testing.T, prom, promtool, target, token, rulesFile string) *promAPI {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	fast := regexp.MustCompile(`(?m)^(\s+for:)\s*\S+`).ReplaceAll(rules, []byte("${1} 0s"))
	fastFile := filepath.Join(dir, "rules.yml")
	tokenFile := filepath.Join(dir, "token")
	for path, b := range map[string][]byte{fastFile: fast, tokenFile: []byte(token)} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [%q]
scrape_configs:
  - job_name: sluice
    authorization: { credentials_file: %q }
    static_configs: [{ targets: [%q] }]
`, fastFile, tokenFile, u.Host)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", configFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prom, "--config.file="+configFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("prometheus's log (end):\n%s", b)
		}
	})
	api := &promAPI{base: "http://127.0.0.1:" + strconv.Itoa(port)}
	testenv.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		select {
		case <-exited:
			t.Fatal("prometheus exited at start")
		default:
		}
		_, err := api.get("/-/ready")
		return err
	})
	return api
}

func (a *promAPI) get(path string) ([]byte, error) {
	resp, err := http.Get(a.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

type promSample struct {
	Metric map[string]string `json:"metric"`
}

// query evaluates expr now and returns the answer's samples, failing the
// test when Prometheus refuses the query.
func (a *promAPI) query(t *testing.T, expr string) []promSample {
	t.Helper()
	res, err := a.tryQuery(expr)
	if err != nil {
		t.Fatalf("query %q: %v", expr, err)
	}
	return res
}

func (a *promAPI) tryQuery(expr string) ([]promSample, error) {
	b, err := a.get("/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("status %s: %s", r.Status, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// waitFor polls until expr answers n samples, the first with the given
// label pairs.
func (a *promAPI) waitFor(t *testing.T, expr string, n int, labels ...string) {
	t.Helper()
	testenv.CheckFor(t, 2*time.Minute, 500*time.Millisecond, func() error {
		res, err := a.tryQuery(expr)
		if err != nil {
			t.Fatalf("query %q: %v", expr, err)
		}
		if len(res) != n {
			return fmt.Errorf("%q answers %d samples %v, want %d", expr, len(res), res, n)
		}
		for i := 0; n > 0 && i+1 < len(labels); i += 2 {
			if res[0].Metric[labels[i]] != labels[i+1] {
				return fmt.Errorf("%q answers %v, want %s=%s", expr, res, labels[i], labels[i+1])
			}
		}
		return nil
	})
}

// rulesHealthy reports an error until Prometheus has evaluated all n
// rules, or when one reports an evaluation error.
func (a *promAPI) rulesHealthy(n int) error {
	b, err := a.get("/api/v1/rules?type=alert")
	if err != nil {
		return err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	var seen []string
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			if rule.Health == "err" {
				return fmt.Errorf("rule %s: %s", rule.Name, rule.LastError)
			}
			if rule.Health == "ok" {
				seen = append(seen, rule.Name)
			}
		}
	}
	if len(seen) != n {
		return fmt.Errorf("%d of %d rules evaluated: %s", len(seen), n, strings.Join(seen, ", "))
	}
	return nil
}

// waitFiring polls until Prometheus fires alert for task.
func (a *promAPI) waitFiring(t *testing.T, alert, task string) {
	t.Helper()
	testenv.CheckFor(t, 2*time.Minute, 500*time.Millisecond, func() error {
		b, err := a.get("/api/v1/alerts")
		if err != nil {
			return err
		}
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		for _, al := range r.Data.Alerts {
			if al.Labels["alertname"] == alert && al.Labels["task"] == task && al.State == "firing" {
				return nil
			}
		}
		return fmt.Errorf("alert %s not firing for %s: %+v", alert, task, r.Data.Alerts)
	})
}
