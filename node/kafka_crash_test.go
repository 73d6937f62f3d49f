package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// Sluice writing to Kafka is killed with SIGKILL again and again, during
// the full sync and under a write load on a keyed table and a keyless one
// (REPLICA IDENTITY FULL, duplicate rows). After the last restart a
// read_committed consumer folds each topic into exactly the source's
// rows: a change written twice would leave a doubled row (keyless) or an
// insert of a key that exists (keyed), one lost would leave a difference,
// and per key the positions only go forward.
func TestKafkaCrashConsistencyUnderSIGKILL(t *testing.T) {
	src := testenv.NewPostgres(t)
	k := testenv.NewKafka(t)
	ctx := context.Background()
	conn := testenv.Conn(t, src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `
		CREATE TABLE kv (id int PRIMARY KEY, v text, n int);
		INSERT INTO kv SELECT g, 'v' || g, 0 FROM generate_series(1, 20000) g;
		CREATE TABLE log (k int, v text);
		ALTER TABLE log REPLICA IDENTITY FULL;
		INSERT INTO log SELECT g % 500, 'x' || (g % 7) FROM generate_series(1, 5000) g`)
	// Tiny chunks make the full sync long enough to be killed in.
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "4", "--snapshot-readers", "2")
	c := proc.Client()
	createTask(t, c, kafkaTaskYAML("kcrash", src.DSN(testenv.DefaultDB), k, "  topic: kv-cdc\n  topic_partitions: 3\n",
		"    tables: [kv, log]\n    topics: { log: log-cdc }\n"))

	// `make e2e` soaks: many more kills over a longer load.
	kills, txs, duration := 5, 4000, 3*time.Minute
	if os.Getenv("SLUICE_SOAK") != "" {
		kills, txs, duration = 25, 40000, 15*time.Minute
	}
	var committed atomic.Int64
	load := make(chan error, 1)
	go func() { load <- kafkaCrashLoad(ctx, src.DSN(testenv.DefaultDB), txs, duration, &committed) }()

	// The first kill lands in the middle of the full sync.
	waitCopying(t, c, "kcrash")
	killRepeatedly(t, proc, kills, rand.New(rand.NewSource(3)), &committed)
	if err := <-load; err != nil {
		t.Fatalf("load: %v", err)
	}
	waitPhase(t, c, "kcrash", proto.PhaseIncremental, 2*time.Minute)
	sameAsSource := func() error {
		if err := compareStates(sourceState(t, conn, "kv"), foldEvents(t, k.ReadTopic(t, "kv-cdc"), debeziumEvent(t, "kv", false))); err != nil {
			return fmt.Errorf("kv: %w", err)
		}
		if err := compareCounts(sourceRows(t, conn, "log"), foldKeyless(t, k.ReadTopic(t, "log-cdc"), "log")); err != nil {
			return fmt.Errorf("log: %w", err)
		}
		return nil
	}
	testenv.CheckFor(t, 3*time.Minute, time.Second, sameAsSource)
	// And once more: a kill right after the topics matched loses nothing.
	testenv.MustExec(t, conn, `INSERT INTO log VALUES (1, 'after'), (1, 'after'); UPDATE kv SET v = 'after' WHERE id = 7`)
	proc.Kill()
	proc.Start(t)
	testenv.CheckFor(t, time.Minute, time.Second, sameAsSource)
}

