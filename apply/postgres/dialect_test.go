package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// A polardb-o DSN without a port connects to 1521; one with a port, or a
// port= parameter, keeps it; secrets in it are left as they are.
func TestWithDefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h/db":                         "postgres://u:p@h:1521/db",
		"postgres://u:p@h:5432/db":                    "postgres://u:p@h:5432/db",
		"postgres://u:p@h":                            "postgres://u:p@h:1521",
		"postgresql://u:p%40x@h?sslmode=disable":      "postgresql://u:p%40x@h:1521?sslmode=disable",
		"postgres://h1,h2:5433/db":                    "postgres://h1:1521,h2:5433/db",
		"postgres://u@[::1]/db":                       "postgres://u@[::1]:1521/db",
		"postgres://u@[::1]:7/db":                     "postgres://u@[::1]:7/db",
		"postgres://u:${env:PW}@h/db":                 "postgres://u:${env:PW}@h:1521/db",
		"postgres://u:${sealed:v1:a/b?c@d}@h.x/db":    "postgres://u:${sealed:v1:a/b?c@d}@h.x:1521/db",
		"postgres://u:p@h/db?port=5433":               "postgres://u:p@h/db?port=5433",
		"postgres:///db":                              "postgres:///db?port=1521",
		"postgres:///db?host=/tmp":                    "postgres:///db?host=/tmp&port=1521",
		"host=h user=u dbname=d":                      "host=h user=u dbname=d port=1521",
		"host=h port=5432 dbname=d":                   "host=h port=5432 dbname=d",
		"port=6000 host=h":                            "port=6000 host=h",
		"":                                            "",
		"postgres://u:p@pc-1.o.polardb.aliyuncs.com/": "postgres://u:p@pc-1.o.polardb.aliyuncs.com:1521/",
	} {
		if got := WithDefaultPort(in, PolarDBODefaultPort); got != want {
			t.Errorf("WithDefaultPort(%q) = %q, want %q", in, got, want)
		}
	}
	cfg := &PolarDBOConfig{DSN: "postgres://app@pc-1/wh", PasswordFile: "/etc/pw"}
	spec := &proto.TaskSpec{Destination: proto.NewDestination("polardb-o", cfg)}
	if got := configOf(spec); got.DSN != "postgres://app@pc-1:1521/wh" || got.PasswordFile != "/etc/pw" {
		t.Fatalf("the sink connects with %+v", got)
	}
	if got := PolarDBO.Endpoints(spec); len(got) != 1 || got[0] != "pc-1:1521" {
		t.Fatalf("endpoints %v, want pc-1:1521", got)
	}
}

// Greenplum's version decides the apply's statements.
func TestDetectServer(t *testing.T) {
	for _, c := range []struct {
		version string
		num     int
		want    server
	}{
		{"PostgreSQL 9.4.26 (Greenplum Database 6.25.3 build commit:1) on x86_64", 90426, server{version: 90426, greenplum: true}},
		{"PostgreSQL 9.4.24 (Greenplum Database 6.3.0 build dev) (AnalyticDB for PostgreSQL)", 90424, server{version: 90424, greenplum: true}},
		{"PostgreSQL 12.12 (Greenplum Database 7.1.0 build commit:1)", 120012, server{version: 120012, greenplum: true, onConflict: true}},
		{"PostgreSQL 15.8 on x86_64-pc-linux-gnu", 150008, server{version: 150008, onConflict: true}},
	} {
		if got := detectServer(c.version, c.num); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.version, got, c.want)
		}
	}
}

