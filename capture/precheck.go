package capture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks the source for a task before anything is created for
// it, creating nothing: the connection, its settings and privileges, the
// slot and publication names, the selection, each table's replica
// identity and privileges, the row filters and column lists. It returns
// what the destination's checks need to know of the source.
func Precheck(ctx context.Context, spec *proto.TaskSpec, c *proto.Checks) *proto.SourceFacts {
	p := &prechecker{Checks: c, spec: spec, facts: &proto.SourceFacts{}}
	p.facts.Tables = p.source(ctx)
	return p.facts
}

// prechecker runs the source's checks of one precheck.
type prechecker struct {
	*proto.Checks
	spec  *proto.TaskSpec
	facts *proto.SourceFacts
}

func (p *prechecker) source(ctx context.Context) []proto.TableID {
	conn, err := pgconfig.Connect(ctx, p.spec.Source.ConnDSN(), "sluice precheck")
	if err != nil {
		msg, fix := pgconfig.ConnectProblem("source", err)
		p.Fail("source.connect", "cannot connect to the source: "+msg, fix)
		return nil
	}
	defer conn.Close(context.Background())
	p.Pass("source.connect", "connected as "+conn.Config().User)

	var walLevel, dbName, user string
	var super, repl, canCreate bool
	var freeSlots, freeSenders int
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_database(), current_user,
		r.rolsuper, r.rolreplication, has_database_privilege(current_database(), 'CREATE'),
		current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
		current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &dbName, &user, &super, &repl, &canCreate, &freeSlots, &freeSenders)
	if err != nil {
		p.Fail("source.settings", "cannot read the source's settings: "+err.Error(), "")
		return nil
	}
	// Every task needs a replication slot: its own for incremental sync,
	// a temporary one whose snapshot a copy-only task reads.
	incremental := p.spec.Sync.IncrementalEnabled()
	if walLevel != "logical" {
		p.Fail("source.wal_level", fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", walLevel),
			"set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")
	} else {
		p.Pass("source.wal_level", "wal_level is logical")
	}
	if !super && !repl {
		p.Fail("source.privileges.replication", fmt.Sprintf("user %q may not use replication", user),
			fmt.Sprintf("ALTER ROLE %s REPLICATION;", pgx.Identifier{user}.Sanitize()))
	} else {
		p.Pass("source.privileges.replication", fmt.Sprintf("user %q may use replication", user))
	}
	if !super && !canCreate {
		p.Fail("source.privileges.create", fmt.Sprintf("user %q may not create objects in database %q (the publication)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	} else {
		p.Pass("source.privileges.create", fmt.Sprintf("user %q may create objects in database %q", user, dbName))
	}
	if p.spec.Sync.DDLEnabled() {
		// PostgreSQL 15 lets only superusers create event triggers.
		if !super {
			p.Fail("source.privileges.event_trigger", fmt.Sprintf("sync.ddl needs event triggers in the source, which only a superuser may create; user %q is not one", user),
				fmt.Sprintf("ALTER ROLE %s SUPERUSER; or set sync.ddl: false (schema changes then stop the task at the first changed row)", pgx.Identifier{user}.Sanitize()))
		} else {
			p.Pass("source.privileges.event_trigger", fmt.Sprintf("user %q may create the DDL capture's event triggers", user))
		}
	}
	if freeSlots < 1 {
		p.Fail("source.replication_slots", "no free replication slot (max_replication_slots is used up)",
			"raise max_replication_slots in postgresql.conf and restart, or drop unused slots: SELECT pg_drop_replication_slot('name')")
	} else {
		p.Pass("source.replication_slots", fmt.Sprintf("%d free replication slots", freeSlots))
	}
	if freeSenders < 1 {
		p.Fail("source.wal_senders", "no free WAL sender (max_wal_senders is used up)", "raise max_wal_senders in postgresql.conf and restart PostgreSQL")
	} else {
		p.Pass("source.wal_senders", fmt.Sprintf("%d free WAL senders", freeSenders))
	}
	if incremental {
		slot := proto.SlotName(p.spec.Name)
		info, err := LookupSlot(ctx, conn, p.spec.Name)
		if err == nil && info.Exists {
			p.Fail("source.slot_name", fmt.Sprintf("a replication slot named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: SELECT pg_drop_replication_slot('%s')", slot))
		} else if err == nil {
			p.Pass("source.slot_name", fmt.Sprintf("no replication slot %s yet", slot))
		}
		var pubExists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, slot).Scan(&pubExists); err == nil && pubExists {
			p.Fail("source.publication", fmt.Sprintf("a publication named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: DROP PUBLICATION %s", pgx.Identifier{slot}.Sanitize()))
		} else {
			p.Pass("source.publication", fmt.Sprintf("no publication %s yet", slot))
		}
	}
	if walLevel == "logical" && (super || repl) {
		p.replicationConnection(ctx)
	}
	p.publications(ctx, conn)

	tables, err := ListTables(ctx, conn, p.spec.Objects)
	var selErr *SelectionError
	switch {
	case errors.As(err, &selErr):
		if len(selErr.Missing) > 0 {
			p.Fail("source.objects", "not found in the source: "+strings.Join(selErr.Missing, ", "), "fix the names under objects")
		}
		if len(selErr.Unsupported) > 0 {
			p.Fail("source.objects", "cannot be synced yet: "+strings.Join(selErr.Unsupported, ", "), "leave them out of objects (list the tables to sync)")
		}
		return nil
	case err != nil:
		p.Fail("source.objects", err.Error(), "")
		return nil
	case len(tables) == 0:
		p.Fail("source.objects", "the selection has no tables", "list a schema with tables, or the tables themselves, under objects")
		return nil
	}
	p.Pass("source.objects", fmt.Sprintf("%d tables selected", len(tables)))
	p.tableChecks(ctx, conn, tables, super)
	p.filters(ctx, conn, tables)
	p.sequences(ctx, conn, tables)
	// The definitions, for the destination's checks; a failure here is
	// the schema sync's to report, so none is added.
	if sc, err := ReadSchema(ctx, conn, p.spec.Objects); err == nil {
		p.precheckTransforms(ctx, conn, sc)
		p.facts.Defs = sc.Tables
	}
	return tables
}

