package pgvalue

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
)

// The type table agrees with pg_type, pg_range and the type categories:
// names, element types, delimiters, widths, range subtypes.
func TestTypesAgainstCatalog(t *testing.T) {
	conn := connect(t)
	// Per OID: typname, typcategory, typtype, typlen, typelem, the
	// element's delimiter, the range's subtype, a multirange's range.
	rows := textRows(t, conn, `SELECT t.oid, t.typname, t.typcategory, t.typtype, t.typlen, t.typelem, coalesce(e.typdelim, ','),
		coalesce(r.rngsubtype, 0), coalesce(m.rngtypid, 0)
		FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
		LEFT JOIN pg_range r ON r.rngtypid = t.oid LEFT JOIN pg_range m ON m.rngmultitypid = t.oid`)
	catalog := map[uint32][][]byte{}
	for _, r := range rows {
		oid, _ := strconv.ParseUint(string(r[0]), 10, 32)
		catalog[uint32(oid)] = r
	}
	categories := map[Family]string{
		FamilyBool: "B", FamilyInt: "N", FamilyFloat: "N", FamilyNumeric: "N", FamilyText: "SZ", FamilyBytea: "U", FamilyDate: "D",
		FamilyTime: "D", FamilyTimetz: "D", FamilyTimestamp: "D", FamilyTimestamptz: "D", FamilyInterval: "T", FamilyUUID: "U",
		FamilyJSON: "U", FamilyArray: "A", FamilyRange: "R", FamilyMultirange: "R",
	}
	for oid, typ := range types {
		r, ok := catalog[oid]
		if !ok {
			t.Errorf("%d (%s) is not in pg_type", oid, typ.Name)
			continue
		}
		name, category, kind, size, elem, delim, subtype, rangeOf := string(r[1]), string(r[2]), string(r[3]), string(r[4]), string(r[5]), r[6][0], string(r[7]), string(r[8])
		if want := categories[typ.Family]; want != "" && !regexp.MustCompile("^["+want+"]$").MatchString(category) {
			t.Errorf("%s is of family %v, but of category %s", typ.Name, typ.Family, category)
		}
		switch typ.Family {
		case FamilyArray:
			e := types[typ.Elem]
			if name != "_"+e.Name || typ.Name != e.Name+"[]" || elem != strconv.Itoa(int(typ.Elem)) || typ.Delim != delim {
				t.Errorf("%s: element %d delimiter %q; pg_type says %s of %s, delimiter %q", typ.Name, typ.Elem, typ.Delim, name, elem, delim)
			}
		case FamilyRange:
			if name != typ.Name || subtype != strconv.Itoa(int(typ.Elem)) {
				t.Errorf("%s: subtype %d; pg_range says %s", typ.Name, typ.Elem, subtype)
			}
		case FamilyMultirange:
			if name != typ.Name || kind != "m" || rangeOf != strconv.Itoa(int(typ.Elem)) {
				t.Errorf("%s: range %d; pg_range says %s", typ.Name, typ.Elem, rangeOf)
			}
		case FamilyInt, FamilyFloat:
			if name != typ.Name || size != strconv.Itoa(typ.Size) {
				t.Errorf("%s: size %d; pg_type says %s", typ.Name, typ.Size, size)
			}
		default:
			if name != typ.Name {
				t.Errorf("%d: %s; pg_type says %s", oid, typ.Name, name)
			}
		}
		if typ.OID != oid {
			t.Errorf("%s listed under %d", typ.Name, oid)
		}
	}
	if _, ok := Lookup(16384); ok {
		t.Error("a user type's OID is known")
	}
	if typ, ok := Lookup(1700); !ok || typ.Family != FamilyNumeric {
		t.Errorf("numeric: %+v", typ)
	}
}

