// Package doristest reads a Doris database back for tests, as a reader
// of it sees the tables Sluice writes: a Unique table row by row, a
// Duplicate table folded by its change columns (the last change of each
// key; a DELETE removes it), values turned back into PostgreSQL's text
// form by the mapping apply/doris documents.
package doristest

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/apply/doris"
	"github.com/sluicedb/sluice/apply/sinktest"
	"github.com/sluicedb/sluice/proto"
)

// Server is a Doris FE and the database tasks write to.
type Server struct {
	URL, User, Password, DB string
}

// Query runs a statement in the database and returns its rows.
func (s Server) Query(t testing.TB, stmt string) (cols []string, rows [][]*string) {
	t.Helper()
	cols, rows, err := doris.Query(context.Background(), s.URL, s.User, s.Password, s.DB, stmt)
	if err != nil {
		t.Fatal(err)
	}
	return cols, rows
}

// Exec runs a statement.
func (s Server) Exec(t testing.TB, stmt string) {
	t.Helper()
	s.Query(t, stmt)
}

func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// Tables lists the database's tables.
func (s Server) Tables(t testing.TB) map[string]bool {
	t.Helper()
	_, rows, err := doris.Query(context.Background(), s.URL, s.User, s.Password, s.DB, "SHOW TABLES")
	out := map[string]bool{}
	if err != nil {
		return out // no database yet
	}
	for _, r := range rows {
		if len(r) > 0 && r[0] != nil {
			out[*r[0]] = true
		}
	}
	return out
}

// Describe returns a table's columns and their Doris types (upper case,
// as DESC prints them, with " NOT NULL" for a column that takes no
// NULL); nil for a table the database lacks.
func (s Server) Describe(t testing.TB, table string) (names []string, types map[string]string) {
	t.Helper()
	names, types, err := s.describe(t, table)
	if err != nil {
		t.Fatal(err)
	}
	return names, types
}

func (s Server) describe(t testing.TB, table string) (names []string, types map[string]string, err error) {
	if !s.Tables(t)[table] {
		return nil, nil, nil
	}
	cols, rows, err := doris.Query(context.Background(), s.URL, s.User, s.Password, s.DB, "DESC "+quote(table))
	if err != nil {
		return nil, nil, err
	}
	field, typ, null := slices.Index(cols, "Field"), slices.Index(cols, "Type"), slices.Index(cols, "Null")
	types = map[string]string{}
	for _, r := range rows {
		n := *r[field]
		names = append(names, n)
		types[n] = strings.ToUpper(strings.ReplaceAll(*r[typ], " ", ""))
		if null >= 0 && r[null] != nil && strings.EqualFold(*r[null], "NO") {
			types[n] += " NOT NULL"
		}
	}
	return names, types, nil
}