// Types AnalyticDB cannot hold are carried as text; the others kept.
func TestADBPGTypes(t *testing.T) {
	d6, d7 := adbpgFor(greenplum6), adbpgFor(greenplum7)
	for _, c := range []struct {
		col      proto.ColumnDef
		inDist   bool
		gp6, gp7 string
	}{
		{proto.ColumnDef{Type: "public.geometry(Point,4326)", TypeOID: 17000}, false, "text", "text"},
		{proto.ColumnDef{Type: "geography[]", TypeOID: 17001}, false, "text[]", "text[]"},
		{proto.ColumnDef{Type: "macaddr8", TypeOID: 774}, false, "text", "macaddr8"},
		{proto.ColumnDef{Type: "int4multirange", TypeOID: 4451}, false, "text", "text"},
		{proto.ColumnDef{Type: "jsonpath", TypeOID: 4072}, false, "text", "jsonpath"},
		{proto.ColumnDef{Type: "bit(5)", TypeOID: 1560}, false, "bit(5)", "bit(5)"},
		{proto.ColumnDef{Type: "bit(5)", TypeOID: 1560}, true, "text", "text"},
		{proto.ColumnDef{Type: "uuid", TypeOID: 2950}, true, "uuid", "uuid"},
		{proto.ColumnDef{Type: "tsvector", TypeOID: 3614}, false, "tsvector", "tsvector"},
		{proto.ColumnDef{Type: "txid_snapshot", TypeOID: 2970}, false, "txid_snapshot", "txid_snapshot"},
		{proto.ColumnDef{Type: "jsonb", TypeOID: 3802}, false, "jsonb", "jsonb"},
	} {
		if got, _ := d6.adbpgType(c.col, c.inDist); got != c.gp6 {
			t.Errorf("Greenplum 6: %s (distribution key %t) is %s, want %s", c.col.Type, c.inDist, got, c.gp6)
		}
		if got, _ := d7.adbpgType(c.col, c.inDist); got != c.gp7 {
			t.Errorf("Greenplum 7: %s (distribution key %t) is %s, want %s", c.col.Type, c.inDist, got, c.gp7)
		}
	}
}

// A distribution key outside a primary or unique key is refused, naming
// the field to set and what it could be.
func TestADBPGDistributionRefused(t *testing.T) {
	sc := readDialectSchema(t)
	tables := map[string]*proto.TableDef{}
	for i := range sc.Tables {
		tables[sc.Tables[i].ID.Name] = &sc.Tables[i]
	}
	check := func(d *Dialect, table, field, msg, fix string) {
		t.Helper()
		_, err := d.distribution(tables[table])
		var de *distError
		if !errors.As(err, &de) {
			t.Fatalf("%s: %v, want a refusal", table, err)
		}
		if de.Field != field || !strings.Contains(de.Msg, msg) || !strings.Contains(de.Fix, fix) {
			t.Fatalf("%s: field %q, message %q, fix %q; want %q, %q, %q", table, de.Field, de.Msg, de.Fix, field, msg, fix)
		}
	}
	d := adbpgDialectFor(&proto.TaskSpec{Objects: []proto.ObjectSpec{{Schema: "other"}, {Schema: "shop", Options: &ADBPGObjectOptions{
		DistributionKey: map[string][]string{"orders": {"customer_id"}, "tokens": {"nope"}, "customers": {"full_name"}}}}}})
	check(d, "Levels", `objects[1].distribution_key.Levels`, `its primary key Levels_pkey (level) of shop."Levels" is not inside its key Levels_number_key (number)`,
		`no column is in every key of shop."Levels"`)
	check(d, "orders", "objects[1].distribution_key.orders", "the distribution key (customer_id) of shop.orders is not inside its key orders_pkey (region, id)",
		"set objects[1].distribution_key.orders to columns that every key of shop.orders contains (orders_pkey (region, id)), such as [region, id]")
	check(d, "tokens", "objects[1].distribution_key.tokens", `shop.tokens has no column "nope"`, "such as [token]")
	check(d, "customers", "objects[1].distribution_key.customers", `"full_name" is a generated column`, "such as [id]")
	for _, ok := range []string{"codes", "events", "payments"} {
		if _, err := d.distribution(tables[ok]); err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
	}
	if _, err := d.schema(sc); err == nil || !strings.Contains(err.Error(), "objects[1].distribution_key.Levels") {
		t.Fatalf("schema sync of a schema with refused keys: %v", err)
	}
}

// Greenplum 6 lacks IF NOT EXISTS on indexes, sequences and ADD COLUMN:
// the statements become blocks that check first.
func TestGP6Statements(t *testing.T) {
	d6, d7 := adbpgFor(greenplum6), adbpgFor(greenplum7)
	for in, want := range map[string]string{
		`CREATE UNIQUE INDEX IF NOT EXISTS "a""b" ON "s"."t" USING btree (x)`: `DO $sluice0$BEGIN IF to_regclass($sluice$"s"."a""b"$sluice$) IS NULL THEN CREATE UNIQUE INDEX "a""b" ON "s"."t" USING btree (x); END IF; END$sluice0$`,
		`CREATE SEQUENCE IF NOT EXISTS "s"."q"`:                               `DO $sluice0$BEGIN IF to_regclass($sluice$"s"."q"$sluice$) IS NULL THEN CREATE SEQUENCE "s"."q"; END IF; END$sluice0$`,
		`CREATE SEQUENCE IF NOT EXISTS "s"."q" AS integer INCREMENT BY 2`:     `DO $sluice0$BEGIN IF to_regclass($sluice$"s"."q"$sluice$) IS NULL THEN CREATE SEQUENCE "s"."q" INCREMENT BY 2; END IF; END$sluice0$`,
		`ALTER TABLE "s"."t" ADD COLUMN IF NOT EXISTS "c" text`:               `ALTER TABLE "s"."t" ADD COLUMN "c" text`,
		`CREATE TABLE IF NOT EXISTS "s"."t" ("c" text)`:                       `CREATE TABLE IF NOT EXISTS "s"."t" ("c" text)`,
	} {
		if got := d6.statement(in); got != want {
			t.Errorf("Greenplum 6: %s\n got %s\nwant %s", in, got, want)
		}
		if got := d7.statement(in); got != in {
			t.Errorf("Greenplum 7 changed %s into %s", in, got)
		}
	}
}

