// Package verifytest holds what the tests of verification's ends share.
package verifytest

import (
	"context"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// SameRows checks that a destination's side read rows got exactly as
// the source's SQL computed them (want): each row by key (keyless: by
// hash), each value's canonical text, each hash and count. It names
// every difference, and stops after 30.
func SameRows(t testing.TB, what string, vt *proto.VerifyTable, want, got []proto.VerifyRow) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d rows, source %d", what, len(got), len(want))
	}
	ident := func(r proto.VerifyRow) string {
		if vt.Keyless() {
			return r.Hash
		}
		return pgverify.KeyString(r.Key)
	}
	gotBy := map[string]proto.VerifyRow{}
	for _, r := range got {
		gotBy[ident(r)] = r
	}
	str := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return strconv.Quote(*p)
	}
	bad := 0
	for _, w := range want {
		g, ok := gotBy[ident(w)]
		if !ok {
			t.Errorf("%s: row %q (values %v) not found", what, ident(w), w.Values)
			bad++
			continue
		}
		for i := range vt.Columns {
			if str(w.Values[i]) != str(g.Values[i]) {
				t.Errorf("%s: key %v column %s (%s): %s, source %s", what, w.Key, vt.Columns[i], vt.Types[i], str(g.Values[i]), str(w.Values[i]))
				bad++
			}
		}
		if g.Hash != w.Hash || g.Count != w.Count {
			t.Errorf("%s: key %v: hash %s x%d, source %s x%d", what, w.Key, g.Hash, g.Count, w.Hash, w.Count)
			bad++
		}
		if bad > 30 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

// Source starts a PostgreSQL, runs setup there (one statement string
// each, in order) and returns a pool on it: the source whose SQL the
// tests hold a destination's side against.
func Source(t testing.TB, setup ...string) *pgxpool.Pool {
	t.Helper()
	pg := testenv.NewPostgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN(testenv.DefaultDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, sql := range setup {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return pool
}
