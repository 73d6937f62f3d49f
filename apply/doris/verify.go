package doris

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/rowside"
)

// Verification (sluice verify) of a Doris destination: Doris computes
// neither PostgreSQL's canonical text nor its hashes, so a table's rows
// are read over SQL-over-HTTP into Sluice, as a reader of the table sees
// them, and verify/rowside puts them in the canonical form and hashes
// them there. Each load is one SELECT of the compared columns.
//
// The rows a reader sees depend on the table's model:
//   - Unique (merge-on-write): a plain SELECT returns each key's current
//     row (deletes were loaded with the delete sign, which hides them).
//   - Duplicate with the extra columns: every change is a row. A key's
//     current row is its change with the highest _record_id (full-sync
//     rows have 0, each change counts one up per table, in the order the
//     sink wrote them), and the key is absent when that change has
//     _is_deleted = 1. _record_id rather than _version decides: _version
//     is the source commit time in seconds, which many changes share and
//     which follows the source's clock; _record_id is the sink's own order
//     and agrees with _version whenever that tells two changes apart.
//   - Duplicate without a key (a keyless source table): a multiset; each
//     row adds a copy of its values, each deleted row (the old row of an
//     UPDATE or a DELETE under REPLICA IDENTITY FULL) takes one away.
//
// The sink is not an apply.Repairer. A repair must land after every
// change of its key the task wrote before the source was read, and
// before every later one. PostgreSQL holds the table's apply positions
// for that; here a table's position is a row of sluice_offsets that the
// running apply reads once and then keeps in memory, and a load takes no
// lock anything else could hold: nothing makes the apply wait. A repair
// loaded beside it (a Unique table's sequence column orders by position;
// a repair has none of its own) could hide a newer change, or be hidden
// by an older one still in flight, and on a Duplicate table its row
// would need a _record_id the apply may hand out too.

// VerifyReader reads the destination's side of a verification
// (apply.Verifiable).
func (s *Sink) VerifyReader() apply.VerifyReader { return rowside.New(s.verifyLoad) }

var _ apply.Verifiable = (*Sink)(nil)

