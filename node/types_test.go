package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/sluicetest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/node"
	"github.com/sluicedb/sluice/proto"
)

// Every built-in type family survives full sync and incremental sync,
// value for value: the source's text form goes through unchanged.
const typesSchema = testenv.TypesSchema

// typesRows inserts rows with ids from $1 on: extreme, odd and NULL values.
const typesRows = testenv.TypesRows + `-- NULL everywhere, and a 10 MB value, random enough not to compress away
INSERT INTO types (id, big) VALUES ($1 + 2, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 327680) g));
INSERT INTO nokey_types VALUES ('{"k": 1}', '(1,2)', '<x/>', 'NaN', '{a,b}'), ('{"k": 1}', '(1,2)', '<x/>', 'NaN', '{a,b}'), (NULL, NULL, NULL, NULL, NULL);
`

func TestTypesRoundTrip(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	src := testenv.Conn(t, p.src.DSN(testenv.DefaultDB))
	testenv.MustExec(t, src, typesSchema)
	testenv.MustExec(t, src, "SET TIME ZONE 'America/New_York'; SET DateStyle = 'German'; "+replaceParam(typesRows, "1"))
	n := sluicetest.StartNode(t, node.Config{})
	c := n.Client()
	createTask(t, c, taskYAML("types", p, ""))
	waitPhase(t, c, "types", proto.PhaseIncremental, 2*time.Minute)
	tables := []string{"public.types", "public.nokey_types"}
	waitEqual(t, p, tables, time.Minute)

	// The same values again through the change stream, then updates that
	// leave the 10 MB value untouched (unchanged TOAST), and deletes of
	// keyless rows that have twins.
	testenv.MustExec(t, src, replaceParam(typesRows, "100"))
	testenv.MustExec(t, src, `UPDATE types SET n_int = n_int + 1 WHERE id IN (3, 102);
		UPDATE types SET id = id + 1000 WHERE id = 102;
		UPDATE types SET big = big || 'x' WHERE id = 1;
		DELETE FROM nokey_types WHERE ctid = (SELECT ctid FROM nokey_types WHERE j::text = '{"k": 1}' LIMIT 1);
		UPDATE nokey_types SET f = 1 WHERE ctid = (SELECT ctid FROM nokey_types WHERE f IS NULL LIMIT 1)`)
	waitEqual(t, p, tables, time.Minute)
	var size int
	dst := testenv.Conn(t, p.dst.DSN(testenv.DefaultDB))
	if err := dst.QueryRow(ctx, `SELECT length(big) FROM types WHERE id = 1102`).Scan(&size); err != nil || size != 327680*32 {
		t.Fatalf("10 MB value after key change: %d %v", size, err)
	}
}

func replaceParam(sql, v string) string { return strings.ReplaceAll(sql, "$1", v) }
