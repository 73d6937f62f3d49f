package proto

import (
	"encoding/json"
	"strings"
)

// Table definitions in DDL events and in the source's sluice.ddl_state
// were written, before there was one table model, in an older form (a
// "table shape": schema and name at the top, index definitions whole,
// a generated column's expression as its default). Events of that form
// may still wait in a task's stream, and the event trigger compares a
// table's new definition with the old form it stored; TableDef reads both.

// tableDefFields is TableDef without its methods.
type tableDefFields TableDef

// UnmarshalJSON reads a table definition, in either form.
func (t *TableDef) UnmarshalJSON(b []byte) error {
	var probe struct {
		ID     *TableID `json:"id"`
		Schema *string  `json:"schema"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	if probe.ID != nil || probe.Schema == nil {
		return json.Unmarshal(b, (*tableDefFields)(t))
	}
	var old legacyShape
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	*t = old.tableDef()
	return nil
}

type legacyShape struct {
	Schema  string `json:"schema"`
	Name    string `json:"name"`
	Columns []struct {
		Num       int    `json:"num"`
		Name      string `json:"name"`
		Type      string `json:"type"`
		NotNull   bool   `json:"not_null"`
		Default   string `json:"default"`
		Identity  string `json:"identity"`
		Generated string `json:"generated"`
	} `json:"columns"`
	Constraints []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Def  string `json:"def"`
	} `json:"constraints"`
	Indexes []struct {
		Name string `json:"name"`
		Def  string `json:"def"`
	} `json:"indexes"`
	Identity  string   `json:"identity"`
	Sequences []string `json:"sequences"`
}

func (s *legacyShape) tableDef() TableDef {
	t := TableDef{ID: TableID{Schema: s.Schema, Name: s.Name}}
	for _, seq := range s.Sequences {
		if id, ok := splitQualified(seq); ok {
			t.Sequences = append(t.Sequences, id)
		}
	}
	if s.Identity != "" {
		t.ReplicaIdentity = Char(s.Identity[0])
	}
	for _, c := range s.Columns {
		col := ColumnDef{Num: c.Num, Name: c.Name, Type: c.Type, NotNull: c.NotNull, Default: c.Default}
		// The older form wrote a collation into the type.
		if i := strings.LastIndex(col.Type, " COLLATE "); i >= 0 {
			col.Type, col.Collation = col.Type[:i], col.Type[i+len(" COLLATE "):]
		}
		if c.Identity != "" {
			col.Identity = Char(c.Identity[0])
		}
		if c.Generated != "" {
			col.Generated, col.Default = c.Default, ""
		}
		t.Columns = append(t.Columns, col)
	}
	for _, c := range s.Constraints {
		if c.Type == "" || c.Type == "n" {
			continue // NOT NULL is the columns'
		}
		t.Constraints = append(t.Constraints, ConstraintDef{Name: c.Name, Kind: Char(c.Type[0]), Def: c.Def, Validated: true})
	}
	for _, ix := range s.Indexes {
		// "CREATE [UNIQUE] INDEX name ON [ONLY] table USING ...": the
		// model keeps the definition from USING on.
		def := ix.Def
		if _, on, ok := strings.Cut(def, " ON "); ok {
			if _, using, ok := strings.Cut(on, " USING "); ok {
				def = "USING " + using
			}
		}
		def = strings.TrimPrefix(def, "USING ")
		t.Indexes = append(t.Indexes, IndexDef{Name: ix.Name, Unique: strings.HasPrefix(ix.Def, "CREATE UNIQUE "), Def: def})
	}
	return t
}

// splitQualified reads the older form's "schema"."name" of a sequence, as
// quote_ident wrote both parts.
func splitQualified(s string) (TableID, bool) {
	var parts []string
	for len(s) > 0 {
		var part string
		if s[0] == '"' {
			end := 1
			for ; end < len(s); end++ {
				if s[end] == '"' {
					if end+1 < len(s) && s[end+1] == '"' {
						end++
						continue
					}
					break
				}
			}
			if end >= len(s) {
				return TableID{}, false
			}
			part, s = strings.ReplaceAll(s[1:end], `""`, `"`), s[end+1:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			part, s = s[:i], s[i:]
		}
		parts = append(parts, part)
		if len(s) > 0 {
			if s[0] != '.' {
				return TableID{}, false
			}
			s = s[1:]
		}
	}
	if len(parts) != 2 {
		return TableID{}, false
	}
	return TableID{Schema: parts[0], Name: parts[1]}, true
}
