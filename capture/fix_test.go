package capture

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The fixer sets REPLICA IDENTITY FULL; on a table another session holds
// it gives up after its bounded tries and leaves the table as it was;
// an error other than a lock timeout is not retried; and once the lock
// is gone it runs.
func TestIdentityFixer(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ctx := context.Background()
	conn := testenv.Conn(t, pg.DSN(testenv.DefaultDB))
	testenv.MustExec(t, conn, `CREATE TABLE free (v text); CREATE TABLE held (v text); CREATE TABLE "Odd name" (v text)`)
	holder := testenv.Conn(t, pg.DSN(testenv.DefaultDB))
	testenv.MustExec(t, holder, `BEGIN; SELECT count(*) FROM held`)
	f := IdentityFixer{LockTimeout: 100 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond}
	fixes := f.Fix(ctx, conn, []string{"public.free", "public.held", `public."Odd name"`, "public.missing"})
	if len(fixes) != 4 {
		t.Fatalf("fixes: %+v", fixes)
	}
	if fixes[0].Err != nil || fixes[0].Statement != "ALTER TABLE public.free REPLICA IDENTITY FULL" || fixes[2].Err != nil {
		t.Fatalf("free tables: %+v %+v", fixes[0], fixes[2])
	}
	if fixes[1].Err == nil || !strings.Contains(fixes[1].Err.Error(), "lock timeout") || !strings.Contains(fixes[1].Err.Error(), "2 attempts") {
		t.Fatalf("held table: %v", fixes[1].Err)
	}
	if fixes[3].Err == nil || !strings.Contains(fixes[3].Err.Error(), "does not exist") {
		t.Fatalf("missing table: %v", fixes[3].Err)
	}
	want := map[string]byte{"free": proto.IdentityFull, "held": proto.IdentityDefault, "Odd name": proto.IdentityFull}
	for table, ident := range want {
		var got byte
		if err := conn.QueryRow(ctx, `SELECT relreplident FROM pg_class WHERE relname = $1`, table).Scan(&got); err != nil || got != ident {
			t.Fatalf("%s: identity %c, want %c (%v)", table, got, ident, err)
		}
	}
	// The fixer's own session keeps its lock_timeout (SET LOCAL).
	var lt string
	if err := conn.QueryRow(ctx, `SHOW lock_timeout`).Scan(&lt); err != nil || lt != "0" {
		t.Fatalf("lock_timeout after the fixes: %q %v", lt, err)
	}
	testenv.MustExec(t, holder, `ROLLBACK`)
	if fixes := f.Fix(ctx, conn, []string{"public.held"}); fixes[0].Err != nil {
		t.Fatalf("held table once released: %v", fixes[0].Err)
	}
}
