package node_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// sluice verify on a running PostgreSQL → Doris task (the emulator): a
// Unique table (items), a Duplicate one with a key (orders) and a keyless
// Duplicate one (logs) compare equal to the source while a workload
// updates the same keys over and over; damage done through Doris's SQL
// (a changed value, a deleted key, a key the source lacks, in each keyed
// model) is named by key; --repair is refused.
func TestVerifyDoris(t *testing.T) {
	src := testenv.NewPostgres(t)
	e := testenv.NewDoris(t)
	ctx := context.Background()
	srcDSN := src.DSN(testenv.DefaultDB)
	conn := testenv.Conn(t, srcDSN)
	testenv.MustExec(t, conn, verifiedItemsAndLogs+`
		CREATE TABLE orders (id int PRIMARY KEY, amount int, region text, at timestamp);
		INSERT INTO orders SELECT g, g * 10, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END, '2024-01-01 00:00:00'::timestamp + g * interval '1 hour'
			FROM generate_series(1, 60) g`)
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, []byte(fmt.Sprintf(`name: dv
source: { dsn: "%s" }
destination: { type: doris, url: "%s", user: root, database: dw, batch_interval: 1s }
objects:
  - schema: public
    engine: { orders: duplicate, logs: duplicate }
`, srcDSN, e.FEURL())))
	waitPhase(t, c, "dv", proto.PhaseIncremental, 3*time.Minute)

	// 1. While the same keys are updated over and over, verify reports
	// nothing.
	nothingUnderLoad(t, c, "dv", srcDSN, 3)

	// 2. Damage the tables through Doris's SQL. items (Unique): 107's
	// note changed (deleted and inserted again), 108 deleted, 9999
	// added. orders (Duplicate): a change row above every other, per
	// damage: 10's amount, 11 deleted, 9998 added.
	srv := doristest.Server{URL: e.FEURL(), User: "root", DB: "dw"}
	itemCols := "`id`, `n`, `ts`, `d`, `j`, `f`, `b`, `note`, `tags`, `ok`, `u`"
	_, rows := srv.Query(t, "SELECT "+itemCols+" FROM `items` WHERE `id` = 107")
	if len(rows) != 1 {
		t.Fatalf("items 107 at Doris: %d rows", len(rows))
	}
	lit := func(vals []*string) string {
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = "NULL"
			if v != nil {
				out[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(*v) + "'"
			}
		}
		return "(" + strings.Join(out, ", ") + ")"
	}
	changed := slices.Clone(rows[0])
	note := "damaged"
	changed[7] = &note
	srv.Exec(t, "DELETE FROM `items` WHERE `id` = 107")
	// A Unique table with a sequence column takes a row only with a
	// sequence value: one above every position the task wrote.
	seq := "999999999999999999999"
	insertItem := func(vals []*string) {
		srv.Exec(t, "INSERT INTO `items` ("+itemCols+", `__DORIS_SEQUENCE_COL__`) VALUES "+lit(append(vals, &seq)))
	}
	insertItem(changed)
	srv.Exec(t, "DELETE FROM `items` WHERE `id` = 108")
	extra := slices.Clone(rows[0])
	id := "9999"
	extra[0] = &id
	insertItem(extra)
	srv.Exec(t, "INSERT INTO `orders` (`id`, `amount`, `region`, `at`, `_is_deleted`, `_version`, `_record_id`) VALUES "+
		"(10, -1, 'eu', '2024-01-01 10:00:00', 0, 0, 900000001), "+
		"(11, 110, 'eu', '2024-01-01 11:00:00', 1, 0, 900000002), "+
		"(9998, 1, 'us', '2024-01-01 00:00:00', 0, 0, 900000003)")

	report, err := c.Verify(ctx, "dv", proto.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := verifyDiffs(report)
	want := []string{"public.items changed id=107 (note)", "public.items extra id=9999", "public.items missing id=108",
		"public.orders changed id=10 (amount)", "public.orders extra id=9998", "public.orders missing id=11"}
	if !slices.Equal(got, want) || report.Outcome() != 1 {
		t.Fatalf("differences (outcome %d):\n%s\nwant:\n%s", report.Outcome(), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// 3. Doris is not repaired: --repair says so.
	if _, err := c.Verify(ctx, "dv", proto.VerifyRequest{Repair: true}); err == nil || !strings.Contains(err.Error(), "cannot be repaired") {
		t.Fatalf("verify --repair of a doris task: %v", err)
	}
}
