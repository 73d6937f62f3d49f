package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// ADBPG is the AnalyticDB for PostgreSQL destination (destination.type:
// adbpg): a Greenplum warehouse, written by the PostgreSQL sink with the
// adbpg dialect (adbpg_schema.go for its tables, noconflict.go for its
// apply without INSERT ... ON CONFLICT).
var ADBPG apply.Destination = adbpgDestination{}

type adbpgDestination struct{}

// ADBPGConfig is the adbpg destination's block:
//
//	destination: { type: adbpg, dsn: "postgres://app@gp-xxx.gpdb.rds.aliyuncs.com:5432/wh", password_file: /etc/sluice/wh.pw }
type ADBPGConfig struct {
	DSN          string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// Upsert says how a row that may exist is written: auto (the
	// default) uses INSERT ... ON CONFLICT where the server has it
	// (AnalyticDB 7 / Greenplum 7) and DELETE + INSERT in one transaction
	// where it does not (Greenplum 6, found from version() at connect);
	// delete_insert always uses the latter.
	Upsert string `yaml:"upsert,omitempty" json:"upsert,omitempty"`
}

// Upsert settings (destination.upsert).
const (
	UpsertAuto         = "auto"
	UpsertDeleteInsert = "delete_insert"
)

func (c *ADBPGConfig) postgresConfig() *Config {
	return &Config{DSN: c.DSN, PasswordFile: c.PasswordFile}
}

// String is the DSN (shown on a redacted spec).
func (c *ADBPGConfig) String() string { return c.DSN }

// Secrets is the DSN's password (proto.DestinationConfig).
func (c *ADBPGConfig) Secrets() []proto.SecretField {
	return []proto.SecretField{{Name: "dsn", Value: &c.DSN, Kind: proto.SecretInDSN}}
}

// Validate checks the block and the objects entries' adbpg keys.
func (c *ADBPGConfig) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	validateDSN(c.DSN, c.PasswordFile, "postgres://user:pass@host:5432/db", add)
	switch c.Upsert {
	case "", UpsertAuto, UpsertDeleteInsert:
	default:
		add("destination.upsert", "unknown value %q (auto or delete_insert)", c.Upsert)
	}
	for i := range spec.Objects {
		if o, ok := spec.Objects[i].Options.(*ADBPGObjectOptions); ok {
			o.validate(i, &spec.Objects[i], add)
		}
	}
}

// validateDSN checks a PostgreSQL-family destination's dsn and
// password_file.
func validateDSN(dsn, passwordFile, example string, add proto.AddProblem) {
	if dsn == "" {
		add("destination.dsn", "is required (a URL like %s)", example)
	} else if err := proto.CheckPostgresDSN(dsn); err != nil {
		add("destination.dsn", "%v", err)
	}
	if passwordFile != "" {
		if err := proto.CheckPasswordFile(passwordFile); err != nil {
			add("destination.password_file", "%v", err)
		}
	}
}

