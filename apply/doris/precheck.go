package doris

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// privileges a task needs on the database (the guide's list; Usage on
// the cluster is SelectDB's, granted with the account).
var privileges = []string{"Select_priv", "Load_priv", "Alter_priv", "Create_priv", "Drop_priv"}

// Precheck checks a Doris destination for a task, creating nothing: the
// tables' names, the FE (connection, credentials, version), the
// privileges, and the tables that exist already (model, key, light
// schema change).
func (destination) Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	cfg := configOf(spec)
	names := spec.Names()
	apply.CheckNaming(spec, src.Tables, c)
	checkTableNames(src.Tables, names, c)
	checkDefs(spec, names, src.Defs, c)

	pw, err := resolvePassword(cfg)
	if err != nil {
		c.Fail("destination.connect", err.Error(), "fix destination.password or password_file")
		return
	}
	cl, err := newClient(cfg.URL, cfg.User, pw, cfg.Database)
	if err != nil {
		c.Fail("destination.connect", err.Error(), "fix destination.url")
		return
	}
	defer cl.http.CloseIdleConnections()
	res, err := cl.inSystem().query(ctx, "SELECT @@version_comment")
	if err != nil {
		c.Fail("destination.connect", err.Error(), "check destination.url (the FE's HTTP port, 8030 by default), user and password, and that every Sluice node reaches the FE and its BEs")
		return
	}
	version := strings.Join(res.first(), "")
	c.Pass("destination.connect", fmt.Sprintf("connected to %s as %s: %s", proto.RedactURL(cfg.URL), cfg.User, version))
	if v := strings.ToLower(version); !strings.Contains(v, "doris") && !strings.Contains(v, "selectdb") {
		c.Warn("destination.version", "the server does not say it is Doris or SelectDB: "+version, "point destination.url at a Doris 2.0+ or SelectDB FE")
	}
	checkPrivileges(ctx, cl.inSystem(), cfg, c)

	found, err := cl.databaseExists(ctx)
	if err != nil {
		c.Fail("destination.database", err.Error(), "")
		return
	}
	if !found {
		c.Pass("destination.database", fmt.Sprintf("database %s does not exist yet: schema sync creates it", cfg.Database))
		return
	}
	s := &Sink{c: cl, cfg: *cfg, spec: spec, names: names, tables: map[string]*tableInfo{}, known: map[string]offsetRow{}}
	checkExistingTables(ctx, s, spec, src, c)
}

// checkDefs checks the tables' definitions: the columns' names, the table
// each becomes (a keyless one cannot be unique; a distribution key within
// the unique key), and names the columns whose edge values Doris holds
// otherwise (infinity, NaN, a time zone).
func checkDefs(spec *proto.TaskSpec, names *proto.NameMap, defs []proto.TableDef, c *proto.Checks) {
	if defs == nil {
		return
	}
	var problems, lossy []string
	for i := range defs {
		def := &defs[i]
		colName := func(col string) string { return names.Column(def.ID, col) }
		for _, col := range def.Columns {
			if err := checkName("column", colName(col.Name), def.ID.String()+"."+col.Name, "rename: {\""+def.ID.Name+"."+col.Name+"\": <name>}"); err != nil {
				problems = append(problems, strings.TrimPrefix(err.Error(), "doris: "))
			}
			if _, why := dorisType(col.TypeOID, col.Type, slices.Contains(def.PrimaryKey, col.Name)); why != "" {
				lossy = append(lossy, fmt.Sprintf("%s.%s (%s): %s", def.ID, col.Name, col.Type, why))
			}
		}
		if _, err := planTable(def, dorisName(names.Table(def.ID)), colName, optionsFor(spec, def.ID)); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		c.Fail("destination.schema", strings.Join(problems, "; "), "map the names (objects[].rename) and set objects[].engine.<table>: duplicate for tables without a primary key")
	} else {
		c.Pass("destination.schema", fmt.Sprintf("%d table(s) map to Doris tables", len(defs)))
	}
	// The guide's own mappings: said, not blocking (a warning blocks the
	// task until acknowledged, and nearly every table has a date).
	if len(lossy) > 0 {
		c.Pass("destination.types", "columns whose edge values Doris holds otherwise (see the README's type mapping): "+strings.Join(lossy, "; "))
	} else {
		c.Pass("destination.types", "every column's values load as they are")
	}
}

func resolvePassword(cfg *Config) (string, error) {
	pw, err := secret.ResolveField(cfg.PasswordRef())
	if err != nil {
		return "", fmt.Errorf("destination password: %w", err)
	}
	return pw, nil
}

