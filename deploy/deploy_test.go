// Package deploy_test checks the Grafana dashboard and the Prometheus
// alert rules in this folder against the metrics Sluice exports, so a
// renamed metric breaks a test instead of an operator's dashboard.
package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	dashboardPath = "grafana/sluice.json"
	rulesPath     = "prometheus/sluice-rules.yml"
)

// builtinSeries are Prometheus' own series the rules and panels use.
var builtinSeries = []string{"up"}

var (
	descName   = regexp.MustCompile(`prometheus\.NewDesc\(\s*"(sluice_[a-z0-9_]+)"`)
	sluiceName = regexp.MustCompile(`\bsluice_[a-zA-Z0-9_:]+`)
	// quoted strips label values ("sluice_x" could be a value, not a name).
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// knownMetrics reads the names node/metrics.go declares.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../node/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range descName.FindAllStringSubmatch(string(src), -1) {
		known[m[1]] = true
	}
	if len(known) < 10 {
		t.Fatalf("found only %d metric names in node/metrics.go: did its declarations change shape?", len(known))
	}
	for _, n := range builtinSeries {
		known[n] = true
	}
	return known
}

// checkExpr fails the test when expr names a sluice_ series Sluice does
// not export, or names none at all.
func checkExpr(t *testing.T, known map[string]bool, where, expr string) {
	t.Helper()
	names := sluiceName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
	if len(names) == 0 && !regexp.MustCompile(`\bup\{`).MatchString(expr) {
		t.Errorf("%s: %q names no Sluice metric", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %q names %s, which Sluice does not export", where, expr, n)
		}
	}
}

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestDashboardNamesExportedMetrics(t *testing.T) {
	known := knownMetrics(t)
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana's (39)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type + " " + string(v.Query)
		if v.Name == "task" {
			checkExpr(t, known, "variable task", v.Definition)
		}
	}
	if vars["datasource"] != `datasource "prometheus"` {
		t.Errorf("variable datasource: %q, want a prometheus data source variable", vars["datasource"])
	}
	if _, ok := vars["task"]; !ok {
		t.Error("no task variable")
	}
	exprs := 0
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, known, "panel "+p.Title, tg.Expr)
			exprs++
		}
	}
	if exprs < 15 {
		t.Errorf("only %d queries in the dashboard", exprs)
	}
}

// Rules is the shape of a Prometheus rules file (the part tests read).
type Rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func TestAlertRulesNameExportedMetrics(t *testing.T) {
	known := knownMetrics(t)
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rs Rules
	if err := yaml.Unmarshal(b, &rs); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	var alerts []string
	for _, g := range rs.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkExpr(t, known, "alert "+r.Alert, r.Expr)
			if r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: wants for, labels.severity, annotations.summary and description", r.Alert)
			}
		}
	}
	sort.Strings(alerts)
	if len(alerts) < 9 {
		t.Errorf("alerts %v: want the nine of the README at least", alerts)
	}
}

// promtool is in make e2e's dependencies (scripts/ensure-prometheus.sh),
// not make test's: here it runs when present.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (scripts/ensure-prometheus.sh installs it; make e2e checks the rules)")
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
