package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
	"github.com/sluicedb/sluice/proto"
)

// Sluice writing to Doris (the emulator) is killed with SIGKILL again and
// again, during the full sync and during incremental sync, each under a
// write load on four tables, while the emulator fails loads on purpose
// in both phases (Publish Timeout, -235 too many versions, dropped
// connections) and its FE restarts once. After the last restart:
//   - the Unique tables kv and every_type (every type family Doris
//     takes) hold the source's rows, value for value in PostgreSQL's text
//     form;
//   - the Duplicate tables events (engine: duplicate) and log (keyless,
//     REPLICA IDENTITY FULL) hold every change once: _record_id runs 1..n
//     without a gap or a repeat, n is the number of changes an audit
//     trigger counted in the source (an UPDATE of log twice: its old row
//     deleted, then its new row), _is_deleted marks exactly the rows of
//     DELETEs (and log's old rows), _version is 0 in the full sync and the
//     commit second after it, the full sync holds exactly the source's
//     rows at its snapshot, and folded the table equals the source.
//
// Every load transaction inserts a marker row into events and into log
// that nothing changes later: a table's snapshot saw the transactions up
// to the highest marker among its full-sync rows (one connection commits
// them in order), so the audit rows of the later transactions are the
// changes the table must hold as rows with a _record_id.
//
// infinity and -infinity load as the last and first instants a Doris
// column holds (documented): the test's finite values stay clear of them.
func TestDorisCrashConsistencyUnderSIGKILL(t *testing.T) {
	start := time.Now()
	src := testenv.NewPostgres(t)
	e := testenv.NewDoris(t)
	ctx := context.Background()
	dsn := src.DSN(testenv.DefaultDB)
	conn := testenv.Conn(t, dsn)
	testenv.MustExec(t, conn, dorisCrashSchema)
	rng := rand.New(rand.NewSource(17))
	for first := 1; first <= 2000; first += 200 {
		var vals []string
		for id := first; id < first+200; id++ {
			vals = append(vals, "("+strconv.Itoa(id)+", "+strings.Join(everyTypeValues(rng, id), ", ")+")")
		}
		testenv.MustExec(t, conn, "INSERT INTO every_type VALUES "+strings.Join(vals, ",\n"))
	}
	// The change counter Sluice does not sync (the task names schema
	// public only), and the rows that exist before it counts.
	testenv.MustExec(t, conn, dorisCrashAudit)
	pre := map[string]int64{}
	for _, tbl := range []string{"events", "log"} {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		pre[tbl] = n
	}
	// The source as the comparison reads it: timestamptz in UTC, floats
	// in their shortest exact form.
	read := testenv.Conn(t, dsn)
	testenv.MustExec(t, read, `SET TimeZone = 'UTC'; SET extra_float_digits = 1`)

	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "dw"}
	proc := sluicetest.StartProcess(t, filepath.Join(t.TempDir(), "data"), "--chunk-pages", "4", "--snapshot-readers", "2")
	c := proc.Client()
	createTask(t, c, []byte(fmt.Sprintf(`name: dcrash
source: { dsn: "%s" }
destination: { type: doris, url: "%s", user: root, database: dw, batch_interval: 1s }
objects:
  - schema: public
    engine: { events: duplicate }
`, dsn, e.FEURL())))

	// `make e2e` soaks: many more kills over longer loads.
	kills, txs, duration := 5, 4000, 3*time.Minute
	if os.Getenv("SLUICE_SOAK") != "" {
		kills, txs, duration = 25, 20000, 10*time.Minute
	}
	var committed atomic.Int64
	krng := rand.New(rand.NewSource(5))
	faults := func() {
		loads := e.Stats().Loads
		e.InjectDropConnection(2)
		e.InjectTooManyVersions(3)
		e.InjectPublishTimeout(3)
		waitLoads(t, e, loads+8, 30*time.Second) // the faults meet a running Sluice
	}

	// Full sync: the first kill lands in the middle of it; after two the
	// emulator fails loads on purpose, then more kills.
	load := make(chan error, 1)
	go func() { load <- dorisCrashLoad(ctx, dsn, 1, txs, duration, &committed) }()
	waitCopying(t, c, "dcrash")
	inFull := kills / 2
	killRepeatedly(t, proc, 2, krng, &committed)
	logPhase(t, c, "dcrash")
	faults()
	killRepeatedly(t, proc, inFull-2, krng, &committed)
	logPhase(t, c, "dcrash")
	if err := <-load; err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("first load done: %d transactions; emulator %+v", committed.Load(), e.Stats())
	waitPhase(t, c, "dcrash", proto.PhaseIncremental, 2*time.Minute)

	// Incremental sync, under a second load (one writer at a time, so
	// the transactions commit in their numbers' order): the faults
	// again, kills, and halfway the FE goes away for three seconds.
	go func() { load <- dorisCrashLoad(ctx, dsn, nextTx(t, conn), txs, duration, &committed) }()
	faults()
	rest := kills - inFull
	killRepeatedly(t, proc, rest/2, krng, &committed)
	if err := e.RestartFE(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	killRepeatedly(t, proc, rest-rest/2, krng, &committed)
	logPhase(t, c, "dcrash")
	if err := <-load; err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("second load done: %d transactions; emulator %+v", committed.Load(), e.Stats())
	waitPhase(t, c, "dcrash", proto.PhaseIncremental, 2*time.Minute)

	var summary string
	check := func() error { return dorisCrashCheck(t, read, srv, pre, start, &summary) }
	testenv.CheckFor(t, 3*time.Minute, 2*time.Second, check)
	t.Logf("equal after the load (%s): %s", time.Since(start).Round(time.Second), summary)

	// And once more: a kill right after everything matched loses nothing,
	// nor do changes made while Sluice is down.
	if err := dorisCrashLoad(ctx, dsn, nextTx(t, conn), 5, time.Minute, &committed); err != nil {
		t.Fatal(err)
	}
	proc.Kill()
	if err := dorisCrashLoad(ctx, dsn, nextTx(t, conn), 5, time.Minute, &committed); err != nil {
		t.Fatal(err)
	}
	proc.Start(t)
	testenv.CheckFor(t, 2*time.Minute, 2*time.Second, check)
	t.Logf("equal after the last kill (%s): %s", time.Since(start).Round(time.Second), summary)
}

