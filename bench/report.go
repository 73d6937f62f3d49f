package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
)

// run is one measured run of one side.
type run struct {
	Rep int `json:"rep"`
	// Value is the scenario's metric: seconds for timed runs, milliseconds
	// for latency percentiles.
	Value float64 `json:"value"`
	Rows  int64   `json:"rows"`
	// RowsPerSecond is Rows / seconds for timed runs.
	RowsPerSecond float64 `json:"rows_per_second,omitempty"`
	// CPUSeconds and PeakRSSBytes: the Sluice process over the measured
	// part (the bench process itself for the in-process capture runs).
	CPUSeconds    *float64 `json:"cpu_seconds,omitempty"`
	CPUPerMillion *float64 `json:"cpu_seconds_per_million_rows,omitempty"`
	PeakRSSBytes  int64    `json:"peak_rss_bytes,omitempty"`
	// PipelineCPUSeconds: the Sluice process (if any) plus the PostgreSQL
	// processes of the pipeline, the source's walsender and the
	// destination's backends that apply (cpu.go); for native, its
	// walsender and subscription workers.
	PipelineCPUSeconds    *float64           `json:"pipeline_cpu_seconds,omitempty"`
	PipelineCPUPerMillion *float64           `json:"pipeline_cpu_seconds_per_million_rows,omitempty"`
	Extra                 map[string]float64 `json:"extra,omitempty"`
}

// side is one system's runs in a scenario.
type side struct {
	Name   string  `json:"name"`
	Runs   []run   `json:"runs"`
	Median float64 `json:"median"`
}

// target is what a scenario must reach.
type target struct {
	// MinRatio: yardstick / Sluice at least this (0: none).
	MinRatio float64 `json:"min_ratio,omitempty"`
	// MaxValue: Sluice's median at most this, in the scenario's unit (0: none).
	MaxValue float64 `json:"max_value,omitempty"`
	// MinValue: Sluice's median at least this (0: none).
	MinValue float64 `json:"min_value,omitempty"`
	// MaxRSSBytes: every Sluice run's peak RSS below this (0: none).
	MaxRSSBytes int64 `json:"max_rss_bytes,omitempty"`
}

// describe prints the target; unit is the scenario's.
func (t target) describe(unit string) string {
	var parts []string
	if t.MinRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥%.1fx", t.MinRatio))
	}
	if t.MinValue > 0 {
		parts = append(parts, fmt.Sprintf("≥%g%s", t.MinValue, unitSuffix(unit)))
	}
	if t.MaxValue > 0 {
		parts = append(parts, fmt.Sprintf("≤%g%s", t.MaxValue, unitSuffix(unit)))
	}
	if t.MaxRSSBytes > 0 {
		parts = append(parts, fmt.Sprintf("RSS<%dMB", t.MaxRSSBytes>>20))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// rssLimit is the resident memory target of every Sluice run.
const rssLimit = 300 << 20

// scenario is one line of the report.
type scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Unit        string `json:"unit"` // s or ms
	Rows        int64  `json:"rows"`
	Sluice      side   `json:"sluice"`
	Yardstick   *side  `json:"yardstick,omitempty"`
	// Reference is a third system run beside the two for comparison, in
	// no ratio (native replication in the cluster/ scenarios, whose
	// yardstick is Sluice on one node).
	Reference *side   `json:"reference,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"` // yardstick median / Sluice median: >1 means Sluice is faster
	Target    target  `json:"target"`
	Met       *bool   `json:"met,omitempty"`
	// CPUPerMillion: median of the Sluice runs; PeakRSSBytes: the highest.
	CPUPerMillion *float64 `json:"cpu_seconds_per_million_rows,omitempty"`
	PeakRSSBytes  int64    `json:"peak_rss_bytes,omitempty"`
	// PipelineCPUPerMillion and YardstickPipelineCPUPerMillion: medians of
	// the runs' pipeline CPU per million rows, Sluice's and the
	// yardstick's, side by side.
	PipelineCPUPerMillion          *float64 `json:"pipeline_cpu_seconds_per_million_rows,omitempty"`
	YardstickPipelineCPUPerMillion *float64 `json:"yardstick_pipeline_cpu_seconds_per_million_rows,omitempty"`
	// Bytes is the payload (column values) the workload wrote, when
	// measured (scale/ scenarios): MB/s is Bytes over the median time.
	Bytes int64  `json:"bytes,omitempty"`
	Error string `json:"error,omitempty"`
}