// replicationConnection checks that pg_hba.conf lets the user open a
// replication session, which it governs apart from normal ones.
func (p *prechecker) replicationConnection(ctx context.Context) {
	cfg, err := pgconfig.ParseReplication(p.spec.Source.ConnDSN(), "sluice precheck")
	if err != nil {
		return
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		_, err = pglogrepl.IdentifySystem(ctx, conn)
		conn.Close(context.Background())
	}
	if err != nil {
		msg, fix := pgconfig.ConnectProblem("source", err)
		if fix == "" {
			fix = "allow replication connections for this user in pg_hba.conf (a line with database \"replication\"), then reload PostgreSQL"
		}
		p.Fail("source.replication_connection", "cannot open a replication session: "+msg, fix)
		return
	}
	p.Pass("source.replication_connection", "a replication session opens")
}

func (p *prechecker) tableChecks(ctx context.Context, conn *pgx.Conn, tables []proto.TableID, super bool) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	rows, err := conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relreplident,
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		has_table_privilege(c.oid, 'SELECT'),
		pg_has_role(c.relowner, 'USAGE'),
		COALESCE((SELECT sum(pg_total_relation_size(pt.relid))::int8 FROM pg_partition_tree(c.oid) pt), pg_total_relation_size(c.oid))
		FROM unnest($1::text[]) AS t(name) JOIN pg_class c ON c.oid = t.name::regclass JOIN pg_namespace n ON n.oid = c.relnamespace`, names)
	if err != nil {
		p.Fail("source.tables", "cannot inspect the tables: "+err.Error(), "")
		return
	}
	var noIdentity, noSelect, notOwned []string
	for rows.Next() {
		var name string
		var ident byte
		var hasPK, canSelect, owns bool
		var size int64
		if err := rows.Scan(&name, &ident, &hasPK, &canSelect, &owns, &size); err != nil {
			p.Fail("source.tables", err.Error(), "")
			return
		}
		p.facts.Bytes += size
		if ident == proto.IdentityNothing || (ident == proto.IdentityDefault && !hasPK) {
			noIdentity = append(noIdentity, name)
		}
		if !canSelect {
			noSelect = append(noSelect, name)
		}
		if !owns && !super {
			notOwned = append(notOwned, name)
		}
	}
	if err := rows.Err(); err != nil {
		p.Fail("source.tables", err.Error(), "")
		return
	}
	// A partitioned table's changes come from its partitions: each needs
	// an identity of its own (REPLICA IDENTITY FULL does not propagate).
	leaves, err := conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM unnest($1::text[]) AS t(name) CROSS JOIN LATERAL pg_partition_tree(t.name::regclass) pt
		JOIN pg_class c ON c.oid = pt.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE pt.isleaf AND pt.level > 0 AND (c.relreplident = 'n' OR (c.relreplident = 'd'
		  AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
		ORDER BY 1`, names)
	if err == nil {
		var bare []string
		bare, err = pgx.CollectRows(leaves, pgx.RowTo[string])
		noIdentity = append(noIdentity, bare...)
	}
	if err != nil {
		p.Fail("source.tables", "cannot inspect the partitions: "+err.Error(), "")
		return
	}
	incremental := p.spec.Sync.IncrementalEnabled()
	switch {
	case !incremental:
	case len(noIdentity) > 0:
		p.facts.NoIdentity = noIdentity
		fixes := make([]string, len(noIdentity))
		for i, n := range noIdentity {
			fixes[i] = IdentityFixStatement(n) + ";"
		}
		p.Fail(CheckReplicaIdentity, "tables without a primary key and without REPLICA IDENTITY FULL cannot have their updates and deletes replicated: "+strings.Join(noIdentity, ", "),
			"add a primary key, or run (or let sluice precheck --fix run): "+strings.Join(fixes, " "))
	default:
		p.Pass(CheckReplicaIdentity, "every table has a primary key or REPLICA IDENTITY FULL")
	}
	if len(noSelect) > 0 {
		p.Fail("source.privileges.select", "no SELECT privilege on: "+strings.Join(noSelect, ", "), "GRANT SELECT ON those tables TO the source user")
	} else {
		p.Pass("source.privileges.select", "every table can be read")
	}
	switch {
	case !incremental:
	case len(notOwned) > 0:
		p.Fail("source.privileges.owner", "a publication can only include tables the user owns (or a superuser): "+strings.Join(notOwned, ", "),
			"connect as the tables' owner, or GRANT the owning role to the source user")
	default:
		p.Pass("source.privileges.owner", "the user may publish every table")
	}
	p.Pass("source.size", fmt.Sprintf("the selected tables take %s in the source", proto.FormatBytes(p.facts.Bytes)))
	exts, err := conn.Query(ctx, `SELECT DISTINCT e.extname FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = COALESCE(NULLIF(t.typelem, 0), t.oid) AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid
		WHERE a.attrelid = ANY($1::text[]::regclass[]) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`, names)
	if err == nil {
		p.facts.TypeExtensions, err = pgx.CollectRows(exts, pgx.RowTo[string])
	}
	if err == nil && p.spec.Sync.SchemaEnabled() {
		// And those the working copy's objects use.
		var objExts pgx.Rows
		var tableOIDs []uint32
		err = conn.QueryRow(ctx, `SELECT coalesce(array_agg(t::regclass::oid), '{}') FROM unnest($1::text[]) t`, names).Scan(&tableOIDs)
		if err == nil {
			objExts, err = conn.Query(ctx, objectExtensionsSQL, wholeSchemas(p.spec.Objects), tableOIDs)
		}
		if err == nil {
			var more []string
			if more, err = pgx.CollectRows(objExts, pgx.RowTo[string]); err == nil {
				for _, e := range more {
					if !slices.Contains(p.facts.TypeExtensions, e) {
						p.facts.TypeExtensions = append(p.facts.TypeExtensions, e)
					}
				}
				slices.Sort(p.facts.TypeExtensions)
			}
		}
	}
	if err != nil {
		p.Fail("source.tables", "cannot list the extensions the tables' types and objects come from: "+err.Error(), "")
	}
}

