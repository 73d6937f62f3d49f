// Command demo is `make demo`: two throwaway PostgreSQL clusters, `sluice
// up`, a task with schema, full and incremental sync, a live workload with
// progress, a content comparison of both sides, and cleanup.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/workload"
	"github.com/sluicedb/sluice/proto"
)

func main() {
	bin := flag.String("sluice", "bin/sluice", "path to the sluice binary")
	rows := flag.Int("rows", 200000, "accounts to seed before the task starts")
	txs := flag.Int("transactions", 3000, "transactions of the live workload")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *rows, *txs); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(ctx context.Context, bin string, seedRows, txs int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	step("Starting two throwaway PostgreSQL clusters (source and destination)")
	src, err := testenv.StartPostgres(testenv.PostgresOptions{Durable: true})
	if err != nil {
		return err
	}
	defer src.Destroy()
	dst, err := testenv.StartPostgres(testenv.PostgresOptions{Durable: true})
	if err != nil {
		return err
	}
	defer dst.Destroy()
	fmt.Printf("    source:      %s\n    destination: %s\n", src.DSN("postgres"), dst.DSN("postgres"))

	step("Creating the source schema and seeding %d accounts", seedRows)
	conn, err := pgx.Connect(ctx, src.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, workload.Schema); err != nil {
		return err
	}
	if err := workload.Seed(ctx, conn, seedRows); err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	raftPort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	server := fmt.Sprintf("http://127.0.0.1:%d", port)
	step("Starting sluice up (data in %s)", filepath.Join(work, "data"))
	logPath := filepath.Join(work, "sluice.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	up := exec.Command(bin, "up", "--data-dir", filepath.Join(work, "data"), "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--raft-listen", fmt.Sprintf("127.0.0.1:%d", raftPort))
	// The demo's own client config: sluice up writes its admin token
	// there, and the CLI calls below find it with no flag.
	configHome = filepath.Join(work, "config")
	up.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome)
	up.Stdout, up.Stderr = logf, logf
	up.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := up.Start(); err != nil {
		return err
	}
	defer func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		_ = up.Wait()
		logf.Close()
	}()
	if err := waitHealthy(ctx, server); err != nil {
		tail, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, tail)
	}
	if token, err = readToken(ctx, filepath.Join(work, "data", "admin.token")); err != nil {
		return err
	}
	step("sluice up made an admin token (data/admin.token) and wrote it to the client config: the CLI needs no flag")

	spec := fmt.Sprintf(`name: demo
source:      { dsn: "%s" }
destination: { type: postgres, dsn: "%s" }
sync:        { schema: true, full: true, incremental: true }
objects:
  - schema: public
`, src.DSN("postgres"), dst.DSN("postgres"))
	specPath := filepath.Join(work, "task.yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o600); err != nil {
		return err
	}
	step("sluice task create -f task.yaml\n%s", indent(spec))
	if err := cli(bin, server, "task", "create", "-f", specPath); err != nil {
		return err
	}

	step("Running a live workload (%d transactions: inserts, updates incl. key changes, deletes, truncates)", txs)
	var done atomic.Int64
	loadErr := make(chan error, 1)
	go func() {
		_, err := workload.Run(ctx, src.DSN("postgres"), workload.Options{
			Transactions: txs, Duration: 5 * time.Minute, Seed: time.Now().UnixNano(), Truncate: true,
			Progress: func(n int) { done.Store(int64(n)); time.Sleep(5 * time.Millisecond) },
		})
		loadErr <- err
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case err := <-loadErr:
			if err != nil {
				return fmt.Errorf("workload: %w", err)
			}
			break loop
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			fmt.Printf("    workload %5d/%d tx | %s\n", done.Load(), txs, status(server))
		}
	}

	step("Workload finished; waiting for the destination to catch up and comparing contents")
	dconn, err := pgx.Connect(ctx, dst.DSN("postgres"))
	if err != nil {
		return err
	}
	defer dconn.Close(context.Background())
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := testenv.CompareTables(ctx, conn, dconn, workload.Tables)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		fmt.Printf("    %s\n", status(server))
		time.Sleep(time.Second)
	}
	fmt.Printf("    %-18s %12s  %s\n", "table", "rows", "fingerprint (source = destination)")
	for _, table := range workload.Tables {
		s, err := testenv.ChecksumTable(ctx, conn, table)
		if err != nil {
			return err
		}
		fmt.Printf("    %-18s %12d  %s\n", table, s.Rows, s.Sum)
	}
	step("sluice task get demo")
	if err := cli(bin, server, "task", "get", "demo"); err != nil {
		return err
	}
	step("sluice task delete demo (drops the slot, publication and heartbeat objects)")
	if err := cli(bin, server, "task", "delete", "demo"); err != nil {
		return err
	}
	step("Done: the destination was an exact, live copy of the source. Cleaning up.")
	return nil
}

// configHome is the demo's XDG_CONFIG_HOME; token the admin token.
var configHome, token string

// readToken waits for the admin token sluice up writes at its first start.
func readToken(ctx context.Context, path string) (string, error) {
	for range 300 {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("no admin token in %s within 30s", path)
}

func cli(bin, server string, args ...string) error {
	cmd := exec.Command(bin, append(args, "--server", server)...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+configHome)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func waitHealthy(ctx context.Context, server string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(server + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("sluice did not become ready (/readyz) within 60s")
}

// status is a one-line summary of the task from the API.
func status(server string) string {
	req, err := http.NewRequest(http.MethodGet, server+"/api/v1/tasks/demo", nil)
	if err != nil {
		return "status: " + err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "status: " + err.Error()
	}
	defer resp.Body.Close()
	var st proto.TaskStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "status: " + err.Error()
	}
	lat := "-"
	if st.LatencyMS != nil {
		lat = strconv.FormatInt(*st.LatencyMS, 10) + " ms"
	}
	full := fmt.Sprintf("%d/%d rows", st.Full.RowsDone, st.Full.RowsEstimated)
	s := fmt.Sprintf("task %-11s %-8s | full %s | applied %d rows (%.0f rows/s) | latency %s", st.Phase, st.State, full, st.RowsApplied, st.ThroughputRPS, lat)
	if st.LastError != nil {
		s += " | last error: " + st.LastError.Message
	}
	return s
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