// finish computes medians, the ratio and whether the targets are met.
func (s *scenario) finish() {
	s.Sluice.Median = medianOf(s.Sluice.Runs)
	var cpus []float64
	for _, r := range s.Sluice.Runs {
		if r.CPUPerMillion != nil {
			cpus = append(cpus, *r.CPUPerMillion)
		}
		if r.PeakRSSBytes > s.PeakRSSBytes {
			s.PeakRSSBytes = r.PeakRSSBytes
		}
	}
	if len(cpus) > 0 {
		m := median(cpus)
		s.CPUPerMillion = &m
	}
	s.PipelineCPUPerMillion = medianPipelineCPU(s.Sluice.Runs)
	if s.Reference != nil {
		s.Reference.Median = medianOf(s.Reference.Runs)
	}
	if s.Yardstick != nil {
		s.YardstickPipelineCPUPerMillion = medianPipelineCPU(s.Yardstick.Runs)
		s.Yardstick.Median = medianOf(s.Yardstick.Runs)
		if s.Sluice.Median > 0 && s.Yardstick.Median > 0 {
			s.Ratio = s.Yardstick.Median / s.Sluice.Median
		}
	}
	if s.Error != "" || len(s.Sluice.Runs) == 0 {
		f := false
		s.Met = &f
		return
	}
	met := true
	if s.Target.MinRatio > 0 && (s.Ratio == 0 || s.Ratio < s.Target.MinRatio) {
		met = false
	}
	if s.Target.MaxValue > 0 && s.Sluice.Median > s.Target.MaxValue {
		met = false
	}
	if s.Target.MinValue > 0 && s.Sluice.Median < s.Target.MinValue {
		met = false
	}
	if s.Target.MaxRSSBytes > 0 && s.PeakRSSBytes >= s.Target.MaxRSSBytes {
		met = false
	}
	s.Met = &met
}

// medianPipelineCPU is the median pipeline CPU per million rows of the
// runs that measured it, nil when none did.
func medianPipelineCPU(runs []run) *float64 {
	var v []float64
	for _, r := range runs {
		if r.PipelineCPUPerMillion != nil {
			v = append(v, *r.PipelineCPUPerMillion)
		}
	}
	if len(v) == 0 {
		return nil
	}
	m := median(v)
	return &m
}

func medianOf(runs []run) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.Value
	}
	return median(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// newRun builds a timed run's record.
func newRun(rep int, d time.Duration, rows int64, u *usage) run {
	r := run{Rep: rep, Value: d.Seconds(), Rows: rows}
	if d > 0 {
		r.RowsPerSecond = float64(rows) / d.Seconds()
	}
	if u != nil {
		r.setUsage(*u)
	}
	return r
}

func (r *run) setUsage(u usage) {
	if u.Process {
		r.CPUSeconds, r.CPUPerMillion = perMillion(u.CPUSeconds, r.Rows)
		r.PeakRSSBytes = u.PeakRSSBytes
		if u.PeakRSSSumBytes > 0 {
			r.extra("peak_rss_sum_mb", math.Round(float64(u.PeakRSSSumBytes)/(1<<20)))
		}
	}
	if u.PipelineCPU != nil {
		r.PipelineCPUSeconds, r.PipelineCPUPerMillion = perMillion(*u.PipelineCPU, r.Rows)
		r.extra("pipeline_processes", float64(u.PipelineProcs))
		for side, cpu := range u.SideCPU {
			if _, per := perMillion(cpu, r.Rows); per != nil {
				r.extra(side+"_cpu_s_per_Mrow", *per)
			}
		}
	}
}

// extra sets one of the run's extra figures.
func (r *run) extra(key string, v float64) {
	if r.Extra == nil {
		r.Extra = map[string]float64{}
	}
	r.Extra[key] = v
}

// perMillion returns cpu and cpu per million of rows (nil for no rows).
func perMillion(cpu float64, rows int64) (*float64, *float64) {
	if rows <= 0 {
		return &cpu, nil
	}
	per := cpu / (float64(rows) / 1e6)
	return &cpu, &per
}

// runLine is a progress line for a finished run.
func runLine(r run, unit string) string {
	s := fmt.Sprintf("%s", fmtValue(r.Value, unit))
	if r.RowsPerSecond > 0 {
		s += fmt.Sprintf(" (%s rows/s)", fmtRate(r.RowsPerSecond))
	}
	if r.CPUSeconds != nil {
		s += fmt.Sprintf(", cpu %.1f s", *r.CPUSeconds)
		if r.CPUPerMillion != nil {
			s += fmt.Sprintf(" = %.2f s/Mrow", *r.CPUPerMillion)
		}
	}
	if r.PeakRSSBytes > 0 {
		s += fmt.Sprintf(", peak RSS %d MB", r.PeakRSSBytes>>20)
	}
	if r.PipelineCPUSeconds != nil {
		s += fmt.Sprintf(", pipeline cpu %.1f s", *r.PipelineCPUSeconds)
		if r.PipelineCPUPerMillion != nil {
			s += fmt.Sprintf(" = %.2f s/Mrow", *r.PipelineCPUPerMillion)
		}
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// Whole numbers (counts of bytes, ranges, rows) print whole.
		if v := r.Extra[k]; v == math.Trunc(v) {
			s += fmt.Sprintf(", %s %.0f", k, v)
		} else {
			s += fmt.Sprintf(", %s %.1f", k, v)
		}
	}
	return s
}

// unitSuffix writes a unit after a number: " s", " ms", "x".
func unitSuffix(unit string) string {
	if unit == "x" {
		return "x"
	}
	return " " + unit
}

func fmtValue(v float64, unit string) string {
	if unit == "x" { // a ratio
		return fmt.Sprintf("%.2fx", v)
	}
	if unit == "ms" {
		if v < 10 {
			return fmt.Sprintf("%.1f ms", v)
		}
		return fmt.Sprintf("%.0f ms", v)
	}
	if v < 10 {
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.1f s", v)
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// printTable writes the summary table.
func printTable(w io.Writer, list []*scenario) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "scenario\t| Sluice median\t| yardstick median\t| ratio\t| target\t| met?\t| Sluice CPU s/Mrow\t| pipeline CPU s/Mrow Sluice / yardstick\t| peak RSS\t|")
	fmt.Fprintln(tw, "--------\t| -------------\t| ----------------\t| -----\t| ------\t| ----\t| -----------------\t| --------------------------------------\t| --------\t|")
	for _, s := range list {
		sl, ys, ratio, cpu, rss := "-", "-", "-", "-", "-"
		pipe := fmtCPU(s.PipelineCPUPerMillion) + " / " + fmtCPU(s.YardstickPipelineCPUPerMillion)
		if len(s.Sluice.Runs) > 0 {
			sl = fmtValue(s.Sluice.Median, s.Unit)
		}
		if s.Yardstick != nil && len(s.Yardstick.Runs) > 0 {
			ys = fmtValue(s.Yardstick.Median, s.Unit) + " " + s.Yardstick.Name
		}
		if s.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", s.Ratio)
		}
		if s.CPUPerMillion != nil {
			cpu = fmt.Sprintf("%.2f", *s.CPUPerMillion)
		}
		if s.PeakRSSBytes > 0 {
			rss = fmt.Sprintf("%d MB", s.PeakRSSBytes>>20)
		}
		met := "-"
		if s.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*s.Met]
		}
		if s.Error != "" {
			met = "FAILED"
		}
		name := s.Name
		if s.Rows > 0 && s.Unit == "s" {
			name += " (" + count(s.Rows) + ")"
		}
		fmt.Fprintf(tw, "%s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t|\n", name, sl, ys, ratio, s.Target.describe(s.Unit), met, cpu, pipe, rss)
	}
	tw.Flush()
	for _, s := range list {
		if s.Error != "" {
			fmt.Fprintf(w, "FAILED %s: %s\n", s.Name, s.Error)
		}
	}
}

