package postgres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/secret"
	"github.com/sluicedb/sluice/proto"
)

// PolarDBO is the PolarDB for PostgreSQL (Compatible with Oracle)
// destination (destination.type: polardb-o): a PostgreSQL server in
// Oracle mode, written by the PostgreSQL sink with the polardb-o dialect.
// It syncs what the postgres type does (keys, foreign keys enforced as
// there, sequences, and the guide's objects: views, procedures,
// functions, rules, sequences, extensions, triggers, aggregates, indexes,
// operators, domains; materialized views and comments too), with three
// differences:
//
//   - the port is 1521 when the DSN names none (PolarDB-O's default);
//   - in Oracle mode DATE names a timestamp (TIMESTAMP(0)): a source
//     column of PostgreSQL's date is created, and its values cast, as
//     pg_catalog.date, which keeps it a date;
//   - key and index column lists Sluice renders quote every column, as
//     the source's catalog spells it: a name that is a keyword only in
//     Oracle mode (level, rownum, number, ...) stays a name.
var PolarDBO apply.Destination = polarDBODestination{}

type polarDBODestination struct{}

// PolarDBODefaultPort is the port a polardb-o DSN without one connects
// to.
const PolarDBODefaultPort = 1521

// PolarDBOConfig is the polardb-o destination's block:
//
//	destination: { type: polardb-o, dsn: "postgres://app@pc-xxx.o.polardb.rds.aliyuncs.com/wh", password_file: /etc/sluice/wh.pw }
type PolarDBOConfig struct {
	DSN          string `yaml:"dsn,omitempty" json:"dsn,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
}

// postgresConfig is the block as the PostgreSQL sink connects with it:
// port 1521 where the DSN has none.
func (c *PolarDBOConfig) postgresConfig() *Config {
	return &Config{DSN: WithDefaultPort(c.DSN, PolarDBODefaultPort), PasswordFile: c.PasswordFile}
}

// String is the DSN (shown on a redacted spec).
func (c *PolarDBOConfig) String() string { return c.DSN }

// Secrets is the DSN's password (proto.DestinationConfig).
func (c *PolarDBOConfig) Secrets() []proto.SecretField {
	return []proto.SecretField{{Name: "dsn", Value: &c.DSN, Kind: proto.SecretInDSN}}
}

// Validate checks the block and the objects entries' keys (those of the
// postgres type: partitions, refresh).
func (c *PolarDBOConfig) Validate(spec *proto.TaskSpec, add proto.AddProblem) {
	validateDSN(c.DSN, c.PasswordFile, "postgres://user:pass@host:1521/db", add)
	for i := range spec.Objects {
		if o, ok := spec.Objects[i].Options.(*ObjectOptions); ok {
			o.validate(i, add)
		}
	}
}

func (polarDBODestination) Kind() proto.DestinationKind {
	return proto.DestinationKind{
		Type:             "polardb-o",
		NewConfig:        func() proto.DestinationConfig { return &PolarDBOConfig{} },
		NewObjectOptions: func() proto.ObjectOptions { return &ObjectOptions{} },
	}
}

func (polarDBODestination) Capabilities() apply.Capabilities {
	return apply.Capabilities{SchemaSync: true, RenamesAfterLoad: true, DDL: true, KeepsExistingTables: true, Sequences: true}
}

// Plan lists schema sync's statements at PolarDB-O (apply.Planner).
func (polarDBODestination) Plan(spec *proto.TaskSpec, s *proto.Schema, plan *proto.TaskPlan) {
	o := schemaOptions(spec)
	o.Dialect = PolarDBODialect()
	planSchema(spec, polarDBOSchema(s), plan, o)
}

// Open opens a PostgreSQL sink with the polardb-o dialect.
func (polarDBODestination) Open(ctx context.Context, spec *proto.TaskSpec, use apply.Use) (apply.TaskSink, error) {
	opts := sinkOptions(spec, use)
	opts.Dialect = PolarDBODialect()
	return Open(ctx, opts)
}

// Precheck runs the PostgreSQL destination's checks, and says how the
// connection and the types are taken.
func (polarDBODestination) Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	p := &prechecker{spec: spec, src: src, Checks: c}
	if cfg, ok := spec.Destination.Config.(*PolarDBOConfig); ok && cfg.postgresConfig().DSN != cfg.DSN {
		c.Pass("destination.port", fmt.Sprintf("the DSN names no port: Sluice connects to PolarDB-O's default, %d", PolarDBODefaultPort))
	}
	p.destination(ctx, src.Tables)
	var dates []string
	cased := map[string][]string{}
	for i := range src.Defs {
		t := &src.Defs[i]
		for _, col := range t.Columns {
			if name, _ := baseTypeName(col.Type); name == "date" && col.TypeOID != 0 && (col.TypeOID == dateOID || col.TypeOID == dateArrayOID) {
				dates = append(dates, t.ID.String()+"."+quoteIfNeeded(col.Name))
			}
		}
		if folded := strings.ToLower(t.ID.Name); folded == t.ID.Name || strings.ToUpper(t.ID.Name) == t.ID.Name {
			key := t.ID.Schema + "." + folded
			cased[key] = append(cased[key], t.ID.String())
		}
	}
	if len(dates) > 0 {
		p.Pass("destination.date_columns", fmt.Sprintf("%d date columns are created as pg_catalog.date (Oracle mode's DATE is a timestamp): %s", len(dates), joinSome(dates)))
	}
	var clash []string
	for _, names := range cased {
		if len(names) > 1 {
			clash = append(clash, strings.Join(names, " and "))
		}
	}
	if len(clash) > 0 {
		p.Warn("destination.names", "tables whose names differ only in case become one table where PolarDB's case insensitivity is on: "+joinSome(clash),
			"keep the cluster's case insensitivity off, or rename one of each pair (objects[].rename)")
	}
}

func (polarDBODestination) Classify(err error) proto.ErrorKind { return pgconfig.Classify(err) }

func (polarDBODestination) Endpoints(spec *proto.TaskSpec) []string {
	return destination{}.Endpoints(spec)
}

// PolarDBODialect is the PolarDB-O dialect.
func PolarDBODialect() *Dialect { return &Dialect{kind: kindPolarDBO} }

const (
	dateOID      = 1082
	dateArrayOID = 1182
)

// polarDBOSchema is sc as PolarDB-O creates it.
func polarDBOSchema(sc *proto.Schema) *proto.Schema {
	out := *sc
	out.Tables = make([]proto.TableDef, len(sc.Tables))
	for i := range sc.Tables {
		out.Tables[i] = *polarDBOTable(&sc.Tables[i])
	}
	return &out
}

// polarDBOTable is table t as PolarDB-O creates it (a copy): date
// columns as pg_catalog.date, key and index columns quoted.
func polarDBOTable(t *proto.TableDef) *proto.TableDef {
	c := cloneTable(t)
	for i := range c.Columns {
		col := &c.Columns[i]
		switch col.TypeOID {
		case dateOID:
			col.Type = "pg_catalog.date"
		case dateArrayOID:
			col.Type = "pg_catalog.date[]"
		}
	}
	for i := range c.Constraints {
		k := &c.Constraints[i]
		switch k.Kind {
		case proto.ConstraintPrimaryKey, proto.ConstraintUnique:
			k.Def = quoteFirstList(k.Def)
			if rest, ok := strings.CutPrefix(k.Def[strings.IndexByte(k.Def, ')')+1:], " INCLUDE "); ok {
				k.Def = k.Def[:len(k.Def)-len(rest)] + quoteFirstList(rest)
			}
		case proto.ConstraintForeignKey:
			if k.References != nil {
				// Rendered from its structure, every name quoted.
				k.Def = foreignKeySQL(k, &proto.NameMap{})
			}
		}
	}
	for i := range c.Indexes {
		c.Indexes[i].Def = quoteFirstList(c.Indexes[i].Def)
	}
	for i := range c.Partitions {
		p := &c.Partitions[i]
		p.Indexes = append([]proto.IndexDef(nil), p.Indexes...)
		for j := range p.Indexes {
			p.Indexes[j].Def = quoteFirstList(p.Indexes[j].Def)
		}
	}
	return c
}

// quoteFirstList quotes the columns of a definition's first list (a key's
// or an index's): an element that starts with a bare column name gets it
// double-quoted; expressions are left as PostgreSQL printed them.
func quoteFirstList(def string) string {
	start, end, ok := firstListSpan(def)
	if !ok {
		return def
	}
	elems := splitTopLevel(def[start+1 : end])
	for i, e := range elems {
		name, rest, ok := leadingIdent(e)
		if !ok || strings.HasPrefix(e, `"`) || (rest != "" && !strings.HasPrefix(rest, " ")) {
			continue
		}
		elems[i] = quoteDDLIdent(name) + rest
	}
	return def[:start+1] + strings.Join(elems, ", ") + def[end:]
}