// checkTableNames: every table lands in one database under its name, so
// two with one name collide, and a name must be a Doris name.
func checkTableNames(tables []proto.TableID, names *proto.NameMap, c *proto.Checks) {
	seen := map[string]proto.TableID{}
	var problems []string
	for _, t := range tables {
		dest := dorisName(names.Table(t))
		if other, dup := seen[dest]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both become %s (add objects[].rename: {%s: <new name>} to one of them)", other, t, dest, t.Name))
			continue
		}
		seen[dest] = t
		if !nameRe.MatchString(dest) {
			problems = append(problems, fmt.Sprintf("%s becomes %q, which Doris does not take: a name starts with a letter and holds ASCII letters, digits and '_' (add objects[].rename: {%s: <new name>})", t, dest, t.Name))
		}
	}
	if len(problems) > 0 {
		c.Fail("destination.names", strings.Join(problems, "; "), "rename the tables in the task's objects")
		return
	}
	c.Pass("destination.names", fmt.Sprintf("%d table(s) get distinct Doris names", len(tables)))
}

// checkPrivileges reads SHOW GRANTS for the privileges the task needs.
func checkPrivileges(ctx context.Context, cl *client, cfg *Config, c *proto.Checks) {
	res, err := cl.query(ctx, "SHOW GRANTS")
	if err != nil {
		c.Warn("destination.privileges", "cannot read the user's grants: "+err.Error(), "")
		return
	}
	var all strings.Builder
	for i := range res.rows {
		for _, col := range []string{"GlobalPrivs", "CatalogPrivs", "DatabasePrivs"} {
			v := res.col(i, col)
			if col == "DatabasePrivs" && v != "" && !strings.Contains(v, cfg.Database) {
				continue
			}
			all.WriteString(v + ",")
		}
	}
	have := all.String()
	if strings.Contains(have, "Admin_priv") || strings.Contains(have, "Node_priv") {
		c.Pass("destination.privileges", "the user is an administrator")
		return
	}
	var missing []string
	for _, p := range privileges {
		if !strings.Contains(have, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		c.Fail("destination.privileges", fmt.Sprintf("user %s lacks %s on %s", cfg.User, strings.Join(missing, ", "), cfg.Database),
			fmt.Sprintf("GRANT %s ON %s.* TO %s", strings.Join(privileges, ", "), cfg.Database, cfg.User))
		return
	}
	c.Pass("destination.privileges", "the user may load, create, alter and drop in "+cfg.Database)
}

// checkExistingTables checks tables the database has already: the model
// (Unique or Duplicate), a Unique table's key against the source's, light
// schema change, and the Duplicate extra columns.
func checkExistingTables(ctx context.Context, s *Sink, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	tables := src.Tables
	pk := map[string][]string{}
	for _, d := range src.Defs {
		pk[d.ID.Key()] = s.names.ColumnsOf(d.ID, d.PrimaryKey)
	}
	have, err := s.tableNames(ctx)
	if err != nil {
		c.Fail("destination.tables", err.Error(), "")
		return
	}
	var problems, warnings, existing []string
	for _, t := range tables {
		name := dorisName(s.names.Table(t))
		if !have[name] {
			continue
		}
		existing = append(existing, name)
		info, err := s.describe(ctx, name)
		if err != nil || info == nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read it (%v)", name, err))
			continue
		}
		switch info.model {
		case EngineUnique:
			if want, ok := pk[t.Key()]; ok && !sameSet(info.keys, want) {
				problems = append(problems, fmt.Sprintf("%s has the unique key (%s), the source's primary key is (%s): rows would merge wrongly", name, strings.Join(info.keys, ", "), strings.Join(want, ", ")))
			}
			if !info.hasSeq && info.seqCol == "" {
				warnings = append(warnings, fmt.Sprintf("%s has no sequence column: a late batch is not kept from overwriting a newer row (create it with \"function_column.sequence_type\" = \"LARGEINT\")", name))
			}
		case EngineDuplicate:
			if !info.extras {
				problems = append(problems, fmt.Sprintf("%s is a Duplicate table without the columns %s, %s and %s", name, colIsDeleted, colVersion, colRecordID))
			}
		default:
			problems = append(problems, fmt.Sprintf("%s is a %s-model table: Sluice writes Unique and Duplicate tables", name, info.model))
		}
		if !info.light {
			problems = append(problems, fmt.Sprintf("%s has light_schema_change off: DDL sync needs it (ALTER TABLE %s SET (\"light_schema_change\" = \"true\"))", name, name))
		}
		if o := optionsFor(spec, t); o.engine != "" && o.engine != info.model {
			problems = append(problems, fmt.Sprintf("%s is %s at the destination, the task says engine %s", name, info.model, o.engine))
		}
	}
	if len(problems) > 0 {
		c.Fail("destination.tables", strings.Join(problems, "; "), "recreate the tables as Unique (keyed) or Duplicate tables with the extra columns, or let schema sync create them under other names")
		return
	}
	if len(warnings) > 0 {
		c.Warn("destination.tables", strings.Join(warnings, "; "), "")
	}
	if spec.Sync.SchemaEnabled() && len(existing) > 0 && spec.ConflictPolicy() == "precheck" {
		slices.Sort(existing)
		c.Fail("destination.conflicting_tables", "these tables exist in "+s.c.db+" already: "+strings.Join(existing, ", "),
			"drop them, or map the tables to other names (objects[].rename)")
		return
	}
	c.Pass("destination.tables", fmt.Sprintf("%d table(s) exist and fit", len(existing)))
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