// ADBPGObjectOptions are the adbpg destination's keys of an objects
// entry:
//
//	objects:
//	  - schema: public
//	    distribution_key: { orders: [customer_id], events: [tenant, id] }   # default: the primary key
//	    partitions: flatten        # the only choice: partitioned tables become one table
type ADBPGObjectOptions struct {
	// Partitions: a partitioned table is flattened into one table, its
	// only setting at AnalyticDB (Greenplum 6 has no PostgreSQL-style
	// partitions).
	Partitions string `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// DistributionKey gives tables of the entry's schema (by source
	// name) the columns (source names) their rows are distributed by;
	// a table not named is distributed by its primary key, else its
	// first unique key, else randomly. The key must lie inside every
	// primary and unique key of the table.
	DistributionKey map[string][]string `yaml:"distribution_key,omitempty" json:"distribution_key,omitempty"`
}

func (o *ADBPGObjectOptions) validate(i int, entry *proto.ObjectSpec, add proto.AddProblem) {
	field := fmt.Sprintf("objects[%d]", i)
	switch o.Partitions {
	case "", PartitionsFlatten:
	default:
		add(field+".partitions", "AnalyticDB flattens a partitioned table into one table (Greenplum 6 has no PostgreSQL-style partitions): leave partitions out, or set flatten")
	}
	for _, table := range slices.Sorted(maps.Keys(o.DistributionKey)) {
		cols := o.DistributionKey[table]
		key := field + ".distribution_key." + table
		if table == "" {
			add(field+".distribution_key", "a table name is empty")
			continue
		}
		if len(entry.Tables) > 0 && !slices.Contains(entry.Tables, table) {
			add(key, "%s is not among %s.tables", table, field)
		}
		if len(cols) == 0 {
			add(key, "needs at least one column (leave the table out of distribution_key to distribute it by its primary key)")
		}
		for j, c := range cols {
			switch {
			case c == "":
				add(fmt.Sprintf("%s[%d]", key, j), "a column name is empty")
			case slices.Index(cols, c) != j:
				add(fmt.Sprintf("%s[%d]", key, j), "column %q is named twice", c)
			}
		}
	}
}

func (adbpgDestination) Kind() proto.DestinationKind {
	return proto.DestinationKind{
		Type:             "adbpg",
		NewConfig:        func() proto.DestinationConfig { return &ADBPGConfig{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ADBPGObjectOptions{} },
	}
}

func (adbpgDestination) Capabilities() apply.Capabilities {
	return apply.Capabilities{SchemaSync: true, RenamesAfterLoad: true, DDL: true, KeepsExistingTables: true, Sequences: true}
}

// Plan lists schema sync's statements at AnalyticDB (apply.Planner) and
// each table's distribution. A plan connects to no destination, so the
// statements are Greenplum 6's (the oldest the dialect takes); a
// Greenplum 7 server gets USING heap and the IF NOT EXISTS forms.
func (adbpgDestination) Plan(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan) {
	d := adbpgDialectFor(spec)
	planSchema(spec, d.adbpgSchemaAsIs(s), plan, &SchemaOptions{Task: spec.Name, Dialect: d, Flatten: func(proto.TableID) bool { return true }})
	defs := make(map[proto.TableID]*proto.TableDef, len(s.Tables))
	for i := range s.Tables {
		defs[s.Tables[i].ID] = &s.Tables[i]
	}
	for i := range plan.Tables {
		if def := defs[plan.Tables[i].Source]; def != nil {
			plan.Tables[i].Storage = d.storageOf(def)
		}
	}
}

// storageOf says how AnalyticDB keeps a table.
func (d *Dialect) storageOf(t *proto.TableDef) string {
	dist, err := d.distribution(t)
	var out string
	switch {
	case err != nil:
		return "refused: " + err.Error()
	case len(dist) == 0:
		out = "heap table, distributed randomly"
	default:
		out = "heap table, distributed by (" + strings.Join(dist, ", ") + ")"
	}
	if t.Partitioned {
		out += " (partitions flattened)"
	}
	return out
}

// Open opens a PostgreSQL sink with the task's adbpg dialect.
func (adbpgDestination) Open(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
	opts := sinkOptions(spec, use)
	opts.Dialect = adbpgDialectFor(spec)
	opts.Schema = &SchemaOptions{Flatten: func(proto.TableID) bool { return true }}
	return Open(ctx, opts)
}

func (adbpgDestination) Classify(err error) proto.ErrorKind { return pgconfig.Classify(err) }

func (adbpgDestination) Endpoints(spec *proto.TaskSpec) []string {
	return destination{}.Endpoints(spec)
}

// adbpgSettings are a task's AnalyticDB choices.
type adbpgSettings struct {
	// keys are the distribution keys the task chose, by source table;
	// fields name each one's field in the spec.
	keys   map[proto.TableID][]string
	fields map[proto.TableID]string
	// entries is the first objects entry of each schema, where a
	// table's distribution_key would go.
	entries map[string]int
	// deleteInsert: upsert: delete_insert.
	deleteInsert bool
	// generated are the generated columns of the tables adapted last,
	// for the marks schema sync writes after them.
	generated *generatedColumns
}

// generatedColumns are tables' generated columns, shared by a sink's
// dialect and its schema options.
type generatedColumns struct {
	mu sync.Mutex
	m  map[proto.TableID][]generatedColumn
}

func (a *adbpgSettings) setGenerated(t proto.TableID, cols []generatedColumn) {
	if a.generated == nil {
		return
	}
	a.generated.mu.Lock()
	defer a.generated.mu.Unlock()
	if len(cols) == 0 {
		delete(a.generated.m, t)
		return
	}
	a.generated.m[t] = cols
}

func (a *adbpgSettings) generatedOf(t proto.TableID) []generatedColumn {
	if a.generated == nil {
		return nil
	}
	a.generated.mu.Lock()
	defer a.generated.mu.Unlock()
	return a.generated.m[t]
}

// field names table t's distribution_key field, if the task set one.
func (a *adbpgSettings) field(t proto.TableID) (string, bool) {
	f, ok := a.fields[t]
	return f, ok
}

// defaultField is where table t's distribution_key would go.
func (a *adbpgSettings) defaultField(t proto.TableID) string {
	return fmt.Sprintf("objects[%d].distribution_key.%s", a.entries[t.Schema], t.Name)
}

// ADBPGDialect is the AnalyticDB dialect with the distribution keys keys
// (by source table; nil: every table by its primary key), writing
// DELETE + INSERT instead of INSERT ... ON CONFLICT when deleteInsert is
// set or the server lacks it.
func ADBPGDialect(keys map[proto.TableID][]string, deleteInsert bool) *Dialect {
	a := adbpgSettings{keys: map[proto.TableID][]string{}, fields: map[proto.TableID]string{}, entries: map[string]int{}, deleteInsert: deleteInsert,
		generated: &generatedColumns{m: map[proto.TableID][]generatedColumn{}}}
	for t, cols := range keys {
		a.keys[t] = cols
		a.fields[t] = "distribution_key." + t.Name
	}
	return &Dialect{kind: kindADBPG, adbpg: a}
}

// adbpgDialectFor is the dialect of a task's spec.
func adbpgDialectFor(spec *proto.TaskSpec) *Dialect {
	d := ADBPGDialect(nil, false)
	if cfg, ok := spec.Destination.Config.(*ADBPGConfig); ok {
		d.adbpg.deleteInsert = cfg.Upsert == UpsertDeleteInsert
	}
	for i, o := range spec.Objects {
		if _, ok := d.adbpg.entries[o.Schema]; !ok {
			d.adbpg.entries[o.Schema] = i
		}
		opts, ok := o.Options.(*ADBPGObjectOptions)
		if !ok {
			continue
		}
		for table, cols := range opts.DistributionKey {
			t := proto.TableID{Schema: o.Schema, Name: table}
			d.adbpg.keys[t] = cols
			d.adbpg.fields[t] = fmt.Sprintf("objects[%d].distribution_key.%s", i, table)
		}
	}
	return d
}

// Precheck runs the PostgreSQL destination's checks, then AnalyticDB's:
// the server, heap storage of the tables it writes into, distribution
// keys, and what is created differently from the source.
func (adbpgDestination) Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	d := adbpgDialectFor(spec)
	// PostGIS's types are carried as text: the server need not have it.
	facts := *src
	facts.TypeExtensions = slices.DeleteFunc(slices.Clone(src.TypeExtensions), func(e string) bool { return strings.HasPrefix(e, "postgis") })
	p := &prechecker{spec: spec, src: &facts, Checks: c}
	p.destination(ctx, src.Tables)
	conn, err := pgconfig.Connect(ctx, configOf(spec).ConnDSN(), "sluice precheck")
	if err != nil {
		return // destination.connect said why
	}
	defer conn.Close(context.Background())
	if err := d.detect(ctx, conn); err != nil {
		c.Fail("destination.server", err.Error(), "")
		return
	}
	p.adbpgServer(d)
	p.adbpgStorage(ctx, conn, d, src.Tables)
	p.adbpgTables(d, src)
}

// adbpgServer says what the server is and how upserts are written.
func (p *prechecker) adbpgServer(d *Dialect) {
	what := fmt.Sprintf("the server is Greenplum (server_version_num %d)", d.srv.version)
	if !d.srv.greenplum {
		what = fmt.Sprintf("the server is not Greenplum (server_version_num %d): tables are created without distribution clauses", d.srv.version)
	}
	if d.srv.onConflict {
		p.Pass("destination.server", what+"; rows that may exist are written with INSERT ... ON CONFLICT")
		return
	}
	why := "it has no INSERT ... ON CONFLICT"
	if d.adbpg.deleteInsert {
		why = "upsert: delete_insert"
	}
	p.Pass("destination.server", what+"; "+why+": rows that may exist are written as DELETE + INSERT in one transaction, and the position tables with UPDATE, then INSERT of what is missing")
}

// adbpgStorage refuses append-optimized tables among those the task
// writes into: they have no unique indexes, and the apply changes single
// rows. The tables Sluice creates are heap tables.
func (p *prechecker) adbpgStorage(ctx context.Context, conn *pgx.Conn, d *Dialect, tables []proto.TableID) {
	const id = "destination.storage"
	names := p.spec.Names()
	targets := make([]string, len(tables))
	for i, t := range tables {
		targets[i] = tableName(names.Table(t))
	}
	query := `SELECT c.oid::regclass::text FROM unnest($1::text[]) AS t(name) JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name)
		JOIN pg_catalog.pg_am am ON am.oid = c.relam WHERE am.amname IN ('ao_row', 'ao_column') ORDER BY 1`
	fix := "ALTER TABLE %s SET ACCESS METHOD heap;"
	if !d.srv.atLeast(120000) {
		// Greenplum 6 keeps storage in relstorage: a(ppend-optimized), c(olumn).
		query = `SELECT c.oid::regclass::text FROM unnest($1::text[]) AS t(name) JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name)
			WHERE c.relstorage IN ('a', 'c') ORDER BY 1`
		fix = "ALTER TABLE %s SET WITH (REORGANIZE=true, appendonly=false);"
	}
	rows, err := conn.Query(ctx, query, targets)
	var ao []string
	if err == nil {
		ao, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		p.Fail(id, "cannot read the storage of the destination's tables: "+err.Error(), "")
		return
	}
	if len(ao) > 0 {
		fixes := make([]string, len(ao))
		for i, t := range ao {
			fixes[i] = fmt.Sprintf(fix, t)
		}
		p.Fail(id, "these destination tables are append-optimized, which the apply cannot write (no unique keys, no single-row updates): "+strings.Join(ao, ", "),
			"make them heap tables: "+strings.Join(fixes, " ")+" (or drop them and let schema sync create them)")
		return
	}
	p.Pass(id, "the tables Sluice creates are heap tables, whatever the server's default storage; none of the tables it writes into is append-optimized")
}

// adbpgTables checks distribution keys against the source's keys, and
// says what is created differently from the source.
func (p *prechecker) adbpgTables(d *Dialect, src *proto.SourceFacts) {
	if src.Defs == nil {
		return // the source's checks said why its schema could not be read
	}
	selected := map[proto.TableID]bool{}
	var failed bool
	var byKey, chosen, random int
	var fks, excl []string
	var mapped, computed []string
	names := p.spec.Names()
	for i := range src.Defs {
		t := &src.Defs[i]
		selected[t.ID] = true
		dist, err := d.distribution(t)
		switch {
		case err != nil:
			failed = true
			e := err.(*distError)
			p.Fail("destination.distribution_key", e.Error(), e.Fix)
		case len(dist) == 0:
			random++
		default:
			if _, ok := d.adbpg.keys[t.ID]; ok {
				chosen++
			} else {
				byKey++
			}
		}
		for _, k := range t.Constraints {
			switch k.Kind {
			case proto.ConstraintForeignKey:
				fks = append(fks, k.Name+" on "+t.ID.String())
			case proto.ConstraintExclusion:
				excl = append(excl, k.Name+" on "+t.ID.String())
			}
		}
		for _, c := range t.Columns {
			if typ, why := d.adbpgType(c, slices.Contains(dist, c.Name)); why != "" {
				mapped = append(mapped, fmt.Sprintf("%s.%s %s as %s (%s)", t.ID, quoteIfNeeded(c.Name), c.Type, typ, why))
			}
			if c.Generated == "" {
				continue
			}
			computed = append(computed, t.ID.String()+"."+quoteIfNeeded(c.Name))
			for _, num := range c.Uses {
				if used, ok := t.Column(num); ok && names.Column(t.ID, used.Name) != used.Name {
					failed = true
					p.Fail("destination.generated_columns", fmt.Sprintf("the generated column %s of %s reads column %q, which the task renames to %q: Sluice computes the column at AnalyticDB from the source's expression, which names the source's columns",
						quoteIfNeeded(c.Name), t.ID, used.Name, names.Column(t.ID, used.Name)), "keep the names of the columns generated columns read (rename and name_case)")
				}
			}
		}
	}
	for t, field := range d.adbpg.fields {
		if !selected[t] {
			failed = true
			p.Fail("destination.distribution_key", fmt.Sprintf("%s: %s is not a table the task syncs", field, t), "name a selected table, by its source name")
		}
	}
	if !failed {
		p.Pass("destination.distribution_key", fmt.Sprintf("every table's distribution key lies inside its primary and unique keys: %d distributed by their primary (or unique) key, %d by distribution_key, %d randomly (no key)", byKey, chosen, random))
	}
	if len(fks)+len(excl) > 0 {
		var parts []string
		if len(fks) > 0 {
			parts = append(parts, fmt.Sprintf("%d foreign keys (%s)", len(fks), joinSome(fks)))
		}
		if len(excl) > 0 {
			parts = append(parts, fmt.Sprintf("%d exclusion constraints (%s)", len(excl), joinSome(excl)))
		}
		p.Warn("destination.no_foreign_keys", "not created at AnalyticDB, which does not enforce them: "+strings.Join(parts, "; "), "nothing to change: the source enforces them, and rows arrive as the source committed them; acknowledge the warning to go on")
	}
	if len(mapped) > 0 {
		p.Pass("destination.type_mapping", "carried as text, each value in its exact text form (cast it in queries): "+joinSome(mapped))
	}
	identity := 0
	for i := range src.Defs {
		for _, c := range src.Defs[i].Columns {
			if c.Identity != 0 {
				identity++
			}
		}
	}
	if identity+len(computed) > 0 {
		msg := fmt.Sprintf("%d identity columns are plain columns at AnalyticDB holding the source's values", identity)
		if len(computed) > 0 {
			msg += fmt.Sprintf("; %d generated columns are plain columns Sluice computes after each write from the source's expression: %s", len(computed), joinSome(computed))
		}
		p.Pass("destination.generated_columns", msg)
	}
}

// joinSome lists up to ten items, and how many more there are.
func joinSome(items []string) string {
	if len(items) <= 10 {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:10], ", ") + fmt.Sprintf(" and %d more", len(items)-10)
}

// quoteIfNeeded is a name as PostgreSQL's messages show it.
func quoteIfNeeded(name string) string {
	s := proto.TableID{Schema: "x", Name: name}.String()
	return strings.TrimPrefix(s, "x.")
}