// PolarDB-O: key and index columns quoted as the catalog spells them;
// expressions left as PostgreSQL printed them.
func TestQuoteFirstList(t *testing.T) {
	for in, want := range map[string]string{
		"PRIMARY KEY (level)":                     `PRIMARY KEY ("level")`,
		`UNIQUE (a, "B") INCLUDE (c)`:             `UNIQUE ("a", "B") INCLUDE (c)`,
		"UNIQUE NULLS NOT DISTINCT (number)":      `UNIQUE NULLS NOT DISTINCT ("number")`,
		"btree (a DESC NULLS LAST, lower(b))":     `btree ("a" DESC NULLS LAST, lower(b))`,
		"btree ((a + b), c text_pattern_ops)":     `btree ((a + b), "c" text_pattern_ops)`,
		"gin (doc) WHERE (level > 0)":             `gin ("doc") WHERE (level > 0)`,
		`btree ("Mixed" COLLATE "C") WHERE x = 1`: `btree ("Mixed" COLLATE "C") WHERE x = 1`,
	} {
		if got := quoteFirstList(in); got != want {
			t.Errorf("quoteFirstList(%q) = %q, want %q", in, got, want)
		}
	}
	tb := polarDBOTable(&proto.TableDef{ID: proto.TableID{Schema: "s", Name: "t"}, Constraints: []proto.ConstraintDef{
		{Name: "k", Kind: proto.ConstraintUnique, Def: "UNIQUE (a) INCLUDE (rownum)"},
	}})
	if got := tb.Constraints[0].Def; got != `UNIQUE ("a") INCLUDE ("rownum")` {
		t.Fatalf("INCLUDE list: %s", got)
	}
}

// The AnalyticDB guide's 5,000 tables plan: a task that names 5,000
// tables, renames some and chooses distribution keys for others
// validates, every table's distribution key is found inside its keys, and
// schema sync renders a CREATE TABLE with its distribution for each. (node
// TestManyTablesADBPG runs such a task.)
func TestADBPGFiveThousandTablesPlan(t *testing.T) {
	const n = 5000
	entry := proto.ObjectSpec{Schema: "public", Rename: map[string]string{}}
	opts := &ADBPGObjectOptions{DistributionKey: map[string][]string{}}
	sc := &proto.Schema{Schemas: []string{"public"}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		entry.Tables = append(entry.Tables, name)
		if i%10 == 0 {
			entry.Rename[name] = fmt.Sprintf("r%d", i)
		}
		if i%100 == 1 {
			opts.DistributionKey[name] = []string{"tenant"}
		}
		def := proto.TableDef{ID: proto.TableID{Schema: "public", Name: name}, PrimaryKey: []string{"tenant", "id"},
			Columns: []proto.ColumnDef{
				{Num: 1, Name: "tenant", Type: "integer", TypeOID: 23, NotNull: true},
				{Num: 2, Name: "id", Type: "bigint", TypeOID: 20, NotNull: true},
				{Num: 3, Name: "v", Type: "text", TypeOID: 25},
			},
			Constraints: []proto.ConstraintDef{{Name: name + "_pkey", Kind: proto.ConstraintPrimaryKey, Def: "PRIMARY KEY (tenant, id)", Columns: []int{1, 2}}},
		}
		if i%7 == 0 { // no key: distributed randomly
			def.PrimaryKey, def.Constraints = nil, nil
			delete(opts.DistributionKey, name)
		}
		sc.Tables = append(sc.Tables, def)
	}
	entry.Options = opts
	spec := &proto.TaskSpec{Name: "many", Destination: proto.NewDestination("adbpg", &ADBPGConfig{DSN: "postgres://app@gp/wh"}), Objects: []proto.ObjectSpec{entry}}
	var problems []string
	(&ADBPGConfig{DSN: "postgres://app@gp/wh"}).Validate(spec, func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	})
	if len(problems) > 0 {
		t.Fatalf("the spec is refused: %v", problems[:min(len(problems), 5)])
	}
	d := adbpgDialectFor(spec)
	d.srv = greenplum6
	checks := &proto.Checks{}
	(&prechecker{spec: spec, Checks: checks}).adbpgTables(d, &proto.SourceFacts{Defs: sc.Tables})
	r := checks.Report()
	if blocking := r.Judge(nil); len(blocking) > 0 {
		t.Fatalf("precheck: %+v", blocking[:min(len(blocking), 5)])
	}
	adapted, err := d.schema(sc)
	if err != nil {
		t.Fatal(err)
	}
	o := &SchemaOptions{Dialect: d, Flatten: func(proto.TableID) bool { return true }}
	var creates, byKey, chosen, random int
	for _, st := range preDataSteps(adapted, o) {
		if !strings.HasPrefix(st.SQL, "CREATE TABLE") {
			continue
		}
		creates++
		switch {
		case strings.HasSuffix(st.SQL, `DISTRIBUTED BY ("tenant", "id")`):
			byKey++
		case strings.HasSuffix(st.SQL, `DISTRIBUTED BY ("tenant")`):
			chosen++
		case strings.HasSuffix(st.SQL, "DISTRIBUTED RANDOMLY"):
			random++
		default:
			t.Fatalf("no distribution: %s", st.SQL)
		}
	}
	if creates != n || chosen != len(opts.DistributionKey) || random != n/7 || byKey+chosen+random != n {
		t.Fatalf("%d CREATE TABLE (%d by key, %d chosen, %d random), want %d (%d chosen, %d random)", creates, byKey, chosen, random, n, len(opts.DistributionKey), n/7)
	}
}

