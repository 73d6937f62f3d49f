// Command bench is `make bench`: Sluice measured against PostgreSQL's own
// ceilings in the same run, on PostgreSQL 15 clusters it starts itself.
// See bench/README.md for what each scenario measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
)

// config is the command line, recorded in the JSON.
type config struct {
	Sluice          string        `json:"sluice"`
	Scale           float64       `json:"scale"`
	Reps            int           `json:"reps"`
	Only            string        `json:"only,omitempty"`
	Out             string        `json:"out"`
	Keep            bool          `json:"keep"`
	Pprof           string        `json:"pprof,omitempty"`
	SluiceArgs      []string      `json:"sluice_args,omitempty"`
	LatencyRate     float64       `json:"latency_rate,omitempty"`
	LatencyDuration time.Duration `json:"latency_duration_ns,omitempty"`
	SchemaTables    int           `json:"schema_tables"`
}

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.Sluice, "sluice", "bin/sluice", "the sluice binary to run (make build)")
	flag.Float64Var(&cfg.Scale, "scale", 1.0, "multiplies every row count (0.02-0.05 for a quick check)")
	flag.IntVar(&cfg.Reps, "reps", 2, "repetitions of each side (A B A B ...)")
	flag.StringVar(&cfg.Only, "only", "", "run only the scenarios whose name matches this regular expression (names: "+strings.Join(scenarioNames(defaultSchemaTables), ", ")+")")
	flag.StringVar(&cfg.Out, "out", "bench/results", "directory for the JSON results")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the clusters' directories, the databases and sluice's data and logs for inspection")
	flag.StringVar(&cfg.Pprof, "pprof", "", "pass --pprof-listen ADDR to every sluice process (e.g. 127.0.0.1:6060), to take a profile during a run")
	sluiceArgs := flag.String("sluice-args", "", "extra flags for `sluice up`, space separated (e.g. \"--apply-groups 8\")")
	flag.Float64Var(&cfg.LatencyRate, "latency-rate", 0, "rows/s of the latency scenario (default: half of native's live single-row insert rate)")
	flag.DurationVar(&cfg.LatencyDuration, "latency-duration", 0, "duration of the latency scenario's paced workload (default: 30s times --scale, between 5s and 30s)")
	flag.IntVar(&cfg.SchemaTables, "schema-tables", defaultSchemaTables, "tables of the schema/ scenarios (not scaled; the wide case has four times as many; fewer while developing)")
	scaleTable := flag.String("scale-table", "", "print the scale/ scenarios of a results JSON as bench/README.md's markdown table, and exit")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if *scaleTable != "" {
		if err := printScaleTableFile(os.Stdout, *scaleTable); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	cfg.SluiceArgs = strings.Fields(*sluiceArgs)
	if cfg.Scale <= 0 || cfg.Reps < 1 || cfg.SchemaTables < 2 {
		fmt.Fprintln(os.Stderr, "bench: --scale must be > 0, --reps >= 1 and --schema-tables >= 2")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := runBench(ctx, cfg)
	stop()
	os.Exit(code)
}

// scenarioNames lists every scenario, for --only and the help text; the
// schema/ names count schemaTables (--schema-tables).
func scenarioNames(schemaTables int) []string {
	names := []string{}
	for _, t := range fullTables(1) {
		names = append(names, "full/"+t.Name)
	}
	for _, c := range append(incrCases(1), filterCases(1)...) {
		names = append(names, c.Name)
	}
	for _, w := range workloads(1) {
		names = append(names, "capture/"+w.Name)
	}
	for _, c := range etlCases(1) {
		names = append(names, c.Name)
	}
	for _, c := range append(scaleCases(1), clusterCases(1)...) {
		names = append(names, c.Name)
	}
	names = append(names, schemaCaseNames(schemaTables).list()...)
	return append(names, "latency/p50", "latency/p99", "throttle/full", "throttle/incremental", "doris/full", "doris/incr",
		twForward, twReverse, twOneWay, verifyEqual, verifyScattered)
}

// bench is one run of the harness.
type bench struct {
	cfg     *config
	only    *regexp.Regexp
	src     *testenv.Postgres
	dst     *testenv.Postgres
	work    string
	results []*scenario
	// nativeSingleRate is native's live single-row insert rate (rows/s)
	// when live/single-insert ran; the latency scenario paces at half.
	nativeSingleRate float64
}

var started = time.Now()

// logf prints a progress line with the time since the start.
func logf(format string, args ...any) {
	el := time.Since(started).Round(time.Second)
	fmt.Printf("[%s %8s] %s\n", time.Now().Format("15:04:05"), el, fmt.Sprintf(format, args...))
}

func runBench(ctx context.Context, cfg *config) int {
	b := &bench{cfg: cfg}
	if cfg.Only != "" {
		re, err := regexp.Compile(cfg.Only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: --only: %v\n", err)
			return 2
		}
		b.only = re
		var any bool
		for _, n := range scenarioNames(cfg.SchemaTables) {
			any = any || re.MatchString(n)
		}
		if !any {
			fmt.Fprintf(os.Stderr, "bench: --only %q matches no scenario (%s)\n", cfg.Only, strings.Join(scenarioNames(cfg.SchemaTables), ", "))
			return 2
		}
	}
	bin, err := filepath.Abs(cfg.Sluice)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: sluice binary: %v (build it with make build, or pass --sluice)\n", err)
		return 2
	}
	cfg.Sluice = bin
	if b.work, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer func() {
		if cfg.Keep {
			logf("kept sluice data, logs and JetStream stores in %s", b.work)
		} else {
			os.RemoveAll(b.work)
		}
	}()

	logf("starting two PostgreSQL clusters (fsync, full_page_writes and synchronous_commit at their defaults)")
	if b.src, b.dst, err = startClusters(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer releaseClusters(cfg.Keep, b.src, b.dst)
	mach := machineInfo(ctx, b.src, bin)
	logf("machine: %d CPUs (%s), %s; %s; %s; commit %s (dirty %v)", mach.NumCPU, mach.CPUModel, mach.MemTotal, shortVersion(mach.Postgres), mach.GoVersion, mach.GitCommit, mach.GitDirty)
	logf("scale %g, %d reps; source %s, destination %s; work dir %s", cfg.Scale, cfg.Reps, b.src.DSN(""), b.dst.DSN(""), b.work)

	rep := &report{StartedAt: started.UTC(), Config: cfg, Machine: mach}
	families := []struct {
		name string
		run  func(context.Context) error
	}{
		{"full sync", b.runFull},
		{"incremental", b.runIncremental},
		{"etl", b.runETL},
		{"filtered incremental", b.runFiltered},
		{"capture", b.runCapture},
		{"latency", b.runLatency},
		{"throttle", b.runThrottle},
		{"doris", b.runDoris},
		{"two-way", b.runTwoWay},
		{"verify", b.runVerify},
		{"scale", b.runScale},
		{"cluster", b.runCluster},
		{"schema", b.runSchema},
	}
	var fatal error
	for _, f := range families {
		if err := f.run(ctx); err != nil {
			if ctx.Err() != nil {
				fatal = ctx.Err()
				break
			}
			// A setup failure of a family: report it and go on.
			b.results = append(b.results, &scenario{Name: f.name, Error: "setup: " + err.Error()})
			logf("FAILED %s: %v", f.name, err)
		}
	}

	rep.Scenarios = b.results
	rep.FinishedAt = time.Now().UTC()
	rep.Seconds = rep.FinishedAt.Sub(rep.StartedAt).Seconds()
	for _, s := range b.results {
		if s.Error != "" {
			rep.Failed = true
		}
	}
	if fatal != nil {
		rep.Failed = true
	}
	fmt.Println()
	fmt.Printf("Sluice vs PostgreSQL, scale %g, %d reps, %s on %d CPUs (%.0f s). ratio = yardstick / Sluice: >1 means Sluice is faster.\n\n",
		cfg.Scale, cfg.Reps, shortVersion(mach.Postgres), mach.NumCPU, rep.Seconds)
	printTable(os.Stdout, b.results)
	if hasPrefix(b.results, "scale/") {
		fmt.Println()
		printScaleTable(os.Stdout, b.results)
	}
	if path, err := writeJSON(cfg.Out, rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench: writing results:", err)
		return 1
	} else {
		fmt.Printf("\nresults: %s (and %s)\n", path, filepath.Join(cfg.Out, "latest.json"))
	}
	switch {
	case errors.Is(fatal, context.Canceled):
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 130
	case rep.Failed:
		fmt.Fprintln(os.Stderr, "bench: FAILED (see the lines above)")
		return 1
	}
	return 0
}

// hasPrefix tells whether any scenario's name starts with prefix.
func hasPrefix(list []*scenario, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s.Name, prefix) {
			return true
		}
	}
	return false
}