// polarDBOCastType keeps date a date in the apply's casts: in Oracle mode
// a bare date would name TIMESTAMP(0).
func polarDBOCastType(typ string) string {
	switch typ {
	case "date":
		return "pg_catalog.date"
	case "date[]":
		return "pg_catalog.date[]"
	}
	return typ
}

// WithDefaultPort is dsn with port where it names no port: a URL's hosts
// without one get ":port" (a URL without a host gets "port=" in its
// query), a key/value string without port= gets " port=<port>". Only
// the DSN's text is read: secret references stay as they are.
func WithDefaultPort(dsn string, port int) string {
	p := fmt.Sprint(port)
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		rest, ok := strings.CutPrefix(dsn, scheme)
		if !ok {
			continue
		}
		// A password sealed or referenced may hold / ? or @: the host
		// list is found in the DSN with its secrets replaced, then in
		// the DSN itself, after the user info.
		ph := strings.TrimPrefix(secret.Placeholder(dsn), scheme)
		auth := ph
		if i := strings.IndexAny(ph, "/?"); i >= 0 {
			auth = ph[:i]
		}
		if _, query, ok := strings.Cut(ph, "?"); ok {
			if q, err := url.ParseQuery(query); err == nil && q.Get("port") != "" {
				return dsn
			}
		}
		user := strings.LastIndex(auth, "@") + 1
		hosts := auth[user:]
		if hosts == "" {
			sep := "?"
			if strings.Contains(rest, "?") {
				sep = "&"
			}
			return dsn + sep + "port=" + p
		}
		at := 0
		if user > 0 {
			at = hostsAfterUser(rest, hosts)
			if at < 0 {
				return dsn
			}
		} else if !strings.HasPrefix(rest, hosts) {
			return dsn
		}
		parts := strings.Split(hosts, ",")
		for i, h := range parts {
			if h != "" && !hasPort(h) {
				parts[i] = h + ":" + p
			}
		}
		return scheme + rest[:at] + strings.Join(parts, ",") + rest[at+len(hosts):]
	}
	if keyValuePort.MatchString(dsn) || dsn == "" {
		return dsn
	}
	return dsn + " port=" + p
}

// hostsAfterUser finds the host list in a URL's text after its scheme:
// where "@" + hosts ends the user info and a path, a query or the end
// follows (-1 when it is not there).
func hostsAfterUser(rest, hosts string) int {
	for from := 0; ; {
		i := strings.Index(rest[from:], "@"+hosts)
		if i < 0 {
			return -1
		}
		start := from + i + 1
		end := start + len(hosts)
		if end == len(rest) || rest[end] == '/' || rest[end] == '?' {
			return start
		}
		from = start
	}
}

// keyValuePort finds port= in a key/value DSN.
var keyValuePort = regexp.MustCompile(`(^|\s)port\s*=`)

// hasPort reports whether a URL host ("h", "h:5432", "[::1]:5432")
// names its port.
func hasPort(h string) bool {
	if strings.HasPrefix(h, "[") {
		return strings.Contains(h, "]:")
	}
	return strings.Contains(h, ":")
}