// ReadTable reads table as its readers see it, holding cols (the source's
// columns with their PostgreSQL types) in canonical form.
//
// A task may change the table while it is read (SHOW TABLES, DESC and
// SELECT are three statements): a read that fails is tried again, a
// bounded number of times, before the test fails.
func (s Server) ReadTable(t testing.TB, table string, cols []proto.Column) []sinktest.Row {
	t.Helper()
	const attempts = 20
	for i := 1; ; i++ {
		out, err := s.readTable(t, table, cols)
		if err == nil {
			return out
		}
		if i == attempts {
			t.Fatalf("reading %s: %v", table, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s Server) readTable(t testing.TB, table string, cols []proto.Column) ([]sinktest.Row, error) {
	names, types, err := s.describe(t, table)
	if err != nil || names == nil {
		return nil, err
	}
	changelog := slices.Contains(names, "_record_id") && slices.Contains(names, "_is_deleted")
	var sel []string
	for _, c := range cols {
		if _, ok := types[c.Name]; ok {
			sel = append(sel, quote(c.Name))
		}
	}
	if changelog {
		sel = append(sel, "`_is_deleted`", "`_record_id`")
	}
	got, rows, err := doris.Query(context.Background(), s.URL, s.User, s.Password, s.DB, "SELECT "+strings.Join(sel, ", ")+" FROM "+quote(table))
	if err != nil {
		return nil, err
	}
	at := func(r []*string, name string) (string, bool) {
		i := slices.Index(got, name)
		if i < 0 || r[i] == nil {
			return sinktest.Null, false
		}
		return *r[i], true
	}
	var out []sinktest.Row
	row := func(r []*string) sinktest.Row {
		row := sinktest.Row{}
		for _, c := range cols {
			v, ok := at(r, c.Name)
			if ok {
				v = canonical(c.TypeOID, v)
			}
			row[c.Name] = v
		}
		return row
	}
	if !changelog {
		for _, r := range rows {
			out = append(out, row(r))
		}
		return out, nil
	}
	// A Duplicate table holds every change: fold them in _record_id
	// order (full-sync rows, id 0, first), by key, or by the whole row
	// for a table without one.
	slices.SortStableFunc(rows, func(a, b []*string) int {
		x, _ := at(a, "_record_id")
		y, _ := at(b, "_record_id")
		xi, _ := strconv.ParseInt(x, 10, 64)
		yi, _ := strconv.ParseInt(y, 10, 64)
		return cmp.Compare(xi, yi)
	})
	var keyCols []string
	for _, c := range cols {
		if c.Key {
			keyCols = append(keyCols, c.Name)
		}
	}
	keyOf := func(r sinktest.Row) string {
		var b strings.Builder
		use := keyCols
		if len(use) == 0 {
			for _, c := range cols {
				use = append(use, c.Name)
			}
		}
		for _, k := range use {
			b.WriteString(r[k] + "\x00")
		}
		return b.String()
	}
	var order []string
	state := map[string][]sinktest.Row{}
	for _, r := range rows {
		cur := row(r)
		k := keyOf(cur)
		if _, seen := state[k]; !seen {
			order = append(order, k)
		}
		if d, _ := at(r, "_is_deleted"); d == "1" {
			if len(state[k]) > 0 {
				state[k] = state[k][:len(state[k])-1]
			}
			continue
		}
		if len(keyCols) > 0 {
			state[k] = []sinktest.Row{cur}
		} else {
			state[k] = append(state[k], cur)
		}
	}
	for _, k := range order {
		out = append(out, state[k]...)
	}
	return out, nil
}

// canonical turns a value Doris printed back into PostgreSQL's text form
// (sinktest.Row) by the mapping apply/doris documents.
func canonical(oid uint32, v string) string {
	switch oid {
	case 16: // boolean
		if v == "1" || strings.EqualFold(v, "true") {
			return "t"
		}
		return "f"
	case 3802: // jsonb
		if out, ok := jsonbText(v); ok {
			return out
		}
	case 1082: // date
		switch v {
		case "9999-12-31":
			return "infinity"
		case "0000-01-01":
			return "-infinity"
		}
	case 700, 701: // real, double precision: PostgreSQL's spelling
		return floatText(oid, v)
	case 1114, 1184: // timestamp, timestamptz
		switch {
		case strings.HasPrefix(v, "9999-12-31 23:59:59") && strings.Trim(strings.TrimPrefix(v, "9999-12-31 23:59:59"), ".9") == "":
			v = "infinity"
		case v == "0000-01-01 00:00:00" || strings.HasPrefix(v, "0000-01-01 00:00:00.000"):
			v = "-infinity"
		default:
			if i := strings.IndexByte(v, '.'); i >= 0 {
				v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
			}
			if oid == 1184 {
				v += "+00"
			}
		}
	}
	return v
}

// StreamLoad sends one Stream Load of JSON lines to table as the
// server's user (following the FE's redirect) and returns Doris's answer.
func StreamLoad(t testing.TB, s Server, table, label, body string, header map[string]string) map[string]any {
	t.Helper()
	client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		req.SetBasicAuth(s.User, s.Password)
		return nil
	}}
	req, err := http.NewRequest(http.MethodPut, s.URL+"/api/"+s.DB+"/"+table+"/_stream_load", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.User, s.Password)
	req.Header.Set("label", label)
	req.Header.Set("format", "json")
	req.Header.Set("read_json_by_line", "true")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	return ans
}

// LoadState asks the FE where the load of label is (get_load_state).
func LoadState(t testing.TB, s Server, label string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/api/"+s.DB+"/get_load_state?label="+label, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.User, s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ Data string }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	return ans.Data
}

// floatText spells a float as PostgreSQL prints it (shortest exact
// digits; an exponent below 1e-4 and from 1e15 on), whatever spelling
// Doris printed.
func floatText(oid uint32, v string) string {
	bits := 64
	if oid == 700 {
		bits = 32
	}
	f, err := strconv.ParseFloat(v, bits)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return v
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e15) {
		s := strconv.FormatFloat(f, 'e', -1, bits)
		// Go writes 1e+100 as PostgreSQL does, but pads 1e+05 to two
		// digits: PostgreSQL writes e+05 as well, so this stays.
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}