// filters tries each row filter and column list as the publication will
// hold it, in a transaction rolled back: PostgreSQL checks them then. A
// row filter the publication cannot carry (its columns not all in the
// replica identity) is evaluated by the capture instead (filter.go): it
// must then be valid over the published columns. A column list must
// cover the replica identity, or PostgreSQL refuses the application's
// UPDATE and DELETE at the source: EXPLAIN of each shows that without
// running it.
func (p *prechecker) filters(ctx context.Context, conn *pgx.Conn, tables []proto.TableID) {
	selected := map[string]bool{}
	for _, t := range tables {
		selected[t.Key()] = true
	}
	var unknown []string
	for _, o := range p.spec.Objects {
		for kind, names := range map[string][]string{"filter": slices.Sorted(maps.Keys(o.Filter)), "operations": slices.Sorted(maps.Keys(o.Operations)), "columns": slices.Sorted(maps.Keys(o.Columns))} {
			for _, name := range names {
				if !selected[proto.TableID{Schema: o.Schema, Name: name}.Key()] {
					unknown = append(unknown, fmt.Sprintf("%s of %s.%s", kind, o.Schema, name))
				}
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		p.Fail("source.objects", "these name tables that are not selected (or do not exist): "+strings.Join(unknown, ", "), "fix the table names under filter, operations and columns")
	}
	var nFilters, nColumns int
	var byPublication, inPipeline []string
	copyOnly := 0 // without incremental sync, only the full copy filters
	for _, t := range tables {
		name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
		if f := p.spec.RowFilter(t); f != "" {
			nFilters++
			inPub, err := p.tryFilter(ctx, conn, t, f)
			if err != nil {
				p.publicationProblem("source.filters", err, fmt.Sprintf("the row filter of %s, (%s),", t, f),
					"write one boolean condition on the table's own (selected) columns",
					fmt.Sprintf("give %s a replica identity (a primary key)", name))
			} else if inPub {
				byPublication = append(byPublication, t.String())
			} else if p.spec.Sync.IncrementalEnabled() {
				inPipeline = append(inPipeline, t.String())
			} else {
				copyOnly++
			}
		}
		if cols := p.spec.SelectedColumns(t); len(cols) > 0 {
			nColumns++
			quoted := make([]string, len(cols))
			for i, c := range cols {
				quoted[i] = pgx.Identifier{c}.Sanitize()
			}
			list := strings.Join(quoted, ", ")
			if err := p.tryPublished(ctx, conn, t, name+" ("+list+")", "SELECT "+list+" FROM "+name+" LIMIT 0"); err != nil {
				p.publicationProblem("source.columns", err, fmt.Sprintf("the columns of %s, (%s),", t, list),
					"name existing columns of the table",
					"include every primary-key column in the list (a table with REPLICA IDENTITY FULL cannot leave columns out)")
			}
		}
	}
	if nFilters > 0 && len(byPublication)+len(inPipeline)+copyOnly == nFilters {
		msg := fmt.Sprintf("%d row filters are valid", nFilters)
		if len(byPublication) > 0 {
			msg += "; filtered by the publication (columns in the replica identity): " + strings.Join(byPublication, ", ")
		}
		if len(inPipeline) > 0 {
			msg += "; filtered in the pipeline (the capture evaluates each changed row at the source): " + strings.Join(inPipeline, ", ")
		}
		p.Pass("source.filters", msg)
	}
	if nColumns > 0 {
		p.Pass("source.columns", fmt.Sprintf("%d column lists are valid", nColumns))
	}
}

// tryFilter checks a row filter as the full copy and the capture will
// run it, and says whether the publication carries it (its columns are
// all in the replica identity) or the capture evaluates it. PostgreSQL
// itself checks that the filter is one boolean expression of the
// table: a prepared statement holds one statement, and WHERE takes only
// a boolean. Evaluated by the capture, the filter sees the published
// columns only: the selected ones, never generated ones.
func (p *prechecker) tryFilter(ctx context.Context, conn *pgx.Conn, t proto.TableID, f string) (bool, error) {
	name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	cond, err := proto.FilterCondition(f)
	if err == nil {
		err = prepareOnly(ctx, conn, "SELECT 1 FROM "+name+" WHERE "+cond)
	}
	if err != nil || !p.spec.Sync.IncrementalEnabled() {
		return false, err
	}
	inPub, err := PublicationFilters(ctx, conn, t, cond)
	if err != nil {
		return false, err
	}
	if inPub {
		return true, p.tryPublished(ctx, conn, t, name+" WHERE "+cond, "SELECT 1 FROM "+name+" WHERE "+cond+" LIMIT 0")
	}
	var cols string
	if sel := p.spec.SelectedColumns(t); len(sel) > 0 {
		quoted := make([]string, len(sel))
		for i, c := range sel {
			quoted[i] = pgx.Identifier{c}.Sanitize()
		}
		cols = strings.Join(quoted, ", ")
	} else if err := conn.QueryRow(ctx, publishedColumnsSQL, name).Scan(&cols); err != nil {
		return false, err
	}
	return false, p.tryPublished(ctx, conn, t, name, fmt.Sprintf("SELECT 1 FROM (SELECT %s FROM %s) AS %s WHERE %s LIMIT 0", cols, name, pgx.Identifier{t.Name}.Sanitize(), cond))
}

// publishedColumnsSQL lists the columns pgoutput sends of a table: all
// but generated ones.
const publishedColumnsSQL = `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''`

// prepareOnly has PostgreSQL parse and analyse sql as a prepared
// statement (one statement, its types checked), without running it.
func prepareOnly(ctx context.Context, conn *pgx.Conn, sql string) error {
	const name = "sluice_precheck_filter"
	if _, err := conn.Prepare(ctx, name, sql); err != nil {
		return err
	}
	return conn.Deallocate(ctx, name)
}

// tryPublished runs query, then, for incremental sync, creates a
// publication of item and explains an UPDATE and a DELETE of the table,
// all in a transaction rolled back.
func (p *prechecker) tryPublished(ctx context.Context, conn *pgx.Conn, t proto.TableID, item, query string) error {
	name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
	ops := p.spec.Operations(t)
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, query); err != nil {
			return err
		}
		if !p.spec.Sync.IncrementalEnabled() {
			return errRollback
		}
		if _, err := tx.Exec(ctx, "CREATE PUBLICATION sluice_precheck FOR TABLE "+item); err != nil {
			return err
		}
		return explainWrites(ctx, tx, name, ops)
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// publicationProblem reports what tryPublished found: the replica
// identity not covered (42P10), or an invalid filter or column list.
func (p *prechecker) publicationProblem(id string, err error, what, invalidFix, identityFix string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P10" {
		p.Fail(id, fmt.Sprintf("%s does not cover the replica identity: PostgreSQL would refuse UPDATE and DELETE on the table (%s)", what, pgErr.Detail), identityFix)
		return
	}
	p.Fail(id, fmt.Sprintf("%s cannot be published: %v", what, err), invalidFix)
}

// errRollback ends a transaction that must leave nothing behind.
var errRollback = errors.New("rolled back")