const dorisCrashSchema = `
	CREATE TABLE every_type (
		id bigint PRIMARY KEY,
		i2 smallint, i4 integer, i8 bigint, n12 numeric(12,2), num numeric,
		f4 real, f8 double precision, b boolean,
		txt text, vc varchar(20), ch char(3), bin bytea,
		d date, ts timestamp(3), tstz timestamptz, tm time, ttz timetz, iv interval,
		u uuid, js json, jb jsonb, ints int[], texts text[], ip inet, pt point, m money);
	-- Doris tables are written whole: an update that leaves a TOASTed
	-- text as it is needs the old row (the guide requires FULL too).
	ALTER TABLE every_type REPLICA IDENTITY FULL;
	CREATE TABLE kv (id int PRIMARY KEY, v text, n int);
	INSERT INTO kv SELECT g, 'v' || g, 0 FROM generate_series(1, 20000) g;
	CREATE TABLE events (id int PRIMARY KEY, v text);
	INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 5000) g;
	CREATE TABLE log (k int, v text);
	ALTER TABLE log REPLICA IDENTITY FULL;
	INSERT INTO log SELECT g % 500, 'x' || (g % 7) FROM generate_series(1, 5000) g`

// dorisCrashAudit counts every row change of events and log, with the
// load transaction that made it (crash.tx, which each one sets).
const dorisCrashAudit = `
	CREATE SCHEMA audit;
	CREATE TABLE audit.changes (tbl text, op text, tx int);
	CREATE FUNCTION audit.count() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO audit.changes VALUES (TG_TABLE_NAME, TG_OP, NULLIF(current_setting('crash.tx', true), '')::int);
		RETURN NULL;
	END $$;
	CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION audit.count();
	CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON log FOR EACH ROW EXECUTE FUNCTION audit.count()`

// Markers: transaction i inserts events (eventsMarker+i) and log
// (logMarker+i, 'm'); no statement touches them later.
const (
	eventsMarker = 1000000
	logMarker    = 100000
)

