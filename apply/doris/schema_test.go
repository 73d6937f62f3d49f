package doris

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != got {
		t.Fatalf("%s differs:\n%s\nwant:\n%s", name, got, want)
	}
}

// everyType is a source table with a column of each type family.
func everyType(withKey bool) *proto.TableDef {
	def := &proto.TableDef{ID: proto.TableID{Schema: "shop", Name: "every_type"}, Columns: []proto.ColumnDef{
		{Name: "note", Type: "text", TypeOID: oidText},
		{Name: "id", Type: "bigint", TypeOID: oidInt8, NotNull: true},
		{Name: "i2", Type: "smallint", TypeOID: oidInt2},
		{Name: "i4", Type: "integer", TypeOID: oidInt4},
		{Name: "price", Type: "numeric(12,2)", TypeOID: oidNumeric},
		{Name: "wide", Type: "numeric(60,10)", TypeOID: oidNumeric},
		{Name: "free", Type: "numeric", TypeOID: oidNumeric},
		{Name: "f4", Type: "real", TypeOID: oidFloat4},
		{Name: "f8", Type: "double precision", TypeOID: oidFloat8},
		{Name: "cash", Type: "money", TypeOID: oidMoney},
		{Name: "code", Type: "character(3)", TypeOID: oidBpchar},
		{Name: "name", Type: "character varying(100)", TypeOID: oidVarchar},
		{Name: "huge", Type: "character varying(20000)", TypeOID: oidVarchar},
		{Name: "any", Type: "character varying", TypeOID: oidVarchar},
		{Name: "bin", Type: "bytea", TypeOID: oidBytea},
		{Name: "ts", Type: "timestamp(3) without time zone", TypeOID: oidTimestamp},
		{Name: "tstz", Type: "timestamp with time zone", TypeOID: oidTimestamptz},
		{Name: "d", Type: "date", TypeOID: oidDate},
		{Name: "t", Type: "time without time zone", TypeOID: oidTime},
		{Name: "ttz", Type: "time with time zone", TypeOID: oidTimetz},
		{Name: "iv", Type: "interval", TypeOID: oidInterval},
		{Name: "ok", Type: "boolean", TypeOID: oidBool},
		{Name: "pt", Type: "point", TypeOID: 600},
		{Name: "addr", Type: "inet", TypeOID: 869},
		{Name: "tsv", Type: "tsvector", TypeOID: 3614},
		{Name: "doc", Type: "xml", TypeOID: 142},
		{Name: "js", Type: "json", TypeOID: oidJSON},
		{Name: "jb", Type: "jsonb", TypeOID: oidJSONB},
		{Name: "u", Type: "uuid", TypeOID: oidUUID},
		{Name: "bits", Type: "bit varying(8)", TypeOID: 1562},
		{Name: "tags", Type: "text[]", TypeOID: 1009},
		{Name: "total", Type: "numeric", TypeOID: oidNumeric, Generated: "price * 2"},
	}}
	if withKey {
		def.PrimaryKey = []string{"id"}
	}
	return def
}

func render(t *testing.T, def *proto.TableDef, opts tableOptions, replicas int) string {
	t.Helper()
	ts, err := planTable(def, def.ID.Name, func(c string) string { return c }, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts.createSQL(replicas) + "\n"
}

// The DDL schema sync sends, per model: the guide's type mapping, key
// columns first, the Duplicate extra columns last.
func TestCreateTableGolden(t *testing.T) {
	golden(t, "create_unique.sql", render(t, everyType(true), tableOptions{buckets: 16}, 1))
	golden(t, "create_duplicate_keyed.sql", render(t, everyType(true), tableOptions{engine: EngineDuplicate}, 0))
	golden(t, "create_duplicate_keyless.sql", render(t, everyType(false), tableOptions{}, 3))
	composite := everyType(true)
	composite.PrimaryKey = []string{"name", "id"}
	golden(t, "create_unique_composite.sql", render(t, composite, tableOptions{distKey: []string{"id"}}, 0))
}

func TestPlanTableRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		def  *proto.TableDef
		opts tableOptions
		want string
	}{
		{"keyless unique", everyType(false), tableOptions{engine: EngineUnique}, "engine.every_type: duplicate"},
		{"distribution outside the key", everyType(true), tableOptions{distKey: []string{"name"}}, "not part of the unique key"},
		{"distribution of no column", everyType(true), tableOptions{engine: EngineDuplicate, distKey: []string{"nope"}}, "no column"},
	} {
		_, err := planTable(c.def, "x", func(s string) string { return s }, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestParseCreateTable(t *testing.T) {
	ddl := render(t, everyType(true), tableOptions{}, 1)
	info, err := parseCreateTable("every_type", ddl)
	if err != nil {
		t.Fatal(err)
	}
	if info.model != EngineUnique || strings.Join(info.keys, ",") != "id" || !info.hasSeq || !info.light {
		t.Fatalf("parsed %+v", info)
	}
	if info.types["price"] != "DECIMAL(12,2)" || info.types["tstz"] != "DATETIMEV2(6)" || info.cols[0] != "id" {
		t.Fatalf("types %v cols %v", info.types, info.cols)
	}
	dup, err := parseCreateTable("d", render(t, everyType(false), tableOptions{}, 0))
	if err != nil || dup.model != EngineDuplicate || !dup.extras {
		t.Fatalf("duplicate: %+v %v", dup, err)
	}
}

func TestConvertValues(t *testing.T) {
	for _, c := range []struct {
		k        valueKind
		in, want string
		null     bool
	}{
		{asBool, "t", "1", false},
		{asBool, "f", "0", false},
		{asDatetime, "2024-05-01 15:30:00.123456+05:30", "2024-05-01 10:00:00.123456", false},
		{asDatetime, "2024-05-01 10:00:00", "2024-05-01 10:00:00", false},
		{asDatetime, "infinity", "9999-12-31 23:59:59.999999", false},
		{asDatetime, "-infinity", "0000-01-01 00:00:00", false},
		{asDatetime, "0044-03-15 12:00:00 BC", "", true},
		{asDate, "2024-02-29", "2024-02-29", false},
		{asDate, "infinity", "9999-12-31", false},
		{asDecimal, "NaN", "", true},
		{asDecimal, "12.50", "12.50", false},
		{asText, "tab\there", "tab\there", false},
	} {
		out, null := convert(c.k, 6, []byte(c.in))
		if string(out) != c.want || null != c.null {
			t.Errorf("convert(%d, %q) = %q, %v; want %q, %v", c.k, c.in, out, null, c.want, c.null)
		}
	}
	if out, _ := convert(asDatetime, 3, []byte("infinity")); string(out) != "9999-12-31 23:59:59.999" {
		t.Errorf("infinity into DATETIMEV2(3): %s", out)
	}
	if out, _ := convert(asDatetime, 0, []byte("infinity")); string(out) != "9999-12-31 23:59:59" {
		t.Errorf("infinity into DATETIMEV2(0): %s", out)
	}
	if got := string(appendSequence(nil, proto.Position{LSN: 0x16B3748, Idx: 7})); got != "102236198923141127" {
		t.Errorf("sequence: %s", got)
	}
	if got := string(appendSequence(nil, proto.Position{LSN: 1 << 40, Idx: 1})); got != "4722366482869645213697" {
		t.Errorf("sequence of a large LSN: %s", got)
	}
}
