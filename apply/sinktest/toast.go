package sinktest

import (
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
)

// toastModel is what a destination should hold after a run of changes
// (invariant 6): a column an update marks unchanged-TOAST keeps the value
// the destination has, or, at a destination that writes whole rows
// (Destination.Unavailable), the value the change's old row has
// (REPLICA IDENTITY FULL) and else the destination's marker.
type toastModel struct {
	s           tableSpec
	unavailable string
	rows        map[string][]string // by the row's first value
}

func (m *toastModel) apply(r proto.Row) {
	vals := func(tp proto.Tuple) []string {
		out := make([]string, tp.Len())
		for i, k := range tp.Kinds {
			switch k {
			case proto.KindNull:
				out[i] = Null
			case proto.KindToast:
				out[i] = unchanged
			default:
				out[i] = string(tp.Values[i])
			}
		}
		return out
	}
	cur, old := vals(r.New), vals(r.Old)
	switch r.Op {
	case proto.OpInsert:
		m.rows[cur[0]] = cur
	case proto.OpUpdate:
		held := m.rows[cur[0]]
		for i, v := range cur {
			switch {
			case v != unchanged:
			case len(old) > 0 && old[i] != unchanged:
				cur[i] = old[i]
			case m.unavailable != "":
				cur[i] = m.unavailable
			default:
				cur[i] = held[i]
			}
		}
		m.rows[cur[0]] = cur
	}
}

func (m *toastModel) want() []Row {
	var out []Row
	for _, vals := range m.rows {
		out = append(out, m.s.row(vals...))
	}
	return out
}

// An update that marks columns unchanged-TOAST never makes them NULL or
// empty: the destination keeps its value (or, writing whole rows, takes
// it from the old row, else writes its documented marker). Several such
// updates of one row in one batch, and updates with different columns
// unchanged side by side, are where a set-based writer could lose them.
func unchangedToast(t *testing.T, d Destination) {
	ctx := t.Context()
	big := func(c string) string { return strings.Repeat(c, 20000) } // beyond TOAST's threshold at a source
	keyed := tableSpec{id: table("conf_toast"), identity: proto.IdentityDefault, cols: []column{idCol,
		{name: "big", typ: "text", oid: 25}, {name: "bin", typ: "bytea", oid: 17}, {name: "doc", typ: "jsonb", oid: 3802}, {name: "n", typ: "integer", oid: 23}}}
	keyless := tableSpec{id: table("conf_toast_full"), identity: proto.IdentityFull, cols: []column{
		{name: "k", typ: "text", oid: 25}, {name: "big", typ: "text", oid: 25}, {name: "n", typ: "integer", oid: 23}}}
	u := unchanged
	steps := []struct {
		s    tableSpec
		rows []proto.Row
	}{
		{keyed, []proto.Row{
			ins(at(10, 0), "1", big("a"), `\x0a0b`, `{"doc": 1}`, "1"),
			ins(at(10, 1), "2", big("b"), `\x0c0d`, `{"doc": 2}`, "1"),
			ins(at(10, 2), "3", big("c"), `\x0e0f`, `{"doc": 3}`, "1"),
		}},
		{keyed, []proto.Row{
			upd(at(20, 0), nil, []string{"1", u, u, u, "2"}),
			upd(at(20, 1), nil, []string{"2", "new big", u, `{"doc": 22}`, "2"}),
			upd(at(20, 2), nil, []string{"2", u, u, u, "3"}), // over the previous one, in the same batch
			upd(at(20, 3), nil, []string{"3", big("C"), `\x`, `{"doc": 33}`, "2"}),
		}},
		{keyless, []proto.Row{ins(at(10, 0), "a", big("k"), "1"), ins(at(10, 1), "b", big("l"), "1")}},
		// REPLICA IDENTITY FULL: the old row carries the value.
		{keyless, []proto.Row{upd(at(20, 0), []string{"a", big("k"), "1"}, []string{"a", u, "2"})}},
	}
	models := map[proto.TableID]*toastModel{}
	for _, s := range []tableSpec{keyed, keyless} {
		d.Create(t, s.def())
		models[s.id] = &toastModel{s: s, unavailable: d.Unavailable, rows: map[string][]string{}}
	}
	a := d.Open(t, "toast.apply.0")
	_, err := a.Offsets(ctx, "toast")
	must(t, err)
	for _, st := range steps {
		must(t, a.Apply(ctx, st.s.changes("toast", 1, st.rows...)))
		for _, r := range st.rows {
			models[st.s.id].apply(r)
		}
	}
	for _, s := range []tableSpec{keyed, keyless} {
		// Said first, and plainly: the loss invariant 6 forbids.
		for _, r := range d.Read(t, "toast", s.id, s.stream()) {
			for _, c := range s.cols {
				if v := r[c.name]; v == Null || v == "" {
					t.Errorf("%s: column %s of row %s is %q after an update that left it unchanged", s.id, c.name, r[s.cols[0].name], v)
				}
			}
		}
		wantTable(t, d, "toast", s, models[s.id].want())
	}
}
