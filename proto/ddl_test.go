package proto

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestDDLEventOperations(t *testing.T) {
	base := func() *TableDef {
		return &TableDef{ID: TableID{Schema: "public", Name: "items"}, ReplicaIdentity: 'd',
			Columns:     []ColumnDef{{Num: 1, Name: "id", Type: "integer", NotNull: true}, {Num: 2, Name: "v", Type: "text"}},
			Constraints: []ConstraintDef{{Name: "items_pkey", Kind: ConstraintPrimaryKey, Def: "PRIMARY KEY (id)", Columns: []int{1}, Fingerprint: "p1"}},
			Indexes:     []IndexDef{{Name: "items_v_idx", Def: "btree (v)", Columns: []int{2}, Fingerprint: "i2"}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(old, nw *TableDef) *DDLEvent
		want   []string
	}{
		{"create", func(_, nw *TableDef) *DDLEvent { return &DDLEvent{New: nw} }, []string{DDLCreateTable}},
		{"drop", func(old, _ *TableDef) *DDLEvent { return &DDLEvent{Old: old} }, []string{DDLDropTable}},
		{"nothing", func(old, nw *TableDef) *DDLEvent { return &DDLEvent{Old: old, New: nw} }, nil},
		{"rename table", func(old, nw *TableDef) *DDLEvent {
			nw.ID = TableID{Schema: "app", Name: "things"}
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLRenameTable}},
		{"add and drop columns", func(old, nw *TableDef) *DDLEvent {
			nw.Columns = []ColumnDef{nw.Columns[0], {Num: 3, Name: "v", Type: "text"}}
			nw.Indexes = nil
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex, DDLDropColumn, DDLAddColumn}},
		{"rename column: its index's text changes, its fingerprint does not", func(old, nw *TableDef) *DDLEvent {
			nw.Columns[1].Name = "w"
			nw.Indexes[0].Def = "btree (w)"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLRenameColumn}},
		{"alter column type, default, not null", func(old, nw *TableDef) *DDLEvent {
			nw.Columns[1].Default = "'x'::text"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAlterColumn}},
		{"replica identity", func(old, nw *TableDef) *DDLEvent {
			nw.ReplicaIdentity = 'f'
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAlterColumn}},
		{"constraint added", func(old, nw *TableDef) *DDLEvent {
			nw.Constraints = append(nw.Constraints, ConstraintDef{Name: "items_v_key", Kind: ConstraintUnique, Def: "UNIQUE (v)", Fingerprint: "u2"})
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAddConstraint}},
		{"constraint redefined", func(old, nw *TableDef) *DDLEvent {
			nw.Constraints[0].Def, nw.Constraints[0].Fingerprint = "PRIMARY KEY (id, v)", "p12"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropConstraint, DDLAddConstraint}},
		{"index dropped", func(old, nw *TableDef) *DDLEvent {
			nw.Indexes = nil
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex}},
		{"index made unique", func(old, nw *TableDef) *DDLEvent {
			nw.Indexes[0].Unique = true
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex, DDLCreateIndex}},
		{"without fingerprints (an older Sluice's), text decides", func(old, nw *TableDef) *DDLEvent {
			old.Indexes[0].Fingerprint, nw.Indexes[0].Fingerprint = "", ""
			nw.Columns[1].Name = "w"
			nw.Indexes[0].Def = "btree (w)"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex, DDLRenameColumn, DDLCreateIndex}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.change(base(), base()).Operations(); !slices.Equal(got, tc.want) {
				t.Errorf("operations %v, want %v", got, tc.want)
			}
		})
	}
}

// Changes come in the order they apply, foreign keys after the keys.
func TestDDLEventChangesOrder(t *testing.T) {
	old := &TableDef{ID: TableID{Schema: "s", Name: "t"}, Columns: []ColumnDef{{Num: 1, Name: "a", Type: "int"}}}
	nw := &TableDef{ID: TableID{Schema: "s", Name: "t"}, Columns: []ColumnDef{{Num: 1, Name: "a", Type: "int"}, {Num: 2, Name: "b", Type: "int"}},
		Constraints: []ConstraintDef{
			{Name: "t_b_fkey", Kind: ConstraintForeignKey, Def: "FOREIGN KEY (b) REFERENCES s.u(id)", Fingerprint: "f"},
			{Name: "t_pkey", Kind: ConstraintPrimaryKey, Def: "PRIMARY KEY (a)", Fingerprint: "p"},
		}}
	var got []string
	for _, c := range (&DDLEvent{Old: old, New: nw}).Changes() {
		what := c.Kind.String()
		if c.Constraint != nil {
			what += " " + c.Constraint.Name
		}
		got = append(got, what)
	}
	want := []string{"add column", "add constraint t_pkey", "add constraint t_b_fkey"}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// A table definition in the form an older Sluice wrote (a "shape") reads
// as the model: schema and name, a generated column's expression, index
// definitions from USING on, NOT NULL constraints left to the columns.
func TestLegacyShapeReads(t *testing.T) {
	legacy := `{"schema":"public","name":"items","identity":"f","columns":[{"num":1,"name":"id","type":"integer","not_null":true,"identity":"a"},
		{"num":2,"name":"twice","type":"integer","default":"(id * 2)","generated":"s"}],
		"constraints":[{"name":"items_pkey","type":"p","def":"PRIMARY KEY (id)"},{"name":"nn","type":"n","def":"NOT NULL id"}],
		"indexes":[{"name":"items_t","def":"CREATE UNIQUE INDEX items_t ON public.items USING btree (twice)"}],"sequences":["public.s", "\"My \"\"odd\"\"\".\"s.q\""]}`
	var got TableDef
	if err := json.Unmarshal([]byte(legacy), &got); err != nil {
		t.Fatal(err)
	}
	want := TableDef{ID: TableID{Schema: "public", Name: "items"}, ReplicaIdentity: 'f',
		Columns:     []ColumnDef{{Num: 1, Name: "id", Type: "integer", NotNull: true, Identity: 'a'}, {Num: 2, Name: "twice", Type: "integer", Generated: "(id * 2)"}},
		Constraints: []ConstraintDef{{Name: "items_pkey", Kind: 'p', Def: "PRIMARY KEY (id)", Validated: true}},
		Indexes:     []IndexDef{{Name: "items_t", Unique: true, Def: "btree (twice)"}},
		Sequences:   []TableID{{Schema: "public", Name: "s"}, {Schema: `My "odd"`, Name: "s.q"}}}
	if b, w := mustJSON(t, got), mustJSON(t, want); b != w {
		t.Fatalf("read\n%s\nwant\n%s", b, w)
	}
	// The model's own form reads back as it was written.
	var again TableDef
	if err := json.Unmarshal([]byte(mustJSON(t, want)), &again); err != nil || mustJSON(t, again) != mustJSON(t, want) {
		t.Fatalf("round trip: %v\n%s", err, mustJSON(t, again))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
