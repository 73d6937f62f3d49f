package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
)

// The script of issue 20: start `sluice up`, wait only until its API
// answers (/healthz, not /readyz), and create a task at once with the
// CLI. Twenty fresh starts of the real binary, each on a new data
// directory and new ports: every create succeeds (it waits for the
// coordinator leader and the first admin token instead of failing), the
// task exists, and the first and last tasks copy the source's rows.
func TestCreateRightAfterUp(t *testing.T) {
	const starts = 20
	src := testenv.NewPostgres(t, testenv.PostgresOptions{MaxReplicationSlots: starts + 4}) // each task's slot stays behind
	dst := testenv.NewPostgres(t)
	srcConn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 200) g`)
	base := t.TempDir()
	for i := range starts {
		name := fmt.Sprintf("up%02d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := dst.Exec(ctx, testenv.DefaultDB, "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		specFile := filepath.Join(base, name+".yaml")
		if err := os.WriteFile(specFile, dsnTaskYAML(name, src.DSN(testenv.DefaultDB), dst.DSN(name), ""), 0o600); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(base, name)
		p := sluicetest.StartProcessLive(t, dataDir)

		cmd := exec.CommandContext(ctx, sluicetest.SluiceBinary(t), "task", "create", "-f", specFile, "--server", p.URL, "--timeout", "2m")
		cmd.Env = []string{"XDG_CONFIG_HOME=" + p.ConfigHome, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("start %d: task create right after up: %v\n%s\nsluice's log:\n%s", i, err, out, p.Log())
		}
		c := &coordinator.Client{BaseURL: p.URL, Token: sluicetest.AdminToken(t, dataDir)}
		if st, err := c.GetTask(ctx, name); err != nil || st.Name != name {
			t.Fatalf("start %d: task %s after its create: %+v, %v", i, name, st, err)
		}
		if i == 0 || i == starts-1 {
			waitConnsEqual(t, srcConn, testenv.Conn(t, dst.DSN(name)), []string{"public.t"}, 2*time.Minute)
		}
		cancel()
		p.Kill() // SIGKILL by PID
		if err := os.RemoveAll(dataDir); err != nil {
			t.Fatal(err)
		}
	}
}
