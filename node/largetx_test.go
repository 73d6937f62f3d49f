package node_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// rssLimit is what Sluice may use while a 2-million-row transaction flows
// through it: the embedded JetStream server, Raft, the capture's open and
// in-flight batches (16 MiB each at most) and each apply worker's prefetch
// and batch (8 MiB each), with the garbage collector's headroom. Documented
// in README.md ("Guarantees").
const rssLimit = 256 << 20

func TestLargeTransactionBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large transaction: skipped with -short")
	}
	p := newPair(t)
	srcConn := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, srcConn, `CREATE TABLE big (id bigint PRIMARY KEY, k int, c text, pad text)`)
	flags := []string{}
	if addr := os.Getenv("SLUICE_PPROF"); addr != "" {
		flags = append(flags, "--pprof-listen", addr) // profile by hand while it runs
	}
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), flags...)
	c := proc.Client()
	createTask(t, c, taskYAML("large", p, ""))
	waitPhase(t, c, "large", proto.PhaseIncremental, time.Minute)

	var peak atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if rss, err := proc.RSS(); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	const rows = 2_000_000
	testenv.MustExec(t, srcConn, `INSERT INTO big SELECT g, g % 1000, md5(g::text), repeat('x', 60) FROM generate_series(1, 2000000) g`)
	waitEqual(t, p, []string{"public.big"}, 5*time.Minute)
	close(stop)
	<-watched
	t.Logf("peak RSS while syncing %d rows in one transaction: %d MiB", rows, peak.Load()>>20)
	if peak.Load() > rssLimit {
		t.Fatalf("peak RSS %d MiB over the %d MiB limit", peak.Load()>>20, rssLimit>>20)
	}
	if peak.Load() == 0 {
		t.Fatal("RSS never read")
	}
}
