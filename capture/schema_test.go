package capture

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
)

const schemaTestDDL = `
CREATE EXTENSION citext;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.posint AS integer NOT NULL CHECK (VALUE > 0);
CREATE TABLE public.customers (
	id int PRIMARY KEY,
	email citext UNIQUE
);
CREATE TABLE public.orders (
	id bigserial PRIMARY KEY,
	customer_id int REFERENCES public.customers (id),
	amount numeric(12,2) NOT NULL DEFAULT 0,
	code varchar(10) COLLATE "C",
	moods public.mood[],
	qty public.posint,
	ident int GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 5),
	doubled numeric GENERATED ALWAYS AS (amount * 2) STORED,
	created timestamp(3) with time zone DEFAULT now(),
	dropped_later int
);
ALTER TABLE public.orders DROP COLUMN dropped_later;
CREATE INDEX orders_created ON public.orders (created) WHERE amount > 0;
CREATE VIEW public.v AS SELECT 1 AS one;
INSERT INTO public.customers VALUES (1, 'a@example.com');
INSERT INTO public.orders (customer_id, amount, qty) VALUES (1, 10, 1), (1, 20, 2);

CREATE SCHEMA other;
CREATE TABLE other.t (x int);

CREATE SCHEMA parts;
CREATE TABLE parts.events (at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE parts.events_2024 PARTITION OF parts.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE UNLOGGED TABLE parts.cache (k int);
CREATE TABLE parts.fine (k int);

CREATE SCHEMA sluice;
CREATE TABLE sluice.heartbeat (task text PRIMARY KEY, at timestamptz);
`

func TestSchemaSelection(t *testing.T) {
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, schemaTestDDL)
	ctx := context.Background()

	ok := []struct {
		name    string
		objects []proto.ObjectSpec
		want    []string
	}{
		{"whole schema", []proto.ObjectSpec{{Schema: "public"}}, []string{"public.customers", "public.orders"}},
		{"listed tables, sorted", []proto.ObjectSpec{{Schema: "public", Tables: []string{"orders"}}, {Schema: "other"}},
			[]string{"other.t", "public.orders"}},
		{"a supported table next to unsupported ones", []proto.ObjectSpec{{Schema: "parts", Tables: []string{"fine"}}},
			[]string{"parts.fine"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := ListTables(ctx, conn, tc.objects)
			if err != nil {
				t.Fatal(err)
			}
			if got := tableNames(ids); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("tables = %v, want %v", got, tc.want)
			}
		})
	}

	bad := []struct {
		name        string
		objects     []proto.ObjectSpec
		missing     []string
		unsupported []string
	}{
		{"missing table", []proto.ObjectSpec{{Schema: "public", Tables: []string{"orders", "nope"}}},
			[]string{"table public.nope"}, nil},
		{"missing schema", []proto.ObjectSpec{{Schema: "nope"}, {Schema: "public"}},
			[]string{`schema "nope"`}, nil},
		{"reserved schema", []proto.ObjectSpec{{Schema: "sluice"}},
			nil, []string{`schema "sluice" (reserved for the system or Sluice)`}},
		// The partitioned table is selected (through its root), its
		// partition skipped; the unlogged table is refused.
		{"partitioned and unlogged", []proto.ObjectSpec{{Schema: "parts"}},
			nil, []string{"parts.cache (unlogged table)"}},
		{"partition listed by itself", []proto.ObjectSpec{{Schema: "parts", Tables: []string{"events_2024"}}},
			nil, []string{"parts.events_2024 (a partition of parts.events: select parts.events, partitions sync through their root)"}},
		{"view listed as a table", []proto.ObjectSpec{{Schema: "public", Tables: []string{"v"}}},
			nil, []string{"public.v (a view, not a table)"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			for _, read := range []func() error{
				func() error { _, err := ListTables(ctx, conn, tc.objects); return err },
				func() error { _, err := ReadSchema(ctx, conn, tc.objects); return err },
			} {
				err := read()
				var selErr *SelectionError
				if !errors.As(err, &selErr) {
					t.Fatalf("err = %v, want a *SelectionError", err)
				}
				if !reflect.DeepEqual(selErr.Missing, tc.missing) || !reflect.DeepEqual(selErr.Unsupported, tc.unsupported) {
					t.Fatalf("missing %q unsupported %q, want %q and %q", selErr.Missing, selErr.Unsupported, tc.missing, tc.unsupported)
				}
			}
		})
	}
}

func tableNames(ids []proto.TableID) []string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return names
}