// dorisCrashLoad writes txs transactions numbered from first on (or for
// duration), each setting crash.tx to its number: the markers; on kv an
// insert, an update, a delete and now and then a key change; on events an
// insert, an update and a delete; on log an insert of a row that often
// exists already, and an update and a delete of one of several equal
// rows; on every_type now and then a new value of every column, an
// update of one integer (a row with a TOASTed text keeps it), an insert
// and a delete.
func dorisCrashLoad(ctx context.Context, dsn string, first, txs int, duration time.Duration, committed *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewSource(int64(11 + first)))
	for i := first; i < first+txs; i++ {
		if ctx.Err() != nil {
			return nil // the time bound
		}
		var b strings.Builder
		fmt.Fprintf(&b, `BEGIN; SET LOCAL crash.tx = '%d';
			INSERT INTO events VALUES (%d, 'm%d');
			INSERT INTO log VALUES (%d, 'm');
			INSERT INTO kv VALUES (%d, 'new', 0);
			UPDATE kv SET v = v || '+', n = n + 1 WHERE id = %d;
			DELETE FROM kv WHERE id = %d;
			INSERT INTO events VALUES (%d, 'i%d');
			UPDATE events SET v = 'u%d' WHERE id = %d;
			DELETE FROM events WHERE id = %d;
			INSERT INTO log VALUES (%d, 'x%d');
			UPDATE log SET v = v || 'u' WHERE ctid = (SELECT ctid FROM log WHERE k = %d LIMIT 1);
			DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE k = %d LIMIT 1);
`,
			i, eventsMarker+i, i, logMarker+i,
			100000+i, 1+rng.Intn(20000), 1+rng.Intn(20000),
			200000+i, i, i, eventsID(rng, i), eventsID(rng, i),
			rng.Intn(500), rng.Intn(7), rng.Intn(500), rng.Intn(500))
		if i%10 == 0 {
			fmt.Fprintf(&b, "UPDATE kv SET id = %d WHERE id = %d;\n", 300000+i, 1+rng.Intn(20000))
		}
		if i%3 == 0 {
			fmt.Fprintf(&b, "UPDATE every_type SET (%s) = (%s) WHERE id = %d;\n",
				strings.Join(everyTypeNames(), ", "), strings.Join(everyTypeValues(rng, i), ", "), 1+rng.Intn(2000))
		}
		if i%7 == 0 {
			// Rows 100, 200, ... hold a large text: it stays TOASTed.
			fmt.Fprintf(&b, "UPDATE every_type SET i4 = coalesce(i4, 0) / 2 + %d WHERE id = %d;\n", i, 100*(1+rng.Intn(20)))
		}
		if i%10 == 5 {
			fmt.Fprintf(&b, "INSERT INTO every_type VALUES (%d, %s);\n", 10000+i, strings.Join(everyTypeValues(rng, i), ", "))
		}
		if i%13 == 0 {
			fmt.Fprintf(&b, "DELETE FROM every_type WHERE id = %d;\n", 1+rng.Intn(2000))
		}
		b.WriteString("COMMIT")
		// Several statements in one Exec run in one round trip.
		if _, err := conn.Exec(ctx, b.String()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("transaction %d: %w", i, err)
		}
		committed.Store(int64(i))
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// eventsID is a key of events to update or delete: a seeded row or one
// the load inserted.
func eventsID(rng *rand.Rand, i int) int {
	if rng.Intn(2) == 0 {
		return 1 + rng.Intn(5000)
	}
	return 200000 + 1 + rng.Intn(i)
}

// everyTypeCol is a column of every_type and how to make its values
// (PostgreSQL input text, quoted and cast by everyTypeValues).
type everyTypeCol struct {
	name, typ string
	gen       func(r *rand.Rand) string
}

func pick(r *rand.Rand, vs ...string) string { return vs[r.Intn(len(vs))] }

func signed(r *rand.Rand) string { return pick(r, "", "-") }

var everyTypeCols = []everyTypeCol{
	{"i2", "smallint", func(r *rand.Rand) string {
		return pick(r, "-32768", "32767", "0", strconv.Itoa(r.Intn(65536)-32768))
	}},
	{"i4", "integer", func(r *rand.Rand) string {
		return pick(r, "-2147483648", "2147483647", strconv.Itoa(int(r.Int31())-int(r.Int31())))
	}},
	{"i8", "bigint", func(r *rand.Rand) string {
		return pick(r, "-9223372036854775808", "9223372036854775807", "9007199254740993", strconv.FormatInt(r.Int63()-r.Int63(), 10))
	}},
	{"n12", "numeric(12,2)", func(r *rand.Rand) string {
		return pick(r, "9999999999.99", "-0.01", "0.00", fmt.Sprintf("%s%d.%02d", signed(r), r.Int63n(1e10), r.Intn(100)))
	}},
	{"num", "numeric", func(r *rand.Rand) string {
		return pick(r, "123456789012345678901234567890.000000000000000000001", "NaN", "-0.000001", "5.10",
			fmt.Sprintf("%s%d.%d", signed(r), r.Int63(), r.Int63()))
	}},
	// Floats: no NaN, infinities or -0 (the emulator's MariaDB DOUBLE
	// holds none), and magnitudes both print without an exponent.
	{"f4", "real", func(r *rand.Rand) string {
		return pick(r, "3.14", "-2.5", "0", "0.001", fmt.Sprintf("%s%d.%d", signed(r), r.Intn(100000), r.Intn(100)))
	}},
	{"f8", "double precision", func(r *rand.Rand) string {
		return pick(r, "0.1", "-123456.789", "1", fmt.Sprintf("%s%d.%06d", signed(r), r.Intn(1e8), r.Intn(1e6)))
	}},
	{"b", "boolean", func(r *rand.Rand) string { return pick(r, "t", "f") }},
	{"txt", "text", func(r *rand.Rand) string {
		return pick(r, "tab\there\nline two\r\\back\\slash \"double\" 'single' \\N ünïcødé 日本語 🙂", "", " ",
			"NULL", `\N`, "a,b;c|d", randText(r, 1+r.Intn(300)))
	}},
	{"vc", "varchar(20)", func(r *rand.Rand) string {
		return pick(r, "ÄÖÜ ß-vc", "", "trailing  ", "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂", randText(r, r.Intn(21)))
	}},
	{"ch", "char(3)", func(r *rand.Rand) string { return pick(r, "ab", "é", "xyz", "", "a'\\") }},
	{"bin", "bytea", func(r *rand.Rand) string {
		b := make([]byte, r.Intn(40))
		r.Read(b)
		return pick(r, `\x`, `\x00ff5c0a22`, fmt.Sprintf(`\x%x`, b))
	}},
	{"d", "date", func(r *rand.Rand) string {
		return pick(r, "2024-02-29", "0001-01-01", "9999-12-30", "infinity", "-infinity",
			time.Date(1900+r.Intn(200), 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.Intn(366)).Format("2006-01-02"))
	}},
	// infinity loads as 9999-12-31 23:59:59.999 here (the column's
	// precision), so no finite value is that instant.
	{"ts", "timestamp(3)", func(r *rand.Rand) string {
		return pick(r, "2024-05-01 10:00:00.5", "-infinity", "infinity", "1970-01-01 00:00:00", "9999-12-31 23:59:59.998",
			randTime(r).Format("2006-01-02 15:04:05.000"))
	}},
	{"tstz", "timestamptz", func(r *rand.Rand) string {
		return pick(r, "2024-05-01 15:30:00.123456+05:30", "infinity", "2000-01-01 00:00:00-08",
			randTime(r).Format("2006-01-02 15:04:05.999999")+pick(r, "+00", "+05:30", "-08", "+14", "-03:30"))
	}},
	{"tm", "time", func(r *rand.Rand) string {
		return pick(r, "23:59:59.999999", "00:00:00", "24:00:00", randTime(r).Format("15:04:05.999999"))
	}},
	{"ttz", "timetz", func(r *rand.Rand) string {
		return pick(r, "10:00:00+05:30", "23:59:59-08", randTime(r).Format("15:04:05.999")+pick(r, "+00", "-11", "+09:30"))
	}},
	{"iv", "interval", func(r *rand.Rand) string {
		return pick(r, "1 year 2 mons 3 days 04:05:06.789", "-00:00:01", "0",
			fmt.Sprintf("%s%d years %d mons %s%d days %02d:%02d:%02d.%03d", signed(r), r.Intn(100), r.Intn(12), signed(r), r.Intn(40), r.Intn(24), r.Intn(60), r.Intn(60), r.Intn(1000)))
	}},
	{"u", "uuid", func(r *rand.Rand) string {
		b := make([]byte, 16)
		r.Read(b)
		return pick(r, "00000000-0000-0000-0000-000000000000", fmt.Sprintf("%x-%x-%x-%x-%x", b[:4], b[4:6], b[6:8], b[8:10], b[10:]))
	}},
	// json keeps its spelling in PostgreSQL, its meaning in Doris: the
	// documents are written compact, as Doris prints them.
	{"js", "json", func(r *rand.Rand) string {
		return pick(r, `{"a":1}`, `[]`, `{}`, `{"s":"q\"uote\\back\tslash é"}`, `[1,"two",{"three":3,"n":null}]`,
			fmt.Sprintf(`{"z":%d,"a":[%d,true,false],"m":{"k":"v%d"}}`, r.Intn(1000)-500, r.Intn(100), r.Intn(100)))
	}},
	{"jb", "jsonb", func(r *rand.Rand) string {
		return pick(r, `{"a": "x", "b": [1, 2.50, null], "nested": {"k": true}}`, `{}`, `[]`, `"str"`, `12`,
			fmt.Sprintf(`{"long key": %d, "k": [%d, "ü\n"], "x": {"y": null}}`, r.Intn(1000)-500, r.Intn(100)))
	}},
	{"ints", "int[]", func(r *rand.Rand) string {
		return pick(r, "{1,NULL,-3}", "{}", fmt.Sprintf("{%d,%d}", r.Int31(), -r.Int31()))
	}},
	{"texts", "text[]", func(r *rand.Rand) string {
		return pick(r, `{"a b",NULL,"q\"uote","back\\slash","NULL","",é,"c,d"}`, `{}`, `{x}`)
	}},
	{"ip", "inet", func(r *rand.Rand) string {
		return pick(r, "192.168.0.1/24", "::1", "2001:db8::/32", fmt.Sprintf("10.%d.%d.%d", r.Intn(256), r.Intn(256), r.Intn(256)))
	}},
	{"pt", "point", func(r *rand.Rand) string {
		return pick(r, "(1.5,-2)", "(0,0)", fmt.Sprintf("(%d.%d,%s%d)", r.Intn(1000), r.Intn(10), signed(r), r.Intn(1000)))
	}},
	{"m", "money", func(r *rand.Rand) string {
		return pick(r, "1234.56", "-0.01", "0", fmt.Sprintf("%s%d.%02d", signed(r), r.Intn(1e7), r.Intn(100)))
	}},
}

func everyTypeNames() []string {
	var out []string
	for _, c := range everyTypeCols {
		out = append(out, c.name)
	}
	return out
}

// everyTypeValues is a row's values but its key, as SQL literals: about
// one in twelve NULL, and every hundredth row a text of some 100 kB that
// does not compress below TOAST's threshold.
func everyTypeValues(r *rand.Rand, id int) []string {
	var out []string
	for _, c := range everyTypeCols {
		v := c.gen(r)
		if c.name == "txt" && id%100 == 0 {
			v = randText(r, 100000)
		}
		if r.Intn(12) == 0 && !(c.name == "txt" && id%100 == 0) {
			out = append(out, "NULL")
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(v, "'", "''")+"'::"+c.typ)
	}
	return out
}

var textRunes = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\\\"'éü日本🙂,;{}")

