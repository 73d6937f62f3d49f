package postgres_test

import (
	"context"
	"testing"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The sink contract's conformance suite, read back with SQL: values in
// PostgreSQL's text output, which is the suite's canonical form once
// the session prints timestamptz in UTC.
func TestConformance(t *testing.T) {
	sinktest.Run(t, conformanceDestination(t, testenv.NewPostgres(t), postgres.Options{}))
}

// conformanceDestination is the suite's view of a PostgreSQL database
// written by sinks opened with opts (their DSN set here).
func conformanceDestination(t *testing.T, pg *testenv.Postgres, opts postgres.Options) sinktest.Destination {
	ctx := context.Background()
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, `SET TimeZone = 'UTC'`)
	opts.DSN = pg.DSN("postgres")
	return sinktest.Destination{
		Capabilities: postgres.Destination.Capabilities(),
		Open: func(t *testing.T, _ string) sinktest.Sink {
			s, err := postgres.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(ctx) })
			return s
		},
		Create: func(t *testing.T, def *proto.TableDef) { testenv.MustExec(t, conn, postgrestest.CreateTableSQL(def)) },
		Read: func(t *testing.T, _ string, tb proto.TableID, cols []proto.Column) []sinktest.Row {
			return postgrestest.ReadTable(t, conn, tb, cols)
		},
		Exists: func(t *testing.T, _ string, tb proto.TableID) bool { return postgrestest.Exists(t, conn, tb) },
		Columns: func(t *testing.T, _ string, tb proto.TableID) []string {
			if !postgrestest.Exists(t, conn, tb) {
				return nil
			}
			return postgrestest.Columns(t, conn, tb)
		},
		SchemaColumns: true,
	}
}