func TestSchemaRead(t *testing.T) {
	pg := testenv.NewPostgres(t)
	conn := testenv.Conn(t, pg.DSN("postgres"))
	testenv.MustExec(t, conn, schemaTestDDL)
	ctx := context.Background()

	t.Run("columns types sequences", func(t *testing.T) {
		s, err := ReadSchema(ctx, conn, []proto.ObjectSpec{{Schema: "public"}})
		if err != nil {
			t.Fatal(err)
		}
		orders := findTable(t, s, "orders")
		checkColumns(t, orders, map[string]proto.ColumnDef{
			"id":     {Type: "bigint", NotNull: true, Default: "nextval('public.orders_id_seq'::regclass)"},
			"amount": {Type: "numeric(12,2)", NotNull: true, Default: "0"},
			"code":   {Type: "character varying(10)", Collation: `"C"`},
			"moods":  {Type: "public.mood[]"},
			"qty":    {Type: "public.posint"},
			"ident": {Type: "integer", NotNull: true, Identity: 'a',
				IdentityOptions: `SEQUENCE NAME "public"."orders_ident_seq" INCREMENT BY 5 MINVALUE 1 MAXVALUE 2147483647 START WITH 100 CACHE 1 NO CYCLE`},
			"doubled": {Type: "numeric", Generated: "(amount * (2)::numeric)", Uses: []int{3}},
			"created": {Type: "timestamp(3) with time zone", Default: "now()"},
		})
		if got := columnNames(orders); !reflect.DeepEqual(got, []string{"id", "customer_id", "amount", "code", "moods", "qty", "ident", "doubled", "created"}) {
			t.Errorf("columns = %v", got)
		}
		if !reflect.DeepEqual(orders.PrimaryKey, []string{"id"}) || orders.ReplicaIdentity != 'd' {
			t.Errorf("pk %v replica identity %q", orders.PrimaryKey, orders.ReplicaIdentity)
		}
		// The model: each definition as PostgreSQL prints it, with the
		// columns it uses by number and a fingerprint.
		type cons struct {
			name string
			kind proto.Char
			def  string
			cols []int
			ref  *proto.Reference
		}
		var gotCons []cons
		for _, c := range orders.Constraints {
			if c.Fingerprint == "" || !c.Validated {
				t.Errorf("constraint %s: fingerprint %q validated %v", c.Name, c.Fingerprint, c.Validated)
			}
			gotCons = append(gotCons, cons{c.Name, c.Kind, c.Def, c.Columns, c.References})
		}
		wantCons := []cons{
			{"orders_pkey", 'p', "PRIMARY KEY (id)", []int{1}, nil},
			{"orders_customer_id_fkey", 'f', "FOREIGN KEY (customer_id) REFERENCES public.customers(id)", []int{2},
				&proto.Reference{From: []string{"customer_id"}, Table: proto.TableID{Schema: "public", Name: "customers"}, Columns: []string{"id"}}},
		}
		if !reflect.DeepEqual(gotCons, wantCons) {
			t.Errorf("constraints =\n%+v\nwant\n%+v", gotCons, wantCons)
		}
		if len(orders.Indexes) != 1 || orders.Indexes[0].Name != "orders_created" || orders.Indexes[0].Unique ||
			orders.Indexes[0].Def != "btree (created) WHERE (amount > (0)::numeric)" || !reflect.DeepEqual(orders.Indexes[0].Columns, []int{3, 9}) ||
			orders.Indexes[0].Fingerprint == "" {
			t.Errorf("indexes = %+v", orders.Indexes)
		}
		if orders.EstimatedBytes <= 0 {
			t.Errorf("estimated bytes = %d", orders.EstimatedBytes)
		}
		if got := typeNames(s); !reflect.DeepEqual(got, []string{
			"enum public.mood: CREATE TYPE \"public\".\"mood\" AS ENUM ('sad', 'ok', 'happy')",
			"domain public.posint: CREATE DOMAIN \"public\".\"posint\" AS integer NOT NULL CONSTRAINT \"posint_check\" CHECK ((VALUE > 0))",
		}) {
			t.Errorf("types = %q", got)
		}
		if !reflect.DeepEqual(s.Extensions, []string{"citext"}) || !reflect.DeepEqual(s.Schemas, []string{"public"}) ||
			!reflect.DeepEqual(s.ExtensionSchemas, map[string]string{"citext": "public"}) {
			t.Errorf("extensions %v in %v, schemas %v", s.Extensions, s.ExtensionSchemas, s.Schemas)
		}
		want := []proto.SequenceDef{
			{Schema: "public", Name: "orders_id_seq", OwnedBy: `"public"."orders"."id"`, LastValue: 2, IsCalled: true,
				DDL: `CREATE SEQUENCE IF NOT EXISTS "public"."orders_id_seq" AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE`},
			{Schema: "public", Name: "orders_ident_seq", OwnedBy: `"public"."orders"."ident"`, LastValue: 105, IsCalled: true},
		}
		if !reflect.DeepEqual(s.Sequences, want) {
			t.Errorf("sequences =\n%+v\nwant\n%+v", s.Sequences, want)
		}
	})

	t.Run("foreign keys only to selected tables", func(t *testing.T) {
		s, err := ReadSchema(ctx, conn, []proto.ObjectSpec{{Schema: "public", Tables: []string{"orders"}}})
		if err != nil {
			t.Fatal(err)
		}
		// The key stays in the model: the destination leaves out keys to
		// tables it does not have (apply/postgres ApplyPostData).
		if cs := findTable(t, s, "orders").Constraints; len(cs) != 2 || cs[1].References == nil {
			t.Fatalf("constraints = %+v", cs)
		}
	})

	t.Run("inside the caller's transaction", func(t *testing.T) {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = other, public"); err != nil {
			t.Fatal(err)
		}
		s, err := ReadSchema(ctx, tx, []proto.ObjectSpec{{Schema: "public", Tables: []string{"orders"}}})
		if err != nil {
			t.Fatal(err)
		}
		// Names are qualified although public is on the caller's path.
		if got := findColumn(t, findTable(t, s, "orders"), "moods").Type; got != "public.mood[]" {
			t.Errorf("moods type = %q", got)
		}
		// A failing read leaves the transaction usable too.
		if _, err := ReadSchema(ctx, tx, []proto.ObjectSpec{{Schema: "nope"}}); err == nil {
			t.Fatal("want an error for a missing schema")
		}
		var path string
		if err := tx.QueryRow(ctx, "SHOW search_path").Scan(&path); err != nil {
			t.Fatal(err)
		}
		if path != "other, public" {
			t.Fatalf("search_path after ReadSchema = %q, want the caller's", path)
		}
	})

	t.Run("unsupported types", func(t *testing.T) {
		testenv.MustExec(t, conn, `
			CREATE SCHEMA rowtype;
			CREATE TABLE rowtype.inner_t (a int);
			CREATE TABLE rowtype.outer_t (r rowtype.inner_t)`)
		_, err := ReadSchema(ctx, conn, []proto.ObjectSpec{{Schema: "rowtype", Tables: []string{"outer_t"}}})
		if err == nil || !strings.Contains(err.Error(), "row type of a table") {
			t.Fatalf("err = %v, want row type not supported", err)
		}
		testenv.MustExec(t, conn, `
			CREATE FUNCTION rowtype.diff(float8, float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS 'SELECT $1 - $2';
			CREATE TYPE rowtype.myrange AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = rowtype.diff);
			CREATE TABLE rowtype.ranged (r rowtype.myrange)`)
		_, err = ReadSchema(ctx, conn, []proto.ObjectSpec{{Schema: "rowtype", Tables: []string{"ranged"}}})
		if err == nil || !strings.Contains(err.Error(), "rowtype.diff") || !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("err = %v, want user subtype_diff not supported", err)
		}
	})
}

