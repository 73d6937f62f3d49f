package doris

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/proto"
)

// ApplyPreData creates each table of the schema as a Unique or Duplicate
// table under its destination name (IF NOT EXISTS: a table the user made
// stays as it is; the precheck checked its model and key).
func (s *Sink) ApplyPreData(ctx context.Context, sc *proto.Schema) error {
	for i := range sc.Tables {
		def := &sc.Tables[i]
		dest := s.names.Table(def.ID)
		if err := checkName("table", dest.Name, def.ID.String(), "rename: {"+def.ID.Name+": <name>}"); err != nil {
			return err
		}
		for _, c := range def.Columns {
			if err := checkName("column", s.names.Column(def.ID, c.Name), def.ID.String()+"."+c.Name, "rename: {\""+def.ID.Name+"."+c.Name+"\": <name>}"); err != nil {
				return err
			}
		}
		ts, err := planTable(def, dorisName(dest), func(c string) string { return s.names.Column(def.ID, c) }, optionsFor(s.spec, def.ID))
		if err != nil {
			return err
		}
		if err := s.c.exec(ctx, ts.createSQL(s.cfg.ReplicationNum)); err != nil {
			return fmt.Errorf("create %s: %w", ts.name, err)
		}
		s.forget(ts.name)
	}
	return nil
}

// checkName refuses a name Doris does not take: it starts with a letter
// and is ASCII letters, digits and '_'.
func checkName(what, name, source, fix string) error {
	if nameRe.MatchString(name) || (what == "column" && columnNameRe.MatchString(name)) {
		return nil
	}
	return fmt.Errorf("doris: %s %q (from %s) is not a Doris name (a letter first, then ASCII letters, digits and '_'): map it with objects[].%s", what, name, source, fix)
}

// ApplyPostData has nothing to do: Doris has no secondary indexes,
// foreign keys or sequences to carry over.
func (s *Sink) ApplyPostData(context.Context, *proto.Schema) error { return nil }

// SyncSequences has nothing to do (Doris has no sequences).
func (s *Sink) SyncSequences(context.Context, *proto.Schema) error { return nil }

// ExistingTables returns which tables the database has already.
func (s *Sink) ExistingTables(ctx context.Context, tables []proto.TableID) ([]proto.TableID, error) {
	have, err := s.tableNames(ctx)
	if err != nil {
		return nil, err
	}
	var out []proto.TableID
	for _, t := range tables {
		if have[dorisName(s.names.Table(t))] {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Sink) tableNames(ctx context.Context) (map[string]bool, error) {
	res, err := s.c.query(ctx, "SHOW TABLES")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, name := range res.first() {
		have[name] = true
	}
	return have, nil
}