// verifyLoad reads the table's current rows by compared column, each
// value in the form rowside reads for the source column's type.
func (s *Sink) verifyLoad(ctx context.Context, t *proto.VerifyTable) ([][]any, error) {
	name := dorisName(t.Dest)
	// Read afresh, not from the apply's cache: the table may have been
	// created, renamed or altered since this sink last looked.
	info, err := s.describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, fmt.Errorf("doris: table %s.%s does not exist", s.c.db, name)
	}
	if info.model != EngineUnique && info.model != EngineDuplicate {
		return nil, fmt.Errorf("doris: table %s.%s is a %s-model table: Sluice writes Unique and Duplicate tables", s.c.db, name, info.model)
	}
	sel := make([]string, len(t.DestColumns))
	dorisTypes := make([]string, len(t.DestColumns))
	for i, c := range t.DestColumns {
		typ, ok := info.types[c]
		if !ok {
			// A column the table lacks (schema changes not synced) reads
			// as NULL: its rows differ, and verify says which.
			sel[i] = "NULL"
			continue
		}
		sel[i], dorisTypes[i] = quote(c), typ
	}
	changelog := info.model == EngineDuplicate && info.extras
	if changelog {
		sel = append(sel, quote(colIsDeleted), quote(colRecordID))
	}
	res, err := s.c.query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quote(s.c.db)+"."+quote(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	rows := res.rows
	if changelog {
		if rows, err = foldChanges(t, rows); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	out := make([][]any, len(rows))
	for r, row := range rows {
		vals := make([]any, len(t.DestColumns))
		for i := range vals {
			if i < len(row) {
				vals[i] = verifyValue(t.Types[i], dorisTypes[i], row[i])
			}
		}
		out[r] = vals
	}
	return out, nil
}

// foldChanges turns a Duplicate table's change rows (the compared
// columns, then _is_deleted and _record_id) into the rows a reader
// holds: by key the last change, unless it deletes; keyless, each row's
// copies less its deletions.
func foldChanges(t *proto.VerifyTable, rows [][]*string) ([][]*string, error) {
	n := len(t.DestColumns)
	type change struct {
		row     []*string
		deleted bool
		id      int64
	}
	changes := make([]change, 0, len(rows))
	for _, r := range rows {
		if len(r) != n+2 {
			return nil, fmt.Errorf("a row of %d values for %d columns", len(r), n+2)
		}
		c := change{row: r[:n], deleted: r[n] != nil && *r[n] == "1"}
		if r[n+1] != nil {
			id, err := strconv.ParseInt(*r[n+1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", colRecordID, *r[n+1], err)
			}
			c.id = id
		}
		changes = append(changes, c)
	}
	// Stable: full-sync rows (all 0) keep the order they came in.
	slices.SortStableFunc(changes, func(a, b change) int { return cmp.Compare(a.id, b.id) })
	ident := func(row []*string) string {
		var b strings.Builder
		cols := t.Key
		if t.Keyless() {
			cols = nil
			for i := range row {
				cols = append(cols, i)
			}
		}
		for _, i := range cols {
			if row[i] == nil {
				b.WriteString("\x01")
			} else {
				b.WriteString("\x02" + *row[i])
			}
			b.WriteByte(0)
		}
		return b.String()
	}
	var order []string
	state := map[string][][]*string{}
	for _, c := range changes {
		k := ident(c.row)
		if _, seen := state[k]; !seen {
			order = append(order, k)
			state[k] = nil
		}
		switch {
		case c.deleted:
			if l := len(state[k]); l > 0 {
				state[k] = state[k][:l-1]
			}
		case t.Keyless():
			state[k] = append(state[k], c.row)
		default:
			state[k] = [][]*string{c.row}
		}
	}
	var out [][]*string
	for _, k := range order {
		out = append(out, state[k]...)
	}
	return out, nil
}

// verifyValue is a value Doris printed, for a column of Doris type
// dorisTyp (upper case, "" for a column the table lacks) whose source
// type is srcType, in a form rowside reads as the source's canonical
// text when the values are equal. Values the sink stores as PostgreSQL's
// text form (STRING columns: bytea in hex, arrays, uuid, time, interval,
// ...) and those Doris prints as PostgreSQL does (integers, text, a
// DECIMAL's digits, whose padded scale rowside trims, a BOOLEAN's 0/1, a
// JSON document, which rowside prints as jsonb) go as they are.
func verifyValue(srcType, dorisTyp string, v *string) any {
	if v == nil {
		return nil
	}
	s := *v
	switch kindOf(dorisTyp) {
	case asDatetime:
		switch srcType {
		case "timestamptz", "timestamp", "date":
			// The sink writes infinity and -infinity as the column's
			// last and first instants (convertDateTime).
			if rest, ok := strings.CutPrefix(s, "9999-12-31 23:59:59"); ok && strings.Trim(rest, ".9") == "" {
				return "infinity"
			}
			if rest, ok := strings.CutPrefix(s, "0000-01-01 00:00:00"); ok && strings.Trim(rest, ".0") == "" {
				return "-infinity"
			}
			if srcType == "timestamptz" {
				// A timestamptz is loaded in UTC; the offset says so.
				return s + "+00"
			}
		}
		return s
	case asDate:
		switch srcType {
		case "date", "timestamp", "timestamptz":
			switch s {
			case "9999-12-31":
				return "infinity"
			case "0000-01-01":
				return "-infinity"
			}
		}
		return s
	}
	switch srcType {
	case "float4", "float8":
		// DOUBLE prints in Doris's own spelling: the value, not the
		// text, is compared (rowside prints it as PostgreSQL does).
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return s
}
