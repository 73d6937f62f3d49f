package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// filterWorkload is a bounded workload over items (id, region, n, big)
// that moves rows in and out of region = 'eu' in every way: updates of
// region alone (big unchanged, so an unchanged TOAST value), of big
// alone, of n alone, key changes in, out and within, deletes, inserts
// failing and passing, and a row moved out and back in one transaction.
func filterWorkload(r int) string {
	big := fmt.Sprintf(`(SELECT string_agg(md5(random()::text || %d || i), '') FROM generate_series(1, 100) i)`, r)
	return fmt.Sprintf(`BEGIN;
		UPDATE items SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END WHERE id %% 37 = %[1]d %% 37;
		UPDATE items SET big = %[2]s WHERE id = 1 + (%[1]d * 13) %% 400;
		UPDATE items SET n = n + 1 WHERE id %% 11 = %[1]d %% 11;
		UPDATE items SET id = id + 1000 WHERE id = 1 + (%[1]d * 7) %% 400;
		UPDATE items SET id = id + 2000, region = CASE region WHEN 'eu' THEN 'apac' ELSE 'eu' END WHERE id = 1 + (%[1]d * 17) %% 400;
		DELETE FROM items WHERE id = 1 + (%[1]d * 29) %% 400;
		INSERT INTO items VALUES (5000 + %[1]d, 'eu', %[1]d, %[2]s), (6000 + %[1]d, 'us', %[1]d, %[2]s);
		UPDATE items SET region = 'us' WHERE id = 1 + (%[1]d * 31) %% 400;
		UPDATE items SET region = 'eu', n = n + 100 WHERE id = 1 + (%[1]d * 31) %% 400;
		COMMIT`, r, big)
}

// A row filter on a column outside the replica identity, through the
// sluice binary, to a PostgreSQL, a Kafka and a Doris (emulator)
// destination: after the full sync and a workload moving rows in and out
// of the filter, each destination holds exactly the source's rows that
// satisfy it, large (out-of-line TOAST) values whole.
func TestRowFilterOnAnyColumn(t *testing.T) {
	p := newPair(t)
	k := testenv.NewKafka(t)
	e := testenv.NewDoris(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, `
		CREATE TABLE items (id int PRIMARY KEY, region text, n int, big text);
		ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
		INSERT INTO items SELECT g, (ARRAY['eu', 'us', 'apac'])[1 + g % 3], g,
			(SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 100) i) FROM generate_series(1, 400) g`)
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"))
	c := proc.Client()
	const filter = `    filter: { items: "region = 'eu'" }` + "\n"
	report, err := c.Precheck(ctx, taskYAML("fpg", p, filter))
	if err != nil || !report.Passed {
		t.Fatalf("precheck of a filter on a non-key column: %+v %v", report, err)
	}
	createTask(t, c, taskYAML("fpg", p, filter))
	createTask(t, c, kafkaTaskYAML("fkafka", p.src.DSN(testenv.DefaultDB), k, "  topic: filtered\n", filter))
	createTask(t, c, []byte(fmt.Sprintf("name: fdoris\nsource: { dsn: %q }\ndestination: { type: doris, url: %q, user: root, database: dw, batch_interval: 1s }\nobjects:\n  - schema: public\n%s",
		p.src.DSN(testenv.DefaultDB), e.FEURL(), filter)))
	for _, task := range []string{"fpg", "fkafka", "fdoris"} {
		waitPhase(t, c, task, proto.PhaseIncremental, 2*time.Minute)
	}

	const want = `(SELECT * FROM items WHERE region = 'eu')`
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	waitConnsSame(t, src, dst, want, "items", time.Minute)
	for r := range 40 {
		testenv.MustExec(t, src, filterWorkload(r))
	}
	var n int
	if err := src.QueryRow(ctx, `SELECT count(*) FROM items WHERE region = 'eu'`).Scan(&n); err != nil || n < 100 {
		t.Fatalf("%d rows in the filter (%v): the workload should leave many", n, err)
	}
	waitConnsSame(t, src, dst, want, "items", 2*time.Minute)
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		return compareStates(sourceState(t, src, want), foldLatest(t, k.ReadTopic(t, "filtered")))
	})
	// Doris (a Unique table): sluice verify compares the source's
	// filtered rows with what Doris's SQL reads, value for value.
	testenv.CheckFor(t, 2*time.Minute, time.Second, func() error {
		report, err := c.Verify(ctx, "fdoris", proto.VerifyRequest{})
		if err != nil {
			return err
		}
		if report.Outcome() != 0 || len(report.Tables) != 1 {
			return fmt.Errorf("verify of the Doris task: outcome %d, %v", report.Outcome(), verifyDiffs(report))
		}
		return nil
	})
}

// foldLatest folds a Debezium topic by key into the rows it leaves: the
// last message of a key decides, a delete removing it, a truncate
// emptying its partition. Unlike
// foldEvents it takes a delete of a key never seen, and an update of a
// row never inserted: with a filter evaluated in the pipeline, a row
// moving into the filter comes as an update, and one that was never in
// it may be deleted.
func foldLatest(t *testing.T, recs []testenv.Record) map[string]string {
	t.Helper()
	type kept struct {
		partition int32
		row       string
	}
	state := map[string]kept{}
	for _, r := range recs {
		ev := debeziumEvent(t, "items", false)(r)
		switch ev.op {
		case "t": // the full sync starts with one in each partition
			for k, v := range state {
				if v.partition == r.Partition {
					delete(state, k)
				}
			}
		case "d":
			delete(state, ev.key)
		default:
			b, _ := json.Marshal(ev.row) // sorted keys
			state[ev.key] = kept{partition: r.Partition, row: string(b)}
		}
	}
	out := make(map[string]string, len(state))
	for k, v := range state {
		out[k] = v.row
	}
	return out
}
