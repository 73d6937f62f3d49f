package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply"
	_ "github.com/sluicedb/sluice/apply/destinations" // the registry, for spec decoding
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/apply/postgres/postgrestest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

// The adbpg and polardb-o blocks decode strictly and their problems name
// their fields.
func TestDialectSpecValidation(t *testing.T) {
	for yaml, want := range map[string][]string{
		"destination: {type: adbpg, dsn: 'postgres://a@b/d', upsert: merge}\nobjects: [{schema: s, tables: [a], partitions: keep, distribution_key: {b: [x], a: [], c: [y, y, '']}}]\n": {
			`destination.upsert: unknown value "merge"`,
			"objects[0].partitions: AnalyticDB flattens a partitioned table",
			"objects[0].distribution_key.a: needs at least one column",
			"objects[0].distribution_key.b: b is not among objects[0].tables",
			`objects[0].distribution_key.c[1]: column "y" is named twice`,
			"objects[0].distribution_key.c[2]: a column name is empty",
		},
		"destination: {type: adbpg, dsn: 'postgres://a@b/d'}\nobjects: [{schema: s, refresh: never}]\n": {"objects[0].refresh: unknown field"},
		"destination: {type: adbpg}\nobjects: [{schema: s}]\n":                                          {"destination.dsn: is required"},
		"destination: {type: polardb-o, dsn: 'oracle://a@b/d'}\nobjects: [{schema: s, distribution_key: {t: [a]}}]\n": {
			"destination.dsn: must be a PostgreSQL URL", "objects[0].distribution_key: unknown field",
		},
		"destination: {type: adbpg, dsn: 'postgres://a@b/d'}\nobjects: [{schema: s}]\ntwo_way: {}\n":     {"two_way"},
		"destination: {type: polardb-o, dsn: 'postgres://a@b/d'}\nobjects: [{schema: s}]\ntwo_way: {}\n": {"two_way"},
	} {
		_, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://a@b/c'}\n" + yaml))
		if err == nil {
			t.Errorf("%s: accepted", yaml)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s:\n%v\nsays nothing of %q", yaml, err, w)
			}
		}
	}
	for _, ok := range []string{
		"destination: {type: adbpg, dsn: 'postgres://a@b:5432/d', upsert: delete_insert}\nobjects: [{schema: s, tables: [a, b], distribution_key: {a: [x, y]}, partitions: flatten}]\n",
		"destination: {type: polardb-o, dsn: 'postgres://a@pc-1/d'}\nobjects: [{schema: s, partitions: flatten, refresh: never}]\n",
	} {
		if _, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://a@b/c'}\n" + ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// The sink contract's conformance suite for AnalyticDB's apply on
// PostgreSQL 15, without INSERT ... ON CONFLICT (the Greenplum 6 path,
// forced): every upsert, position write and kept-table load takes the
// statements Greenplum 6 runs.
func TestConformanceADBPGWithoutOnConflict(t *testing.T) {
	t.Parallel()
	d := conformanceDestination(t, testenv.NewPostgres(t), postgres.Options{Dialect: postgres.ADBPGDialect(nil, true)})
	d.Capabilities = postgres.ADBPG.Capabilities()
	sinktest.Run(t, d)
}

// The same for PolarDB-O's apply on PostgreSQL 15 (its SQL is
// PostgreSQL's, with date cast as pg_catalog.date).
func TestConformancePolarDBO(t *testing.T) {
	t.Parallel()
	d := conformanceDestination(t, testenv.NewPostgres(t), postgres.Options{Dialect: postgres.PolarDBODialect()})
	d.Capabilities = postgres.PolarDBO.Capabilities()
	sinktest.Run(t, d)
}

// The registry opens each type's sink with its dialect: AnalyticDB's
// refuses a schema whose keys Greenplum cannot enforce, naming the
// field; PolarDB-O's connects to the DSN as given when it has a port.
func TestDialectDestinationsOpen(t *testing.T) {
	pg := testenv.NewPostgres(t)
	ctx := context.Background()
	for _, typ := range []string{"adbpg", "polardb-o"} {
		spec, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: " + typ + ", dsn: '" + pg.DSN("postgres") + "'}\nobjects: [{schema: s}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := apply.Open(ctx, spec, apply.Use{Kind: apply.UseTask})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		defer s.Close(ctx)
		sc := &proto.Schema{Schemas: []string{"s"}, Tables: []proto.TableDef{{
			ID: proto.TableID{Schema: "s", Name: typ},
			Columns: []proto.ColumnDef{
				{Num: 1, Name: "id", Type: "integer", TypeOID: 23, NotNull: true},
				{Num: 2, Name: "email", Type: "text", TypeOID: 25, NotNull: true},
			},
			PrimaryKey: []string{"id"},
			Constraints: []proto.ConstraintDef{
				{Name: "pk", Kind: proto.ConstraintPrimaryKey, Def: "PRIMARY KEY (id)", Columns: []int{1}},
				{Name: "email_key", Kind: proto.ConstraintUnique, Def: "UNIQUE (email)", Columns: []int{2}},
			},
		}}}
		err = s.ApplyPreData(ctx, sc)
		switch typ {
		case "adbpg":
			if err == nil || !strings.Contains(err.Error(), "objects[0].distribution_key.adbpg") {
				t.Fatalf("adbpg: schema sync of a unique key without the primary key's column: %v", err)
			}
		default:
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
		}
	}
}

// The adbpg and polardb-o prechecks against a PostgreSQL 15 destination:
// AnalyticDB's refuses keys Greenplum cannot enforce, warns of the
// foreign keys it does not create, and says what it maps and computes;
// PolarDB-O's says how dates are created and warns of names that differ
// only in case.
func TestDialectPrechecks(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	must(t, pg.Exec(ctx, "postgres", "CREATE DATABASE src"))
	src := testenv.Conn(t, pg.DSN("src"))
	testenv.MustExec(t, src, dialectSchema(t)+`; CREATE TABLE shop."ORDERS" (id int PRIMARY KEY)`)
	sc, err := capture.ReadSchema(ctx, src, []proto.ObjectSpec{{Schema: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	facts := &proto.SourceFacts{Defs: sc.Tables}
	for _, tb := range sc.Tables {
		facts.Tables = append(facts.Tables, tb.ID)
	}
	report := func(typ, keys string) map[string]proto.Problem {
		t.Helper()
		spec, err := proto.ParseTaskSpec([]byte("name: t\nsource: {dsn: 'postgres://a@b/c'}\ndestination: {type: " + typ + ", dsn: '" + pg.DSN("postgres") + "'}\nobjects: [{schema: shop" + keys + "}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		c := &proto.Checks{}
		apply.Precheck(ctx, spec, facts, c)
		out := map[string]proto.Problem{}
		for _, p := range c.Report().Checks {
			if prev, ok := out[p.Check]; ok && prev.Result != proto.ResultPass {
				p.Message = prev.Message + " | " + p.Message
			}
			out[p.Check] = p
		}
		return out
	}
	want := func(got map[string]proto.Problem, check string, result proto.Result, parts ...string) {
		t.Helper()
		p, ok := got[check]
		if !ok || p.Result != result {
			t.Fatalf("%s: %+v, want %s", check, p, result)
		}
		for _, s := range parts {
			if !strings.Contains(p.Message+" "+p.Fix, s) {
				t.Fatalf("%s: %q says nothing of %q", check, p.Message+" fix: "+p.Fix, s)
			}
		}
	}
	adb := report("adbpg", ", distribution_key: {orders: [region]}")
	want(adb, "destination.server", proto.ResultPass, "not Greenplum", "INSERT ... ON CONFLICT")
	want(adb, "destination.storage", proto.ResultPass, "heap")
	want(adb, "destination.distribution_key", proto.ResultFailure, `objects[0].distribution_key.Levels`, `no column is in every key of shop."Levels"`)
	want(adb, "destination.no_foreign_keys", proto.ResultWarning, "orders_customer_id_fkey on shop.orders")
	want(adb, "destination.type_mapping", proto.ResultPass, "shop.codes.code bit(8) as text")
	want(adb, "destination.generated_columns", proto.ResultPass, "shop.customers.full_name")
	renamed := report("adbpg", ", tables: [customers], rename: {customers.last_name: surname}")
	want(renamed, "destination.generated_columns", proto.ResultFailure, `reads column "last_name", which the task renames to "surname"`)

	polar := report("polardb-o", "")
	want(polar, "destination.date_columns", proto.ResultPass, "shop.customers.born", "pg_catalog.date")
	want(polar, "destination.names", proto.ResultWarning, `shop."ORDERS" and shop.orders`)
	if p := polar["destination.distribution_key"]; p.Check != "" {
		t.Fatalf("polardb-o checks distribution keys: %+v", p)
	}
}

// dialectSchema is the dialects' golden schema (testdata/dialects).
func dialectSchema(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/dialects/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// PolarDB-O's working copy on PostgreSQL 15: the guide's objects (views,
// procedures, functions, rules, sequences, extensions, triggers,
// aggregates, indexes, operators, domains) created through the polardb-o
// dialect as at the source, twice over (a retried schema phase), with
// its date columns pg_catalog.date.
func TestPolarDBOWorkingCopy(t *testing.T) {
	ctx := context.Background()
	pg := testenv.NewPostgres(t)
	must(t, pg.Exec(ctx, "postgres", "CREATE DATABASE src"))
	src := testenv.Conn(t, pg.DSN("src"))
	testenv.MustExec(t, src, postgrestest.WorkingCopySchema+`; ALTER TABLE shop.film ADD COLUMN released date, ADD COLUMN shows date[]`)
	sc, err := capture.ReadSchema(ctx, src, []proto.ObjectSpec{{Schema: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, postgres.Options{DSN: pg.DSN("postgres"), Dialect: postgres.PolarDBODialect()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for round := 0; round < 2; round++ {
		must(t, s.ApplyPreData(ctx, sc))
		must(t, s.ApplyPostData(ctx, sc))
		must(t, s.SyncSequences(ctx, sc))
	}
	dst := testenv.Conn(t, pg.DSN("postgres"))
	if d := postgrestest.LineDiff(postgrestest.DescribeObjects(t, src, "shop"), postgrestest.DescribeObjects(t, dst, "shop")); d != "" {
		t.Fatalf("objects differ (- source only, + destination only):\n%s", d)
	}
	var dates int
	if err := dst.QueryRow(ctx, `SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'shop' AND c.relname = 'film' AND a.atttypid IN ('pg_catalog.date'::regtype, 'pg_catalog.date[]'::regtype)`).Scan(&dates); err != nil || dates != 2 {
		t.Fatalf("date columns at the destination: %d (%v)", dates, err)
	}
}
