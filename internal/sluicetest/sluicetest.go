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

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
)

// Node is a Sluice node running in the test process.
type Node struct {
	URL     string
	DataDir string
	cancel  context.CancelFunc
	done    chan error
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
	return n
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

func waitHealthy(t testing.TB, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited at start: %v", err)
		default:
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sluice at %s not healthy within 60s", url)
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

// SluiceBinary builds cmd/sluice once per test process and returns its
// path.
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
	bin     string
	port    int
	raft    int
	logPath string
	flags   []string
	cmd     *exec.Cmd
	exited  chan error
}

// StartProcess runs `sluice up` as a child process on a free port, with
// extra flags for `up`.
func StartProcess(t testing.TB, dataDir string, flags ...string) *Process {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	raft, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{bin: SluiceBinary(t), DataDir: dataDir, port: port, raft: raft, URL: fmt.Sprintf("http://127.0.0.1:%d", port), flags: flags,
		logPath: filepath.Join(dataDir, "..", filepath.Base(dataDir)+".log")}
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
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	cmd := p.cmd
	go func() { err := cmd.Wait(); logf.Close(); p.exited <- err }()
	waitHealthy(t, p.URL, p.exited)
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
