package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The sink contract's conformance suite, read back with SQL.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	sinktest.Run(t, sinktest.Destination{
		Open: func(t *testing.T, _ string) sinktest.Sink {
			s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(ctx) })
			return s
		},
		Create: func(t *testing.T, tb proto.TableID, keyed bool) {
			ddl := fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v text)`, tb)
			if !keyed {
				ddl = fmt.Sprintf(`CREATE TABLE %[1]s (v text); ALTER TABLE %[1]s REPLICA IDENTITY FULL`, tb)
			}
			testenv.MustExec(t, conn, ddl)
		},
		Rows: func(t *testing.T, tb proto.TableID) []string {
			q := fmt.Sprintf(`SELECT coalesce(v, '<nil>') FROM %s`, tb)
			if keyed(t, conn, tb) {
				q = fmt.Sprintf(`SELECT id || '=' || coalesce(v, '<nil>') FROM %s`, tb)
			}
			rows, err := conn.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(out)
			return out
		},
	})
}

func keyed(t *testing.T, conn *pgx.Conn, tb proto.TableID) bool {
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = 'id'`,
		tb.Schema, tb.Name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}