// kafkaCrashLoad writes txs transactions (or for duration): on kv an
// insert, an update, a delete and now and then a key change; on log an
// insert of a row that often exists already, and an update and a delete
// of one of several equal rows.
func kafkaCrashLoad(ctx context.Context, dsn string, txs int, duration time.Duration, committed *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewSource(11))
	for i := range txs {
		if ctx.Err() != nil {
			return nil // the time bound
		}
		sql := fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'new', 0);
			UPDATE kv SET v = v || '+', n = n + 1 WHERE id = %d;
			DELETE FROM kv WHERE id = %d;
			INSERT INTO log VALUES (%d, 'x%d');
			UPDATE log SET v = v || 'u' WHERE ctid = (SELECT ctid FROM log WHERE k = %d LIMIT 1);
			DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE k = %d LIMIT 1)`,
			100000+i, 1+rng.Intn(20000), 1+rng.Intn(20000), rng.Intn(500), rng.Intn(7), rng.Intn(500), rng.Intn(500))
		if i%10 == 0 {
			sql += fmt.Sprintf(`; UPDATE kv SET id = %d WHERE id = %d`, 300000+i, 1+rng.Intn(20000))
		}
		// Several statements in one Exec run as one transaction.
		if _, err := conn.Exec(ctx, sql); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		committed.Store(int64(i + 1))
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// sourceRows counts a table's rows by their JSON (sorted keys, as the
// messages' images are compared).
func sourceRows(t *testing.T, conn *pgx.Conn, table string) map[string]int {
	t.Helper()
	rows, err := conn.Query(context.Background(), fmt.Sprintf(`SELECT to_jsonb(t)::text FROM %s t`, table))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out[normRow(t, v)]++
	}
	return out
}

func normRow(t *testing.T, v string) string {
	t.Helper()
	var row map[string]any
	if err := json.Unmarshal([]byte(v), &row); err != nil {
		t.Fatalf("row %s: %v", v, err)
	}
	b, _ := json.Marshal(row)
	return string(b)
}

// foldKeyless folds the Debezium messages of a keyless table's topic
// into a count of each row. Such a table's message key is the whole row,
// so equal rows share a key (and a partition): each partition keeps its
// counts, a delete must find a row to take away, and per key the
// positions (commit LSN, order in the transaction) only go forward but
// for equal rows of the snapshot, which share one.
func foldKeyless(t *testing.T, recs []testenv.Record, table string) map[string]int {
	t.Helper()
	type slot struct {
		partition int32
		key       string
	}
	type pos struct {
		lsn, order uint64
		snapshot   bool
	}
	counts := map[slot]int{}
	rowOf := map[slot]string{}
	last := map[slot]pos{}
	for _, r := range recs {
		m := decodeDebezium(t, r)
		if m.Source.Table != table {
			t.Fatalf("message of table %s in the topic of %s", m.Source.Table, table)
		}
		if m.Op == "t" {
			for s := range counts {
				if s.partition == r.Partition {
					delete(counts, s)
				}
			}
			continue
		}
		s := slot{r.Partition, normKey(t, r.Key)}
		p := pos{lsn: m.Source.LSN, snapshot: m.Op == "r"}
		if m.Transaction != nil {
			p.order = m.Transaction.TotalOrder
		}
		if prev, ok := last[s]; ok && !(prev.snapshot && p.snapshot && prev == p) &&
			(p.lsn < prev.lsn || p.lsn == prev.lsn && p.order <= prev.order) {
			t.Fatalf("key %s: position %d/%d after %d/%d (written twice, or out of order)", s.key, p.lsn, p.order, prev.lsn, prev.order)
		}
		last[s] = p
		img := m.After
		if m.Op == "d" {
			img = m.Before
		}
		b, _ := json.Marshal(img)
		row := string(b)
		switch m.Op {
		case "c", "r":
			counts[s]++
			rowOf[s] = row
		case "u": // an update that changes no value: the key stays
			if counts[s] == 0 || rowOf[s] != row {
				t.Fatalf("key %s: update of a row not held, or to other values (%s)", s.key, row)
			}
		case "d":
			if counts[s] == 0 {
				t.Fatalf("key %s: delete of a row not held (%s)", s.key, row)
			}
			counts[s]--
		default:
			t.Fatalf("op %q", m.Op)
		}
	}
	out := map[string]int{}
	for s, n := range counts {
		if n > 0 {
			out[rowOf[s]] += n
		}
	}
	return out
}

func compareCounts(src, dst map[string]int) error {
	for row, n := range src {
		if dst[row] != n {
			return fmt.Errorf("row %s: %d in the source, %d in kafka", row, n, dst[row])
		}
	}
	for row, n := range dst {
		if _, ok := src[row]; !ok {
			return fmt.Errorf("row %s: %d in kafka, none in the source", row, n)
		}
	}
	return nil
}
