package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// sluiceProc is the Sluice the bench talks to: one `sluice up` child
// process, or the `sluice node` processes of a cluster (sluice_cluster.go).
// Every measured Sluice run gets a fresh one on fresh data directories, so
// its CPU time and memory belong to that run alone.
type sluiceProc struct {
	// URL is the API Client talks to (a cluster's first node).
	URL    string
	Client *coordinator.Client
	// procs are the processes: one for `sluice up`, the nodes of a cluster.
	procs []*sluiceChild
	// dir holds their data directories, logs and configuration.
	dir string
	// cluster is set for a cluster.
	cluster *sluiceCluster
}

// sluiceChild is one sluice process the bench started.
type sluiceChild struct {
	Name    string // "sluice" for `sluice up`, the node id in a cluster
	URL     string // its API
	DataDir string
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startChild runs bin with args, its output appended to logPath.
func startChild(bin string, args []string, name, dataDir, logPath string) (*sluiceChild, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &sluiceChild{Name: name, DataDir: dataDir, LogPath: logPath, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	// The child dies with the bench, even on SIGKILL of the bench.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { c.waitErr = c.cmd.Wait(); out.Close(); close(c.exited) }()
	return c, nil
}

// alive returns an error once the process has exited.
func (c *sluiceChild) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited unexpectedly (%v); log:\n%s", c.Name, c.waitErr, c.LogTail())
	default:
		return nil
	}
}

