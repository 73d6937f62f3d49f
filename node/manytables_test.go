package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// The AnalyticDB guide's limit: a task that selects tables one by one and
// renames them holds up to 5,000 tables. Such a task to an adbpg
// destination (on PostgreSQL 15, without INSERT ... ON CONFLICT, its
// Greenplum 6 path) plans, copies, applies changes, and ends with every
// table equal to its source by checksum. make e2e runs it with 5,000
// tables (SLUICE_SOAK=1); make test with 200. (apply/postgres
// TestADBPGFiveThousandTablesPlan renders the 5,000-table schema sync.)
func TestManyTablesADBPG(t *testing.T) {
	n := 200
	if os.Getenv("SLUICE_SOAK") != "" {
		n = 5000
	}
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	// 500 tables a transaction: one would run out of lock slots.
	for from := 1; from <= n; from += 500 {
		testenv.MustExec(t, src, fmt.Sprintf(`DO $$
			BEGIN
				FOR i IN %d..%d LOOP
					EXECUTE format('CREATE TABLE public.t%%s (id int PRIMARY KEY, grp int NOT NULL, v text)', i);
					EXECUTE format('INSERT INTO public.t%%s SELECT g, mod(g, 3), ''v'' || g FROM generate_series(1, 3) g', i);
				END LOOP;
			END $$`, from, min(n, from+499)))
	}
	// Every table named, every tenth renamed, some distributed by a
	// column of their choosing.
	var tables, renames, keys []string
	dest := map[string]string{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		tables = append(tables, name)
		dest[name] = "public." + name
		if i%10 == 0 {
			renames = append(renames, fmt.Sprintf("%s: r%d", name, i))
			dest[name] = fmt.Sprintf("public.r%d", i)
		}
		if i%100 == 1 {
			keys = append(keys, name+": [id]")
		}
	}
	spec := fmt.Sprintf(`name: many
source: { dsn: %q }
destination: { type: adbpg, dsn: %q, upsert: delete_insert }
objects:
  - schema: public
    tables: [%s]
    rename: { %s }
    distribution_key: { %s }
`, p.src.DSN(testenv.DefaultDB), p.dst.DSN(testenv.DefaultDB), strings.Join(tables, ", "), strings.Join(renames, ", "), strings.Join(keys, ", "))
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nd := sluicetest.StartNode(t, node.Config{Logger: logger})
	c := nd.Client()
	start := time.Now()
	createTask(t, c, []byte(spec))
	st := waitPhase(t, c, "many", proto.PhaseIncremental, 30*time.Minute)
	t.Logf("%d tables: schema and full sync in %s (%d rows)", n, time.Since(start).Round(time.Second), st.Full.RowsDone)

	// Changes to a spread of tables, in one transaction and apart.
	var stmts []string
	for i := 1; i <= n; i += max(1, n/50) {
		stmts = append(stmts, fmt.Sprintf(`UPDATE public.t%d SET v = 'changed', grp = 7 WHERE id = 1; DELETE FROM public.t%d WHERE id = 2; INSERT INTO public.t%d VALUES (10, 1, 'new'); UPDATE public.t%d SET id = 20 WHERE id = 3`, i, i, i, i))
	}
	testenv.MustExec(t, src, "BEGIN; "+strings.Join(stmts, "; ")+"; COMMIT")
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	testenv.CheckFor(t, 10*time.Minute, time.Second, func() error {
		var diffs []string
		for _, name := range tables {
			if err := testenv.CompareTable(ctx, src, dst, "public."+name, dest[name]); err != nil {
				diffs = append(diffs, err.Error())
				if len(diffs) == 5 {
					break
				}
			}
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%s", strings.Join(diffs, "\n"))
		}
		return nil
	})
	t.Logf("%d tables equal at source and destination after %s", n, time.Since(start).Round(time.Second))
}

// testWriter sends a node's logs to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
