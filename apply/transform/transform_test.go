package transform_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/apply/transform"
	"github.com/sluicedb/sluice/internal/testenv"
	"github.com/sluicedb/sluice/proto"
	_ "github.com/sluicedb/sluice/proto/prototest" // the test destination type
)

func spec(t *testing.T, dsn string) *proto.TaskSpec {
	t.Helper()
	s, err := proto.ParseTaskSpec([]byte(`name: tr
source: { dsn: "` + dsn + `" }
destination: { type: test, dsn: "postgres://a@127.0.0.1/b" }
objects:
  - schema: public
    transform: { t: { email: "upper(email)" } }
    add_columns: { t: { doc_len: "length(doc)", tag: "'x' || t.id" } }
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func text(vals ...string) proto.Tuple {
	var tup proto.Tuple
	for _, v := range vals {
		switch v {
		case "<null>":
			tup.Kinds, tup.Values = append(tup.Kinds, proto.KindNull), append(tup.Values, nil)
		case "<toast>":
			tup.Kinds, tup.Values = append(tup.Kinds, proto.KindToast), append(tup.Values, nil)
		default:
			tup.Kinds, tup.Values = append(tup.Kinds, proto.KindText), append(tup.Values, []byte(v))
		}
	}
	return tup
}

func show(tup proto.Tuple) string {
	out := make([]string, tup.Len())
	for i, k := range tup.Kinds {
		switch k {
		case proto.KindNull:
			out[i] = "<null>"
		case proto.KindToast:
			out[i] = "<toast>"
		default:
			out[i] = string(tup.Values[i])
		}
	}
	return strings.Join(out, ",")
}

// A batch's transforms, computed by the source: replaced and added
// columns with their result types, an unchanged TOAST value read from the
// live row by key (or taken from a full old image), a delete's key image
// widened with NULLs, and a whole old image (REPLICA IDENTITY FULL)
// computed like the new one.
func TestBatch(t *testing.T) {
	pg := testenv.NewPostgres(t)
	dsn := pg.DSN(testenv.DefaultDB)
	conn := testenv.Conn(t, dsn)
	testenv.MustExec(t, conn, `CREATE TABLE t (id int PRIMARY KEY, email text, doc text); INSERT INTO t VALUES (2, 'b@x', 'live doc')`)
	tr := transform.New(dsn, spec(t, dsn))
	defer tr.Close()
	ctx := context.Background()
	cols := []proto.Column{{Name: "id", TypeOID: 23, TypeMod: -1, Key: true}, {Name: "email", TypeOID: 25, TypeMod: -1}, {Name: "doc", TypeOID: 25, TypeMod: -1}}
	b := &proto.Batch{Table: proto.TableID{Schema: "public", Name: "t"}, Columns: cols, ReplicaIdentity: proto.IdentityDefault, Rows: []proto.Row{
		{Op: proto.OpInsert, New: text("1", "a@x", "abc")},
		{Op: proto.OpUpdate, New: text("2", "b@y", "<toast>")},
		{Op: proto.OpInsert, New: text("3", "<null>", "<null>")},
		{Op: proto.OpDelete, Old: text("4", "<null>", "<null>")},
	}}
	if err := tr.Batch(ctx, b); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range b.Columns {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "id,email,doc,doc_len,tag" || b.Columns[3].TypeOID != 23 || b.Columns[4].TypeOID != 25 {
		t.Fatalf("columns %s: %+v", got, b.Columns)
	}
	for i, want := range []string{"1,A@X,abc,3,x1", "2,B@Y,<toast>,8,x2", "3,<null>,<null>,<null>,x3", ""} {
		if got := show(b.Rows[i].New); got != want {
			t.Errorf("row %d: %s, want %s", i, got, want)
		}
	}
	if got := show(b.Rows[3].Old); got != "4,<null>,<null>,<null>,<null>" {
		t.Errorf("delete's key image: %s", got)
	}

	// REPLICA IDENTITY FULL: the old image is computed too, and an
	// unchanged value comes from it.
	full := &proto.Batch{Table: b.Table, Columns: cols, ReplicaIdentity: proto.IdentityFull, Rows: []proto.Row{
		{Op: proto.OpUpdate, Old: text("5", "e@x", "old doc"), New: text("5", "f@x", "<toast>")},
		{Op: proto.OpDelete, Old: text("6", "g@x", "gone")},
	}}
	if err := tr.Batch(ctx, full); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{show(full.Rows[0].Old), "5,E@X,old doc,7,x5"},
		{show(full.Rows[0].New), "5,F@X,<toast>,7,x5"},
		{show(full.Rows[1].Old), "6,G@X,gone,4,x6"},
	} {
		if c.got != c.want {
			t.Errorf("identity full: %s, want %s", c.got, c.want)
		}
	}

	// A batch whose rows lack a transformed column names the transform.
	short := &proto.Batch{Table: b.Table, Columns: cols[:1], Rows: []proto.Row{{Op: proto.OpInsert, New: text("7")}}}
	if err := tr.Batch(ctx, short); err == nil || !strings.Contains(err.Error(), "objects[0].transform.t.email") {
		t.Fatalf("missing column: %v", err)
	}
}

// A schema change that renames, drops or retypes a transformed column
// stops the apply with the transform's field; others pass.
func TestCheckDDL(t *testing.T) {
	tr := transform.New("postgres://unused@127.0.0.1/x", spec(t, "postgres://unused@127.0.0.1/x"))
	id := proto.TableID{Schema: "public", Name: "t"}
	def := func(cols ...proto.ColumnDef) *proto.TableDef { return &proto.TableDef{ID: id, Columns: cols} }
	email := proto.ColumnDef{Num: 2, Name: "email", Type: "text"}
	old := def(proto.ColumnDef{Num: 1, Name: "id", Type: "integer"}, email)
	for _, c := range []struct {
		new  *proto.TableDef
		want string
	}{
		{def(old.Columns[0], email, proto.ColumnDef{Num: 3, Name: "note", Type: "text"}), ""},
		{def(old.Columns[0], proto.ColumnDef{Num: 2, Name: "mail", Type: "text"}), "objects[0].transform.t.email: the source renamed"},
		{def(old.Columns[0]), "objects[0].transform.t.email: the source dropped"},
		{def(old.Columns[0], proto.ColumnDef{Num: 2, Name: "email", Type: "character varying"}), "changed the type"},
		{def(old.Columns[0], email, proto.ColumnDef{Num: 3, Name: "tag", Type: "text"}), "objects[0].add_columns.t.tag"},
		{nil, ""},
	} {
		err := tr.CheckDDL(&proto.DDLEvent{Tag: "ALTER TABLE", Old: old, New: c.new})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.new, err, c.want)
		}
	}
}
