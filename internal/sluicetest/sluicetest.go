// Package sluicetest runs Sluice itself for tests: a node in the test
// process, or `sluice up` as a child process to kill.
package sluicetest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
)

// Node is a Sluice node running in the test process.
type Node struct {
	URL     string
	DataDir string
	// Token is the admin token the node made at its first start.
	Token  string
	cancel context.CancelFunc
	done   chan error
}

// Client is an API client of the node with its admin token.
func (n *Node) Client() *coordinator.Client {
	return &coordinator.Client{BaseURL: n.URL, Token: n.Token}
}

// StartNode runs `sluice up` in-process on a free port with cfg (DataDir
// defaults to a temporary directory) and stops it at cleanup.
func StartNode(t testing.TB, cfg node.Config) *Node {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	raftPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:" + strconv.Itoa(port)
	cfg.RaftListen = "127.0.0.1:" + strconv.Itoa(raftPort)
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{URL: "http://" + cfg.Listen, DataDir: cfg.DataDir, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- node.Up(ctx, cfg) }()
	t.Cleanup(func() { n.Stop(t) })
	waitHealthy(t, n.URL, n.done)
	n.Token = AdminToken(t, n.DataDir)
	return n
}

// AdminToken waits (30 s at most) for the admin token a node writes to
// its data directory at its first start, and returns it.
func AdminToken(t testing.TB, dataDir string) string {
	t.Helper()
	path := filepath.Join(dataDir, node.AdminTokenFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin token in %s within 30s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the node down gracefully and waits for it.
func (n *Node) Stop(t testing.TB) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node stopped with error: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("node did not stop within 60s")
	}
}

// waitHealthy waits until the node is ready (GET /readyz answers 200: it
// has a coordinator leader and its roles are started).
func waitHealthy(t testing.TB, url string, exited <-chan error) {
	t.Helper()
	waitAnswer(t, url, "/readyz", true, exited)
}

// waitAnswer polls GET path until it answers (200 when ok200), failing
// the test after 60 s or as soon as the process exits.
func waitAnswer(t testing.TB, url, path string, ok200 bool, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited at start: %v", err)
		default:
		}
		resp, err := http.Get(url + path)
		if err == nil {
			resp.Body.Close()
			if !ok200 || resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("sluice at %s: %s did not answer within 60s", url, path)
}

// testWriter sends log lines to the test log, which shows them only when
// the test fails (or with -v).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// RemoveBinary removes what SluiceBinary built: a package whose tests
// use it calls it from TestMain once they have run, so a test run
// leaves nothing behind.
func RemoveBinary() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// SluiceBinary builds cmd/sluice once per test process and returns its
// path (RemoveBinary removes it).
func SluiceBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/sluice")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is `sluice up` running as a child process, to be killed.
type Process struct {
	URL     string
	DataDir string
	// Token is the admin token of its data directory.
	Token string
	// Env is extra environment of the process ("KEY=value"); ConfigHome
	// its XDG_CONFIG_HOME, where it writes the client config.
	Env        []string
	ConfigHome string
	bin        string
	port       int
	raft       int
	logPath    string
	flags      []string
	// liveOnly: Start waits only until the API answers /healthz at all
	// (the process is up), not for readiness, and reads no token.
	liveOnly bool
	cmd      *exec.Cmd
	exited   chan error
}

// StartProcess runs `sluice up` as a child process on a free port, with
// extra flags for `up`.
func StartProcess(t testing.TB, dataDir string, flags ...string) *Process {
	t.Helper()
	return StartProcessEnv(t, dataDir, nil, flags...)
}

// StartProcessEnv is StartProcess with extra environment for the process
// ("KEY=value", kept in Env for its restarts), from its first start on.
func StartProcessEnv(t testing.TB, dataDir string, env []string, flags ...string) *Process {
	t.Helper()
	return startProcess(t, dataDir, env, false, flags)
}

// StartProcessLive is StartProcess that returns as soon as the API
// answers /healthz (whatever the status, as an older /healthz said 503
// before a leader): the process is up, but may have no coordinator
// leader and no admin token yet (Token is empty).
func StartProcessLive(t testing.TB, dataDir string, flags ...string) *Process {
	t.Helper()
	return startProcess(t, dataDir, nil, true, flags)
}

func startProcess(t testing.TB, dataDir string, env []string, liveOnly bool, flags []string) *Process {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	raft, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{bin: SluiceBinary(t), DataDir: dataDir, port: port, raft: raft, URL: fmt.Sprintf("http://127.0.0.1:%d", port), flags: flags, Env: env,
		logPath: filepath.Join(dataDir, "..", filepath.Base(dataDir)+".log"), ConfigHome: t.TempDir(), liveOnly: liveOnly}
	p.Start(t)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("sluice's log (last 8 KB):\n%s", p.Log())
		}
	})
	return p
}

// Start (re)starts the process on the same data directory and port.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"up", "--data-dir", p.DataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", p.port),
		"--raft-listen", fmt.Sprintf("127.0.0.1:%d", p.raft)}, p.flags...)
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+p.ConfigHome), p.Env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	cmd := p.cmd
	go func() { err := cmd.Wait(); logf.Close(); p.exited <- err }()
	if p.liveOnly {
		waitAnswer(t, p.URL, "/healthz", false, p.exited)
		return
	}
	waitHealthy(t, p.URL, p.exited)
	p.Token = AdminToken(t, p.DataDir)
}

// Client is an API client of the process with its admin token.
func (p *Process) Client() *coordinator.Client {
	return &coordinator.Client{BaseURL: p.URL, Token: p.Token}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Process) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// Terminate sends SIGTERM and waits for a graceful exit.
func (p *Process) Terminate(t testing.TB) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("sluice exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("sluice did not exit within 60s of SIGTERM")
		p.Kill()
	}
	p.cmd = nil
}

// Alive reports whether the process runs.
func (p *Process) Alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.exited:
		p.exited <- err // keep it for Kill and Terminate
		return false
	default:
		return true
	}
}

// PID is the running process's id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// RSS returns the process's resident set size in bytes.
func (p *Process) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.PID())
}

// Log returns the process's output so far, for failure messages.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
