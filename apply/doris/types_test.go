package doris_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/doris/doristest"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/proto"
)

// typeCase is a column of a type family and a value in PostgreSQL's text
// output (as capture delivers it) with what a reader of Doris reads back
// through doristest (the documented mapping), when that differs.
type typeCase struct {
	name, typ string
	oid       uint32
	in, want  string
}

// The type families the conformance suite's TypeFamilies case covers,
// less the two spellings Doris does not keep (a json document's spacing,
// float NaN/infinities/-0 in the emulator): each lands in its Doris type
// and reads back with its meaning.
var dorisFamilies = []typeCase{
	{"i2", "smallint", 21, "-32768", ""},
	{"i4", "integer", 23, "2147483647", ""},
	{"i8", "bigint", 20, "-9223372036854775808", ""},
	{"num", "numeric", 1700, "123456789012345678901234567890.000000000000000000001", ""},
	{"nan", "numeric", 1700, "NaN", ""},
	{"price", "numeric(12,2)", 1700, "1234567890.12", ""},
	{"price_nan", "numeric(12,2)", 1700, "NaN", sinktest.Null},
	{"f4", "real", 700, "3.14", ""},
	{"f8", "double precision", 701, "1e+100", ""},
	{"ok", "boolean", 16, "t", ""},
	{"txt", "text", 25, "tab\there\nline two\r\\back\\slash \"double\" 'single' \\N ünïcødé 日本語 🙂", ""},
	{"empty", "text", 25, "", ""},
	{"vc", "character varying(8)", 1043, "ÄÖÜ ß-vc", ""},
	{"bin", "bytea", 17, `\x00ff5c0a22`, ""},
	{"d", "date", 1082, "2024-02-29", ""},
	{"dinf", "date", 1082, "infinity", ""},
	{"dbc", "date", 1082, "0044-03-15 BC", sinktest.Null},
	{"tm", "time without time zone", 1083, "23:59:59.999999", ""},
	{"ttz", "time with time zone", 1266, "10:00:00+05:30", ""},
	{"ts", "timestamp without time zone", 1114, "2024-05-01 10:00:00.5", ""},
	{"tsninf", "timestamp without time zone", 1114, "-infinity", ""},
	{"tstz", "timestamp with time zone", 1184, "2024-05-01 15:30:00.123456+05:30", "2024-05-01 10:00:00.123456+00"},
	{"iv", "interval", 1186, "1 year 2 mons 3 days 04:05:06.789", ""},
	{"u", "uuid", 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"js", "json", 114, `{"b":[1,2.50],"a":"x\ty\"z\\"}`, ""},
	{"jb", "jsonb", 3802, `{"a": "x", "b": [1, 2.50, null], "nested": {"k": true}}`, ""},
	{"ints", "integer[]", 1007, "{1,NULL,-3}", ""},
	{"texts", "text[]", 1009, `{"a b",NULL,"q\"uote","back\\slash","NULL","",é,"c,d"}`, ""},
	{"r", "int4range", 3904, "[1,5)", ""},
	{"addr", "inet", 869, "192.168.0.1/24", ""},
	{"pt", "point", 600, "(1.5,-2)", ""},
	{"cash", "money", 790, "$1,234.56", ""},
}

// Every family into a Unique and a Duplicate table, by full sync and by
// changes, read back with its meaning.
func TestTypeFamiliesDoris(t *testing.T) {
	ctx := context.Background()
	srv := server(t, "types")
	s := openSink(t, srv, "types")
	for _, engine := range []string{doris.EngineUnique, doris.EngineDuplicate} {
		t.Run(engine, func(t *testing.T) {
			def := proto.TableDef{ID: proto.TableID{Schema: "public", Name: "fam_" + engine}, PrimaryKey: []string{"id"}}
			cols := []proto.Column{{Name: "id", TypeOID: 23, Key: true}}
			def.Columns = append(def.Columns, proto.ColumnDef{Name: "id", Type: "integer", TypeOID: 23, NotNull: true})
			for _, f := range dorisFamilies {
				def.Columns = append(def.Columns, proto.ColumnDef{Name: f.name, Type: f.typ, TypeOID: f.oid})
				cols = append(cols, proto.Column{Name: f.name, TypeOID: f.oid})
			}
			spec := &proto.TaskSpec{Name: "types"}
			sink := s
			if engine == doris.EngineDuplicate {
				spec.Objects = []proto.ObjectSpec{{Schema: "public", Options: &doris.ObjectOptions{Engine: map[string]string{def.ID.Name: doris.EngineDuplicate}}}}
				sink = openSinkSpec(t, srv, spec)
			}
			if err := sink.ApplyPreData(ctx, &proto.Schema{Tables: []proto.TableDef{def}}); err != nil {
				t.Fatal(err)
			}
			row := func(id int) (proto.Tuple, sinktest.Row) {
				var tp proto.Tuple
				want := sinktest.Row{"id": fmt.Sprint(id)}
				tp.Kinds, tp.Values = append(tp.Kinds, proto.KindText), append(tp.Values, []byte(fmt.Sprint(id)))
				for _, f := range dorisFamilies {
					tp.Kinds, tp.Values = append(tp.Kinds, proto.KindText), append(tp.Values, []byte(f.in))
					want[f.name] = f.in
					if f.want != "" {
						want[f.name] = f.want
					}
				}
				return tp, want
			}
			tp1, want1 := row(1)
			tp2, want2 := row(2)
			nulls := proto.Tuple{Kinds: []byte{proto.KindText}, Values: [][]byte{[]byte("3")}}
			want3 := sinktest.Row{"id": "3"}
			for _, f := range dorisFamilies {
				nulls.Kinds, nulls.Values = append(nulls.Kinds, proto.KindNull), append(nulls.Values, nil)
				want3[f.name] = sinktest.Null
			}
			ch := &apply.Changes{Task: "types", Epoch: 1, Positions: map[string]proto.Position{def.ID.Key(): {LSN: 100, Idx: 2}},
				Tables: map[string]proto.TableID{def.ID.Key(): def.ID},
				Segments: []*apply.Segment{{Table: def.ID, Columns: cols, Identity: proto.IdentityDefault, Rows: []proto.Row{
					{Op: proto.OpInsert, Pos: proto.Position{LSN: 100}, New: tp1},
					{Op: proto.OpInsert, Pos: proto.Position{LSN: 100, Idx: 1}, New: tp2},
					{Op: proto.OpInsert, Pos: proto.Position{LSN: 100, Idx: 2}, New: nulls},
				}}}}
			if err := sink.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}
			got := srv.ReadTable(t, def.ID.Name, cols)
			slices.SortFunc(got, func(a, b sinktest.Row) int { return cmpStr(a["id"], b["id"]) })
			for i, want := range []sinktest.Row{want1, want2, want3} {
				if i >= len(got) {
					t.Fatalf("%d rows read back, want 3", len(got))
				}
				for k, v := range want {
					if got[i][k] != v {
						t.Errorf("row %s column %s: %q, want %q", want["id"], k, got[i][k], v)
					}
				}
			}
		})
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func openSinkSpec(t *testing.T, srv doristest.Server, spec *proto.TaskSpec) *doris.Sink {
	t.Helper()
	ctx := context.Background()
	s, err := doris.Open(ctx, doris.Options{Task: spec.Name, Spec: spec, Config: doris.Config{URL: srv.URL, User: srv.User, Password: srv.Password, Database: srv.DB}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(ctx) })
	return s
}