// TypeName shows the modifier format_type shows, after pg_type's name.
func TestTypeNameAgainstFormatType(t *testing.T) {
	conn := connect(t)
	testenv.MustExec(t, conn, `DROP TABLE IF EXISTS typed; DROP TYPE IF EXISTS typed_mood;
		CREATE TYPE typed_mood AS ENUM ('a');
		CREATE TEMP TABLE typed (
			a varchar(10), b varchar, c char(3), d char, e bpchar, f numeric(12,2), g numeric(5,-3), h numeric(3,5), i numeric(1000,500),
			j numeric, k numeric(7), l time(0), m timetz(6), n timestamp(3), o timestamptz(0), p timestamptz, q interval year to month,
			r interval day to second(3), s interval(2), t interval minute, u interval hour to minute, v interval, w bit(5), x varbit(10),
			y varbit, z int[], aa numeric(5,2)[], ab varchar(4)[][], ac text, ad typed_mood, ae typed_mood[], af interval second(0),
			ag "char", ah name, ai timestamp(6)[], aj interval year, ak interval day to hour, al bit)`)
	rows := textRows(t, conn, `SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
		coalesce(e.typname, ''), t.typname, t.typcategory = 'A', t.oid >= 16384
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
		WHERE a.attrelid = 'typed'::regclass AND a.attnum > 0 ORDER BY a.attnum`)
	modifier := regexp.MustCompile(`\([-0-9,]+\)`)
	fields := regexp.MustCompile(` (year|month|day|hour|minute|second)( to (month|hour|minute|second))?`)
	for _, r := range rows {
		oid, _ := strconv.ParseUint(string(r[1]), 10, 32)
		typmod, _ := strconv.ParseInt(string(r[2]), 10, 32)
		formatted := string(r[3])
		want := string(r[5])
		if string(r[6]) == "t" {
			want = string(r[4])
		}
		want += fields.FindString(formatted) + modifier.FindString(formatted)
		if string(r[6]) == "t" {
			want += "[]"
		}
		if string(r[7]) == "t" {
			want = "oid:" + string(r[1])
		}
		if got := TypeName(uint32(oid), int32(typmod)); got != want {
			t.Errorf("column %s (%s, typmod %d): %s, want %s", r[0], formatted, typmod, got, want)
		}
	}
	if got := TypeName(16385, -1); got != "oid:16385" {
		t.Errorf("a user type: %s", got)
	}
}

// NumericTypmod decodes the precision and scale format_type shows, the
// limits of PostgreSQL 15 included.
func TestNumericTypmodAgainstFormatType(t *testing.T) {
	conn := connect(t)
	decls := []string{"numeric(12,2)", "numeric(5,-3)", "numeric(3,5)", "numeric(1000,500)", "numeric(1000,-1000)", "numeric(1,1000)", "numeric(7,0)", "numeric"}
	cols := make([]string, len(decls))
	for i, d := range decls {
		cols[i] = "c" + strconv.Itoa(i) + " " + d
	}
	testenv.MustExec(t, conn, "DROP TABLE IF EXISTS numerics; CREATE TEMP TABLE numerics ("+strings.Join(cols, ", ")+")")
	rows := textRows(t, conn, "SELECT atttypmod, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'numerics'::regclass AND attnum > 0 ORDER BY attnum")
	for i, r := range rows {
		typmod, _ := strconv.Atoi(string(r[0]))
		p, s, ok := NumericTypmod(int32(typmod))
		got := "numeric"
		if ok {
			got += "(" + strconv.Itoa(p) + "," + strconv.Itoa(s) + ")"
		}
		if got != string(r[1]) || got != decls[i] {
			t.Errorf("%s: typmod %d decodes to %s; format_type says %s", decls[i], typmod, got, r[1])
		}
	}
}

// Every family and special value has a name for messages and logs.
func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for f := FamilyOther; f <= FamilyMultirange; f++ {
		if name := f.String(); seen[name] || strings.HasPrefix(name, "family(") {
			t.Errorf("family %d is named %q", f, name)
		} else {
			seen[name] = true
		}
	}
	for sp, want := range map[Special]string{Finite: "finite", NaN: "NaN", PosInfinity: "infinity", NegInfinity: "-infinity", 9: "special(9)"} {
		if sp.String() != want {
			t.Errorf("special %d is named %q, want %q", sp, sp.String(), want)
		}
	}
}