// fmtCPU prints a CPU s/Mrow figure, "-" when not measured.
func fmtCPU(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

// report is the JSON document of a run.
type report struct {
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt time.Time   `json:"finished_at"`
	Seconds    float64     `json:"seconds"`
	Config     *config     `json:"config"`
	Machine    machine     `json:"machine"`
	Scenarios  []*scenario `json:"scenarios"`
	Failed     bool        `json:"failed"`
}

type machine struct {
	Hostname    string `json:"hostname"`
	NumCPU      int    `json:"nproc"`
	CPUModel    string `json:"cpu_model"`
	MemTotal    string `json:"mem_total"`
	Kernel      string `json:"kernel"`
	Postgres    string `json:"postgres_version"`
	GoVersion   string `json:"go_version"`
	GitCommit   string `json:"git_commit"`
	GitDirty    bool   `json:"git_dirty"`
	SluiceBuild string `json:"sluice_version"`
}

func machineInfo(ctx context.Context, src *testenv.Postgres, sluiceBin string) machine {
	m := machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					m.CPUModel = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				m.MemTotal = strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:"))
			}
		}
	}
	m.Kernel = cmdOutput("uname", "-r")
	if out := cmdOutput("go", "version"); out != "" {
		m.GoVersion = out
	}
	m.GitCommit = cmdOutput("git", "rev-parse", "HEAD")
	m.GitDirty = cmdOutput("git", "status", "--porcelain", "--untracked-files=no") != ""
	m.SluiceBuild = cmdOutput(sluiceBin, "version")
	if src != nil {
		if conn, err := connect(ctx, src.DSN("postgres")); err == nil {
			_ = conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres)
			conn.Close(context.Background())
		}
	}
	return m
}

func cmdOutput(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// writeJSON writes the report to DIR/<UTC timestamp>.json and
// DIR/latest.json.
func writeJSON(dir string, r *report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	path := filepath.Join(dir, r.StartedAt.UTC().Format("20060102T150405Z")+".json")
	for _, p := range []string{path, filepath.Join(dir, "latest.json")} {
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, p); err != nil {
			return "", err
		}
	}
	return path, nil
}