func randText(r *rand.Rand, n int) string {
	out := make([]rune, n)
	for i := range out {
		out[i] = textRunes[r.Intn(len(textRunes))]
	}
	return string(out)
}

func randTime(r *rand.Rand) time.Time {
	return time.Date(1970+r.Intn(130), time.Month(1+r.Intn(12)), 1+r.Intn(28), r.Intn(24), r.Intn(60), r.Intn(60), r.Intn(1e6)*1000, time.UTC)
}

// nextTx is the number of the next load transaction: one after the
// last the audit saw (a transaction cut off by a load's time bound may
// have committed).
func nextTx(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT coalesce(max(tx), 0) + 1 FROM audit.changes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// logPhase logs the task's phase and full-sync progress.
func logPhase(t *testing.T, c *coordinator.Client, name string) {
	t.Helper()
	st, err := c.GetTask(context.Background(), name)
	if err != nil {
		t.Logf("task %s: %v", name, err)
		return
	}
	t.Logf("task %s: phase %s, state %s, %d of %d rows copied, %d of %d tables", name, st.Phase, st.State,
		st.Full.RowsDone, st.Full.RowsEstimated, st.Full.TablesDone, st.Full.TablesTotal)
}

// waitLoads waits, bounded, until the emulator has taken n loads.
func waitLoads(t *testing.T, e *emu.Emulator, n int64, total time.Duration) {
	t.Helper()
	deadline := time.Now().Add(total)
	for e.Stats().Loads < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("emulator: %+v", e.Stats())
}

// dorisCrashCheck compares the destination with the source, all tables.
func dorisCrashCheck(t *testing.T, read *pgx.Conn, srv doristest.Server, pre map[string]int64, start time.Time, summary *string) error {
	t.Helper()
	for _, tbl := range []string{"kv", "every_type", "events"} {
		cols := sourceColumns(t, read, tbl)
		if err := compareKeyed(sourceTextRows(t, read, tbl, cols), srv.ReadTable(t, tbl, cols), "id", cols); err != nil {
			return fmt.Errorf("%s: %w", tbl, err)
		}
	}
	cols := sourceColumns(t, read, "log")
	if err := compareMultiset(sourceTextRows(t, read, "log", cols), srv.ReadTable(t, "log", cols)); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	events, err := changelogCheck(t, read, srv, "events", "id", eventsMarker, 1, pre["events"], start)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	log, err := changelogCheck(t, read, srv, "log", "k", logMarker, 2, pre["log"], start)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	*summary = "events " + events + "; log " + log
	return nil
}

// changelogCheck checks a Duplicate table's change rows against the
// audit of the source. markerCol > marker are the load's markers; an
// UPDATE is written as perUpdate rows (2: the old row deleted, then the
// new one).
func changelogCheck(t *testing.T, read *pgx.Conn, srv doristest.Server, table, markerCol string, marker, perUpdate, pre int64, start time.Time) (summary string, err error) {
	t.Helper()
	q := func(stmt string) ([][]*string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, rows, err := doris.Query(ctx, srv.URL, srv.User, srv.Password, srv.DB, stmt)
		return rows, err
	}
	// (a) No change written twice, none lost: ids 1..n, each once.
	rows, err := q("SELECT COUNT(*), COUNT(DISTINCT `_record_id`), MIN(`_record_id`), MAX(`_record_id`), " +
		"SUM(`_is_deleted`), MIN(`_version`), MAX(`_version`) FROM `" + table + "` WHERE `_record_id` > 0")
	if err != nil {
		return "", err
	}
	r := ints(rows[0])
	count, distinct, minID, maxID, deleted, minVer, maxVer := r[0], r[1], r[2], r[3], r[4], r[5], r[6]
	if count != distinct || count > 0 && (minID != 1 || maxID != count) {
		return "", fmt.Errorf("change rows: %d, %d distinct _record_id from %d to %d (want 1..%d, each once)", count, distinct, minID, maxID, count)
	}
	// (c) _version: the commit second, within the test's time.
	if count > 0 && (minVer < start.Unix()-1 || maxVer > time.Now().Unix()+1) {
		return "", fmt.Errorf("change rows: _version from %d to %d, the test ran from %d to %d", minVer, maxVer, start.Unix(), time.Now().Unix())
	}
	rows, err = q("SELECT COUNT(*), SUM(`_is_deleted`), SUM(CASE WHEN `_version` <> 0 THEN 1 ELSE 0 END) FROM `" + table + "` WHERE `_record_id` = 0")
	if err != nil {
		return "", err
	}
	r = ints(rows[0])
	fullRows, fullDeleted, fullVersioned := r[0], r[1], r[2]
	if fullDeleted != 0 || fullVersioned != 0 {
		return "", fmt.Errorf("full-sync rows: %d with _is_deleted, %d with a _version", fullDeleted, fullVersioned)
	}
	rows, err = q("SELECT COUNT(*) FROM `" + table + "` WHERE `_record_id` < 0 OR `_record_id` IS NULL OR `_version` IS NULL OR `_is_deleted` IS NULL")
	if err != nil {
		return "", err
	}
	if n := ints(rows[0])[0]; n != 0 {
		return "", fmt.Errorf("%d rows with a negative or NULL change column", n)
	}

	// The snapshot: the markers in the full sync are those of the
	// transactions up to one (boundary), the later ones are changes, in
	// the order of their transactions; each marker once, all there.
	rows, err = q(fmt.Sprintf("SELECT `%s`, `_record_id` FROM `%s` WHERE `%s` > %d", markerCol, table, markerCol, marker))
	if err != nil {
		return "", err
	}
	type mark struct{ tx, rec int64 }
	var marks []mark
	for _, row := range rows {
		v := ints(row)
		marks = append(marks, mark{v[0] - marker, v[1]})
	}
	slices.SortFunc(marks, func(a, b mark) int { return int(a.tx - b.tx) })
	var srcMarks []int64
	srows, err := read.Query(context.Background(), fmt.Sprintf("SELECT %s - %d FROM %s WHERE %s > %d ORDER BY 1", markerCol, marker, table, markerCol, marker))
	if err != nil {
		t.Fatal(err)
	}
	for srows.Next() {
		var v int64
		if err := srows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		srcMarks = append(srcMarks, v)
	}
	if srows.Err() != nil {
		t.Fatal(srows.Err())
	}
	if len(marks) != len(srcMarks) {
		return "", fmt.Errorf("%d markers, the source has %d", len(marks), len(srcMarks))
	}
	var boundary, lastRec int64
	for i, m := range marks {
		if m.tx != srcMarks[i] {
			return "", fmt.Errorf("marker of transaction %d where the source has %d (doubled or lost)", m.tx, srcMarks[i])
		}
		switch {
		case m.rec == 0 && lastRec == 0:
			boundary = m.tx
		case m.rec == 0:
			return "", fmt.Errorf("marker of transaction %d in the full sync, after transaction %d's as a change", m.tx, boundary+1)
		case m.rec <= lastRec:
			return "", fmt.Errorf("marker of transaction %d has _record_id %d, not after %d", m.tx, m.rec, lastRec)
		default:
			lastRec = m.rec
		}
	}

	// (b), (c) The changes the audit counted after the boundary, by
	// operation, are the change rows; those up to it are in the full sync.
	var before, after = map[string]int64{}, map[string]int64{}
	var untagged int64
	arows, err := read.Query(context.Background(), `SELECT op, count(*) FILTER (WHERE tx <= $2), count(*) FILTER (WHERE tx > $2), count(*) FILTER (WHERE tx IS NULL)
		FROM audit.changes WHERE tbl = $1 GROUP BY op`, table, boundary)
	if err != nil {
		t.Fatal(err)
	}
	for arows.Next() {
		var op string
		var b, a, u int64
		if err := arows.Scan(&op, &b, &a, &u); err != nil {
			t.Fatal(err)
		}
		before[op], after[op], untagged = b, a, untagged+u
	}
	if arows.Err() != nil {
		t.Fatal(arows.Err())
	}
	if untagged != 0 {
		t.Fatalf("%d audit rows without a transaction number", untagged)
	}
	// The audit is complete: the rows now are those before it and its
	// inserts less its deletes.
	var now int64
	if err := read.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if net := before["INSERT"] + after["INSERT"] - before["DELETE"] - after["DELETE"]; pre+net != now {
		t.Fatalf("%d rows in the source, %d before the load and %d net inserts audited", now, pre, net)
	}
	wantChanges := after["INSERT"] + after["DELETE"] + perUpdate*after["UPDATE"]
	wantDeleted := after["DELETE"] + (perUpdate-1)*after["UPDATE"]
	wantFull := pre + before["INSERT"] - before["DELETE"]
	if count != wantChanges || deleted != wantDeleted {
		return "", fmt.Errorf("after transaction %d: %d change rows (%d deleted), the audit counted %d inserts, %d updates, %d deletes: want %d rows (%d deleted)",
			boundary, count, deleted, after["INSERT"], after["UPDATE"], after["DELETE"], wantChanges, wantDeleted)
	}
	if fullRows != wantFull {
		return "", fmt.Errorf("%d full-sync rows; %d rows before the load, then up to transaction %d %d inserts and %d deletes: want %d",
			fullRows, pre, boundary, before["INSERT"], before["DELETE"], wantFull)
	}
	return fmt.Sprintf("%d full-sync rows (transactions up to %d), %d change rows (%d deleted), %d transactions",
		fullRows, boundary, count, deleted, len(marks)), nil
}

// ints reads a row of integers (NULL as 0; SUM may print a decimal).
func ints(row []*string) []int64 {
	out := make([]int64, len(row))
	for i, v := range row {
		if v == nil {
			continue
		}
		n, err := strconv.ParseInt(*v, 10, 64)
		if err != nil {
			f, _ := strconv.ParseFloat(*v, 64)
			n = int64(f)
		}
		out[i] = n
	}
	return out
}

// sourceColumns are a table's columns with their types and primary key,
// as ReadTable takes them.
func sourceColumns(t *testing.T, conn *pgx.Conn, table string) []proto.Column {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT a.attname, a.atttypid::int8, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
		FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []proto.Column
	for rows.Next() {
		var c proto.Column
		var oid int64
		if err := rows.Scan(&c.Name, &oid, &c.Key); err != nil {
			t.Fatal(err)
		}
		c.TypeOID = uint32(oid)
		cols = append(cols, c)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return cols
}

// sourceTextRows reads a table in PostgreSQL's text output (a char(n)
// keeps its padding, which a cast to text would take off).
func sourceTextRows(t *testing.T, conn *pgx.Conn, table string, cols []proto.Column) []sinktest.Row {
	t.Helper()
	var names []string
	for _, c := range cols {
		names = append(names, pgx.Identifier{c.Name}.Sanitize())
	}
	rows, err := conn.Query(context.Background(), "SELECT "+strings.Join(names, ", ")+" FROM "+pgx.Identifier{table}.Sanitize(),
		pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatal(err)
	}
	var out []sinktest.Row
	for rows.Next() {
		row := sinktest.Row{}
		for i, v := range rows.RawValues() {
			if v == nil {
				row[cols[i].Name] = sinktest.Null
			} else {
				row[cols[i].Name] = string(v)
			}
		}
		out = append(out, row)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return out
}

// compareKeyed compares rows by key, value for value; a difference is
// reported per column, with its count and an example.
func compareKeyed(src, dst []sinktest.Row, key string, cols []proto.Column) error {
	byKey := map[string]sinktest.Row{}
	for _, r := range dst {
		if _, dup := byKey[r[key]]; dup {
			return fmt.Errorf("key %s twice at the destination", r[key])
		}
		byKey[r[key]] = r
	}
	var missing, extra []string
	diffs := map[string][]string{}
	for _, s := range src {
		d, ok := byKey[s[key]]
		if !ok {
			missing = append(missing, s[key])
			continue
		}
		delete(byKey, s[key])
		for _, c := range cols {
			if sv, dv := s[c.Name], d[c.Name]; !sameValue(c.TypeOID, sv, dv) {
				diffs[c.Name] = append(diffs[c.Name], fmt.Sprintf("key %s: source %q, destination %q", s[key], short(sv), short(dv)))
			}
		}
	}
	for k := range byKey {
		extra = append(extra, k)
	}
	if len(missing)+len(extra)+len(diffs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d rows, %d at the destination", len(src), len(dst))
	if len(missing) > 0 {
		msg += fmt.Sprintf("; %d keys missing, e.g. %v", len(missing), missing[:min(len(missing), 5)])
	}
	if len(extra) > 0 {
		msg += fmt.Sprintf("; %d keys only at the destination, e.g. %v", len(extra), extra[:min(len(extra), 5)])
	}
	for _, c := range cols {
		if d := diffs[c.Name]; len(d) > 0 {
			slices.Sort(d)
			msg += fmt.Sprintf("\n  column %s: %d rows differ, e.g. %s", c.Name, len(d), d[0])
		}
	}
	return errors.New(msg)
}

// sameValue compares a value of the source with the destination's in
// PostgreSQL's text form (doristest.ReadTable respells Doris's values,
// floats included).
func sameValue(_ uint32, src, dst string) bool { return src == dst }

// compareMultiset compares rows as a multiset (a table without a key).
func compareMultiset(src, dst []sinktest.Row) error {
	enc := func(r sinktest.Row) string {
		names := make([]string, 0, len(r))
		for n := range r {
			names = append(names, n)
		}
		slices.Sort(names)
		var b strings.Builder
		for _, n := range names {
			b.WriteString(n + "=" + r[n] + " ")
		}
		return b.String()
	}
	counts := map[string]int{}
	for _, r := range src {
		counts[enc(r)]++
	}
	for _, r := range dst {
		counts[enc(r)]--
	}
	var diffs []string
	for row, n := range counts {
		if n != 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %+d in the source", row, n))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("%d rows, %d at the destination; %d differences, e.g.:\n  %s", len(src), len(dst), len(diffs), strings.Join(diffs[:min(len(diffs), 8)], "\n  "))
	}
	return nil
}

func short(s string) string {
	if len(s) > 120 {
		return s[:60] + fmt.Sprintf("…(%d bytes)…", len(s)) + s[len(s)-40:]
	}
	return s
}