func findTable(t *testing.T, s *proto.Schema, name string) *proto.TableDef {
	t.Helper()
	for i := range s.Tables {
		if s.Tables[i].ID.Name == name {
			return &s.Tables[i]
		}
	}
	t.Fatalf("table %s not in schema", name)
	return nil
}

func findColumn(t *testing.T, td *proto.TableDef, name string) proto.ColumnDef {
	t.Helper()
	for _, c := range td.Columns {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("column %s not in %s", name, td.ID)
	return proto.ColumnDef{}
}

func checkColumns(t *testing.T, td *proto.TableDef, want map[string]proto.ColumnDef) {
	t.Helper()
	for name, w := range want {
		got := findColumn(t, td, name)
		w.Name, w.TypeOID, w.Num = name, got.TypeOID, got.Num
		if !reflect.DeepEqual(got, w) {
			t.Errorf("column %s =\n%+v\nwant\n%+v", name, got, w)
		}
	}
}

func columnNames(td *proto.TableDef) []string {
	var names []string
	for _, c := range td.Columns {
		names = append(names, c.Name)
	}
	return names
}

func typeNames(s *proto.Schema) []string {
	var out []string
	for _, ty := range s.Types {
		out = append(out, fmt.Sprintf("%s %s.%s: %s", ty.Kind, ty.Schema, ty.Name, ty.DDL))
	}
	return out
}
