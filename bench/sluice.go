package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// sluiceProc is `sluice up` running as a child process. Every measured
// Sluice run gets a fresh one on a fresh data directory, so its CPU time
// and memory belong to that run alone.
type sluiceProc struct {
	URL     string
	DataDir string
	LogPath string
	Client  *coordinator.Client

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
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
	p := &sluiceProc{
		URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "sluice.log"),
		exited:  make(chan struct{}),
	}
	p.Client = &coordinator.Client{BaseURL: p.URL, HTTP: &http.Client{Timeout: 5 * time.Minute}}
	args := []string{"up", "--data-dir", p.DataDir, "--client-config", "none",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--raft-listen", fmt.Sprintf("127.0.0.1:%d", raft)}
	if cfg.Pprof != "" {
		args = append(args, "--pprof-listen", cfg.Pprof)
	}
	args = append(args, cfg.SluiceArgs...)
	logf, err := os.Create(p.LogPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(cfg.Sluice, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// The child dies with the bench, even on SIGKILL of the bench.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Sluice, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); logf.Close(); close(p.exited) }()
	if err := p.waitHealthy(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	if p.Client.Token, err = p.adminToken(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// adminToken waits for the admin token `up` writes at its first start.
func (p *sluiceProc) adminToken(ctx context.Context) (string, error) {
	path := filepath.Join(p.DataDir, "admin.token")
	for range 300 {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no admin token in %s within 30s", path)
}

func (p *sluiceProc) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := p.alive(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("sluice at %s not ready (/readyz) within 60s; log:\n%s", p.URL, p.LogTail())
}

// PID is the process id (for the meter).
func (p *sluiceProc) PID() int { return p.cmd.Process.Pid }

// alive returns an error once the process has exited.
func (p *sluiceProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("sluice exited unexpectedly (%v); log:\n%s", p.waitErr, p.LogTail())
	default:
		return nil
	}
}

// Stop ends the process gracefully (SIGTERM), then with SIGKILL after 60s.
func (p *sluiceProc) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			logf("warning: sluice exited with %v after SIGTERM (log %s)", p.waitErr, p.LogPath)
		}
	case <-time.After(60 * time.Second):
		logf("warning: sluice did not stop within 60s of SIGTERM; killing it (log %s)", p.LogPath)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// LogTail is the end of the process's log, for failure messages.
func (p *sluiceProc) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
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
	if err := checkpoint(ctx, b.src, b.dst); err != nil {
		return nil, nil, err
	}
	cfg := *b.cfg
	cfg.SluiceArgs = append(append([]string(nil), cfg.SluiceArgs...), extraArgs...)
	if p, err = startSluice(ctx, &cfg, b.work); err != nil {
		return nil, nil, err
	}
	return p, func(errp *error) {
		*errp = b.sluiceFailed(p, label, *errp)
		p.Stop()
	}, nil
}

// sluiceFailed copies a failed run's sluice log next to the results (the
// work directory is removed at the end) and names it in the error.
func (b *bench) sluiceFailed(p *sluiceProc, what string, err error) error {
	if p == nil || err == nil {
		return err
	}
	dir := filepath.Join(b.cfg.Out, "logs")
	data, rerr := os.ReadFile(p.LogPath)
	if rerr != nil || os.MkdirAll(dir, 0o755) != nil {
		return fmt.Errorf("%w (sluice log: %s)", err, p.LogPath)
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(what)
	path := filepath.Join(dir, started.UTC().Format("20060102T150405Z")+"-"+name+".log")
	if os.WriteFile(path, data, 0o644) != nil {
		return fmt.Errorf("%w (sluice log: %s)", err, p.LogPath)
	}
	return fmt.Errorf("%w (sluice log: %s)", err, path)
}