// LogTail is the end of the process's log, for failure messages.
func (c *sluiceChild) LogTail() string {
	b, _ := os.ReadFile(c.LogPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// startSluice runs `bin up` in a new directory under workDir and waits
// until its API answers.
func startSluice(ctx context.Context, cfg *config, workDir string) (*sluiceProc, error) {
	dir, err := os.MkdirTemp(workDir, "sluice-")
	if err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	raft, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	p := &sluiceProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir}
	p.Client = &coordinator.Client{BaseURL: p.URL, HTTP: &http.Client{Timeout: 5 * time.Minute}}
	dataDir := filepath.Join(dir, "data")
	args := []string{"up", "--data-dir", dataDir, "--client-config", "none",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--raft-listen", fmt.Sprintf("127.0.0.1:%d", raft)}
	if cfg.Pprof != "" {
		args = append(args, "--pprof-listen", cfg.Pprof)
	}
	args = append(args, cfg.SluiceArgs...)
	c, err := startChild(cfg.Sluice, args, "sluice", dataDir, filepath.Join(dir, "sluice.log"))
	if err != nil {
		return nil, err
	}
	c.URL = p.URL
	p.procs = []*sluiceChild{c}
	if err := waitHealthy(ctx, http.DefaultClient, p.URL, c); err != nil {
		p.Stop()
		return nil, err
	}
	if p.Client.Token, err = adminToken(ctx, p.procs); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// adminToken waits for the admin token `up`, or the node that starts a
// cluster (the first leader), writes to its data directory.
func adminToken(ctx context.Context, procs []*sluiceChild) (string, error) {
	for range 300 {
		for _, c := range procs {
			if b, err := os.ReadFile(filepath.Join(c.DataDir, node.AdminTokenFile)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				return strings.TrimSpace(string(b)), nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no admin token in the data directory of %s within 30s", procs[0].Name)
}

// waitHealthy polls url's /readyz until it answers 200 (a cluster node
// does once it knows a leader), while c runs.
func waitHealthy(ctx context.Context, hc *http.Client, url string, c *sluiceChild) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.alive(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s at %s not ready (/readyz) within 60s; log:\n%s", c.Name, url, c.LogTail())
}

// PID is the process id of the (first) process, for a meter.
func (p *sluiceProc) PID() int { return p.procs[0].cmd.Process.Pid }

// PIDs are the process ids of every process.
func (p *sluiceProc) PIDs() []int {
	pids := make([]int, len(p.procs))
	for i, c := range p.procs {
		pids[i] = c.cmd.Process.Pid
	}
	return pids
}

// alive returns an error once any process has exited.
func (p *sluiceProc) alive() error {
	for _, c := range p.procs {
		if err := c.alive(); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends the processes gracefully (SIGTERM to all at once), then with
// SIGKILL those still running 60s later.
func (p *sluiceProc) Stop() {
	if p == nil {
		return
	}
	for _, c := range p.procs {
		_ = c.cmd.Process.Signal(syscall.SIGTERM) // an exited one just refuses
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, c := range p.procs {
		select {
		case <-c.exited:
			if c.waitErr != nil {
				logf("warning: %s exited with %v after SIGTERM (log %s)", c.Name, c.waitErr, c.LogPath)
			}
		case <-time.After(time.Until(deadline)):
			logf("warning: %s did not stop within 60s of SIGTERM; killing it (log %s)", c.Name, c.LogPath)
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
}

// CreateTask creates a task; it returns when the precheck has passed.
func (p *sluiceProc) CreateTask(ctx context.Context, spec string) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := p.Client.CreateTask(cctx, []byte(spec)); err != nil {
		return fmt.Errorf("task create: %w", err)
	}
	return nil
}

// Task returns a task's status (bounded call).
func (p *sluiceProc) Task(ctx context.Context, name string) (*proto.TaskStatus, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.Client.GetTask(cctx, name)
}

// errTaskFailed reports a task that ended failed.
var errTaskFailed = errors.New("task failed")

// checkTask returns an error when the task failed or the process died; a
// retrying task is reported but not fatal (it may recover).
func (p *sluiceProc) checkTask(ctx context.Context, name string) (*proto.TaskStatus, error) {
	if err := p.alive(); err != nil {
		return nil, err
	}
	st, err := p.Task(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.State == proto.StateFailed {
		msg := ""
		if st.LastError != nil {
			msg = st.LastError.Message
		}
		return st, fmt.Errorf("%w: %s", errTaskFailed, msg)
	}
	return st, nil
}

// WaitTask polls a task every interval until cond holds, the task fails,
// or timeout passes.
func (p *sluiceProc) WaitTask(ctx context.Context, name, what string, timeout, interval time.Duration, cond func(*proto.TaskStatus) bool) (*proto.TaskStatus, error) {
	deadline := time.Now().Add(timeout)
	var last *proto.TaskStatus
	for {
		st, err := p.checkTask(ctx, name)
		if err != nil {
			return st, fmt.Errorf("waiting for task %s to be %s: %w", name, what, err)
		}
		last = st
		if cond(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("task %s not %s within %v (phase %s, state %s, last error %s)", name, what, timeout, last.Phase, last.State, lastError(last))
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return last, err
		}
	}
}

// heldSlot is a replication slot in the database of conn.
type heldSlot struct {
	conn *pgx.Conn
	name string
}

// Pause pauses a task and waits until paused holds (state paused; for a
// two-way task, both directions too) and no session holds any of slots:
// a workload written after Pause returns is then left entirely to the
// measured catch-up.
func (p *sluiceProc) Pause(ctx context.Context, name string, paused func(*proto.TaskStatus) bool, slots ...heldSlot) error {
	if _, err := p.Client.PauseTask(ctx, name); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	if _, err := p.WaitTask(ctx, name, "paused", time.Minute, 20*time.Millisecond, paused); err != nil {
		return err
	}
	for _, s := range slots {
		if err := waitSlotReleased(ctx, s.conn, s.name); err != nil {
			return err
		}
	}
	return nil
}

// isPaused is Pause's condition for a one-way task.
func isPaused(st *proto.TaskStatus) bool { return st.State == proto.StatePaused }

// Resume resumes a paused task (bounded call); it returns once the
// coordinator has recorded it, not when the task streams again.
func (p *sluiceProc) Resume(ctx context.Context, name string) error {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := p.Client.ResumeTask(rctx, name); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// DeleteTask deletes a task (its slot, publication and stream).
func (p *sluiceProc) DeleteTask(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Client.DeleteTask(cctx, name); err != nil {
		return fmt.Errorf("task delete %s: %w", name, err)
	}
	return nil
}

func lastError(st *proto.TaskStatus) string {
	if st == nil || st.LastError == nil {
		return "none"
	}
	return fmt.Sprintf("%s: %s", st.LastError.Kind, st.LastError.Message)
}

// statusLine summarises a task for progress lines.
func statusLine(st *proto.TaskStatus) string {
	if st == nil {
		return "-"
	}
	lat := "-"
	if st.LatencyMS != nil {
		lat = fmt.Sprintf("%d ms", *st.LatencyMS)
	}
	s := fmt.Sprintf("%s/%s full %d/%d rows, applied %d rows (%.0f rows/s), latency %s",
		st.Phase, st.State, st.Full.RowsDone, st.Full.RowsEstimated, st.RowsApplied, st.ThroughputRPS, lat)
	if st.LastError != nil {
		s += ", last error: " + st.LastError.Message
	}
	return s
}

// taskSpec is a task's YAML; extra lines (a two_way block, say) go at
// its end.
func taskSpec(name, srcDSN, dstDSN string, tables []string, schema, full, incremental bool, extra ...string) string {
	list := ""
	for i, t := range tables {
		if i > 0 {
			list += ", "
		}
		list += t
	}
	return fmt.Sprintf(`name: %s
source:      { dsn: %q }
destination: { type: postgres, dsn: %q }
sync:        { schema: %t, full: %t, incremental: %t }
objects:
  - schema: public
    tables: [%s]
conflicting_tables: ignore
retry: { connection: 10m, other: 2m }
`, name, srcDSN, dstDSN, schema, full, incremental, list) + strings.Join(append(extra, ""), "\n")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// freshSluice checkpoints both clusters, then starts a new `sluice up`
// for one measured run. The caller defers done(&err): it stops sluice
// and, when the run failed, keeps its log (named by label).
func (b *bench) freshSluice(ctx context.Context, label string, extraArgs ...string) (p *sluiceProc, done func(*error), err error) {
	cfg := *b.cfg
	cfg.SluiceArgs = append(append([]string(nil), cfg.SluiceArgs...), extraArgs...)
	return b.fresh(ctx, label, func() (*sluiceProc, error) { return startSluice(ctx, &cfg, b.work) })
}

// freshCluster is freshSluice for a cluster of nodes `sluice node`
// processes (sluice_cluster.go).
func (b *bench) freshCluster(ctx context.Context, label string, nodes int) (p *sluiceProc, done func(*error), err error) {
	return b.fresh(ctx, label, func() (*sluiceProc, error) { return startSluiceCluster(ctx, b.cfg, b.work, nodes) })
}

// fresh checkpoints both clusters and starts a Sluice for one measured
// run. done stops it, keeps its logs when the run failed, and removes
// its directory (JetStream's store grows with every run) unless --keep.
func (b *bench) fresh(ctx context.Context, label string, start func() (*sluiceProc, error)) (p *sluiceProc, done func(*error), err error) {
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return nil, nil, err
	}
	if p, err = start(); err != nil {
		return nil, nil, err
	}
	return p, func(errp *error) {
		*errp = b.sluiceFailed(p, label, *errp)
		p.Stop()
		if !b.cfg.Keep {
			os.RemoveAll(p.dir)
		}
	}, nil
}

// sluiceFailed copies a failed run's sluice logs next to the results (the
// work directory is removed at the end) and names them in the error.
func (b *bench) sluiceFailed(p *sluiceProc, what string, err error) error {
	if p == nil || err == nil {
		return err
	}
	dir := filepath.Join(b.cfg.Out, "logs")
	name := started.UTC().Format("20060102T150405Z") + "-" + strings.NewReplacer("/", "-", " ", "-").Replace(what)
	var paths []string
	for _, c := range p.procs {
		path := filepath.Join(dir, name+".log")
		if len(p.procs) > 1 {
			path = filepath.Join(dir, name+"-"+c.Name+".log")
		}
		data, rerr := os.ReadFile(c.LogPath)
		if rerr != nil || os.MkdirAll(dir, 0o755) != nil || os.WriteFile(path, data, 0o644) != nil {
			path = c.LogPath
		}
		paths = append(paths, path)
	}
	return fmt.Errorf("%w (sluice log: %s)", err, strings.Join(paths, ", "))
}

// metrics reads the samples of /metrics at url (a process of p), one
// line each.
func (p *sluiceProc) metrics(ctx context.Context, url string) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.Client.Token)
	resp, err := p.Client.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: %s", url, resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines, sc.Err()
}

// sample is the value of a /metrics line of metric whose labels include
// task="task" (ok false for another line).
func sample(line, metric, task string) (float64, bool) {
	if !strings.HasPrefix(line, metric+"{") || !strings.Contains(line, `task="`+task+`"`) {
		return 0, false
	}
	v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
	return v, err == nil
}

// rowsPerBatch is the task's rows per apply batch over every process
// (sluice_apply_rows_total / sluice_apply_batches_total: the apply
// groups' runs since the task's last resume), or 0 when unknown.
// Informational: smaller batches cost the destination more per row.
func (p *sluiceProc) rowsPerBatch(ctx context.Context, task string) float64 {
	var rows, batches float64
	for _, c := range p.procs {
		lines, err := p.metrics(ctx, c.URL)
		if err != nil {
			logf("    warning: %v", err)
			return 0
		}
		for _, line := range lines {
			if v, ok := sample(line, "sluice_apply_rows_total", task); ok {
				rows += v
			}
			if v, ok := sample(line, "sluice_apply_batches_total", task); ok {
				batches += v
			}
		}
	}
	if batches == 0 {
		return 0
	}
	return rows / batches
}