// want tells whether --only selects a scenario.
func (b *bench) want(name string) bool { return b.only == nil || b.only.MatchString(name) }

// add finishes a scenario and records it.
func (b *bench) add(s *scenario) {
	s.finish()
	b.results = append(b.results, s)
	line := fmt.Sprintf("==> %s: Sluice %s", s.Name, fmtValue(s.Sluice.Median, s.Unit))
	if len(s.Sluice.Runs) == 0 {
		line = fmt.Sprintf("==> %s: no Sluice run", s.Name)
	}
	if s.Yardstick != nil && len(s.Yardstick.Runs) > 0 {
		line += fmt.Sprintf(", %s %s", s.Yardstick.Name, fmtValue(s.Yardstick.Median, s.Unit))
	}
	if s.Ratio > 0 {
		line += fmt.Sprintf(", ratio %.2fx", s.Ratio)
	}
	if s.Reference != nil && len(s.Reference.Runs) > 0 {
		line += fmt.Sprintf(" (%s %s)", s.Reference.Name, fmtValue(s.Reference.Median, s.Unit))
	}
	if s.Error != "" {
		line += ", FAILED: " + s.Error
	}
	logf("%s", line)
}

// dropDatabases drops a family's databases on both clusters (kept with
// --keep).
func (b *bench) dropDatabases(names ...string) {
	if b.cfg.Keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, n := range names {
		for _, pg := range []*testenv.Postgres{b.src, b.dst} {
			if err := dropDatabase(ctx, pg, n); err != nil {
				logf("warning: drop database %s: %v", n, err)
			}
		}
	}
}

// shortVersion cuts "PostgreSQL 15.x (...) on x86_64..." to its start.
func shortVersion(v string) string {
	if i := strings.Index(v, " on "); i > 0 {
		return v[:i]
	}
	return v
}
