package proto

import "strings"

// TableID names a table by schema and name, both unquoted.
type TableID struct {
	Schema string `json:"schema" yaml:"schema"`
	Name   string `json:"name" yaml:"name"`
}

// String is schema.name for messages, each part double-quoted when it needs
// it, as in PostgreSQL's own messages. SQL is built with pgx.Identifier.
func (t TableID) String() string { return quoteIfNeeded(t.Schema) + "." + quoteIfNeeded(t.Name) }

// Key is an unambiguous map key and offset-table key: schema, a NUL byte,
// and name.
func (t TableID) Key() string { return t.Schema + "\x00" + t.Name }

func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9')) {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
	}
	return s
}

// TableIDFromKey is the table a Key() names.
func TableIDFromKey(k string) TableID {
	schema, name, _ := strings.Cut(k, "\x00")
	return TableID{Schema: schema, Name: name}
}