// sluice task plan shows each dialect's statements and, at AnalyticDB,
// each table's distribution (or why it is refused).
func TestDialectPlans(t *testing.T) {
	sc := readDialectSchema(t)
	planOf := func(typ string, cfg proto.DestinationConfig, opts proto.ObjectOptions, planner interface {
		Plan(*proto.TaskSpec, *proto.Schema, *proto.TaskPlan)
	}) *proto.TaskPlan {
		spec := &proto.TaskSpec{Name: "p", Destination: proto.NewDestination(typ, cfg), Objects: []proto.ObjectSpec{{Schema: "shop", Options: opts}}}
		plan := &proto.TaskPlan{}
		for _, tb := range sc.Tables {
			plan.Tables = append(plan.Tables, proto.PlannedTable{Source: tb.ID})
		}
		planner.Plan(spec, sc, plan)
		return plan
	}
	storage := func(p *proto.TaskPlan, table string) string {
		for _, tb := range p.Tables {
			if tb.Source.Name == table {
				return tb.Storage
			}
		}
		return ""
	}
	statement := func(p *proto.TaskPlan, what string) string {
		for _, st := range p.Statements {
			if st.What == what {
				return st.SQL
			}
		}
		return ""
	}
	adb := planOf("adbpg", &ADBPGConfig{}, &ADBPGObjectOptions{DistributionKey: map[string][]string{"orders": {"region"}}}, ADBPG.(interface {
		Plan(*proto.TaskSpec, *proto.Schema, *proto.TaskPlan)
	}))
	for table, want := range map[string]string{
		"orders":   "heap table, distributed by (region)",
		"events":   "heap table, distributed randomly",
		"payments": "heap table, distributed by (id, paid) (partitions flattened)",
		"Levels":   "refused: objects[0].distribution_key.Levels: ",
	} {
		if got := storage(adb, table); !strings.HasPrefix(got, want) {
			t.Errorf("adbpg plan: %s is %q, want %q", table, got, want)
		}
	}
	if got := statement(adb, "create table shop.orders"); !strings.HasSuffix(got, `WITH (appendonly=false) DISTRIBUTED BY ("region")`) || !strings.Contains(got, `"mac" text`) {
		t.Errorf("adbpg plan: create table shop.orders is\n%s", got)
	}
	polar := planOf("polardb-o", &PolarDBOConfig{}, &ObjectOptions{}, PolarDBO.(interface {
		Plan(*proto.TaskSpec, *proto.Schema, *proto.TaskPlan)
	}))
	if got := statement(polar, "create table shop.customers"); !strings.Contains(got, `"born" pg_catalog.date`) || !strings.Contains(got, `PRIMARY KEY ("id")`) {
		t.Errorf("polardb-o plan: create table shop.customers is\n%s", got)
	}
}
