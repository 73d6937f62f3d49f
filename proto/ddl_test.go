package proto

import (
	"slices"
	"testing"
)

func TestDDLEventOperations(t *testing.T) {
	base := func() *TableShape {
		return &TableShape{Schema: "public", Name: "items", Identity: "d",
			Columns:     []ShapeColumn{{Num: 1, Name: "id", Type: "integer", NotNull: true}, {Num: 2, Name: "v", Type: "text"}},
			Constraints: []ShapeConstraint{{Name: "items_pkey", Type: "p", Def: "PRIMARY KEY (id)"}, {Name: "items_id_not_null", Type: "n", Def: "NOT NULL id"}},
			Indexes:     []ShapeIndex{{Name: "items_v_idx", Def: "CREATE INDEX items_v_idx ON public.items USING btree (v)"}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(old, nw *TableShape) *DDLEvent
		want   []string
	}{
		{"create", func(_, nw *TableShape) *DDLEvent { return &DDLEvent{New: nw} }, []string{DDLCreateTable}},
		{"drop", func(old, _ *TableShape) *DDLEvent { return &DDLEvent{Old: old} }, []string{DDLDropTable}},
		{"nothing", func(old, nw *TableShape) *DDLEvent { return &DDLEvent{Old: old, New: nw} }, nil},
		{"rename table: the index's text names the new table", func(old, nw *TableShape) *DDLEvent {
			nw.Schema, nw.Name = "app", "things"
			nw.Indexes[0].Def = "CREATE INDEX items_v_idx ON app.things USING btree (v)"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLRenameTable}},
		{"add and drop columns", func(old, nw *TableShape) *DDLEvent {
			nw.Columns = []ShapeColumn{nw.Columns[0], {Num: 3, Name: "v", Type: "text"}}
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropColumn, DDLAddColumn}},
		{"rename column", func(old, nw *TableShape) *DDLEvent {
			nw.Columns[1].Name = "w"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLRenameColumn}},
		{"alter column type, default, not null", func(old, nw *TableShape) *DDLEvent {
			nw.Columns[1].Default = "'x'::text"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAlterColumn}},
		{"replica identity", func(old, nw *TableShape) *DDLEvent {
			nw.Identity = "f"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAlterColumn}},
		{"constraints: one added, a NOT NULL one ignored", func(old, nw *TableShape) *DDLEvent {
			nw.Constraints = append(nw.Constraints, ShapeConstraint{Name: "items_v_key", Type: "u", Def: "UNIQUE (v)"}, ShapeConstraint{Name: "v_nn", Type: "n", Def: "NOT NULL v"})
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLAddConstraint}},
		{"constraint redefined", func(old, nw *TableShape) *DDLEvent {
			nw.Constraints[0].Def = "PRIMARY KEY (id, v)"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropConstraint, DDLAddConstraint}},
		{"index dropped", func(old, nw *TableShape) *DDLEvent {
			nw.Indexes = nil
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex}},
		{"index made unique", func(old, nw *TableShape) *DDLEvent {
			nw.Indexes[0].Def = "CREATE UNIQUE INDEX items_v_idx ON public.items USING btree (v)"
			return &DDLEvent{Old: old, New: nw}
		}, []string{DDLDropIndex, DDLCreateIndex}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.change(base(), base()).Operations(); !slices.Equal(got, tc.want) {
				t.Errorf("operations %v, want %v", got, tc.want)
			}
		})
	}
}
