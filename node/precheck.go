package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply/kafka"
	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a task before anything is created for it: every check
// with its id, its result (pass, warning, failure), what it found and how
// to fix it. It creates nothing in the source or the destination.
func Precheck(ctx context.Context, spec *proto.TaskSpec) *proto.PrecheckReport {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p := &prechecker{spec: spec, passed: map[string]string{}}
	tables := p.source(ctx)
	p.destination(ctx, tables)
	return p.report()
}

type prechecker struct {
	spec     *proto.TaskSpec
	problems []proto.Problem
	// ran lists the checks that ran, in order; passed what they found
	// when they found nothing wrong.
	ran    []string
	passed map[string]string
	// sourceBytes is the selected tables' size in the source (0: unknown);
	// typeExtensions the extensions their column types come from.
	sourceBytes    int64
	typeExtensions []string
}

// add records a failure of check.
func (p *prechecker) add(check, msg, fix string) {
	p.ran = append(p.ran, check)
	p.problems = append(p.problems, proto.Problem{Check: check, Result: proto.ResultFailure, Message: msg, Fix: fix})
}

// warn records a warning, which the user may acknowledge by its id.
func (p *prechecker) warn(check, msg, fix string) {
	p.ran = append(p.ran, check)
	p.problems = append(p.problems, proto.Problem{Check: check, Result: proto.ResultWarning, Message: msg, Fix: fix})
}

// pass records that check ran, and what it found, unless it also found a
// problem.
func (p *prechecker) pass(check, found string) {
	p.ran = append(p.ran, check)
	if _, ok := p.passed[check]; !ok {
		p.passed[check] = found
	}
}

// report lists every check once: its problems, or its pass.
func (p *prechecker) report() *proto.PrecheckReport {
	bad := map[string]bool{}
	for _, pr := range p.problems {
		bad[pr.Check] = true
	}
	r := &proto.PrecheckReport{}
	done := map[string]bool{}
	for _, id := range p.ran {
		if done[id] {
			continue
		}
		done[id] = true
		if !bad[id] {
			r.Checks = append(r.Checks, proto.Problem{Check: id, Result: proto.ResultPass, Message: p.passed[id]})
			continue
		}
		for _, pr := range p.problems {
			if pr.Check == id {
				r.Checks = append(r.Checks, pr)
			}
		}
	}
	return r
}

// connectProblem explains a failed connection in terms of what to change.
func connectProblem(side string, err error) (string, string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return pgErr.Message, fmt.Sprintf("check the user and password in %s.dsn", side)
		case "28000":
			return pgErr.Message, "allow this client in the server's pg_hba.conf (host/database/user), then reload PostgreSQL"
		case "3D000":
			return pgErr.Message, fmt.Sprintf("check the database name in %s.dsn", side)
		case "53300":
			return pgErr.Message, "the server has no free connections: raise max_connections or close idle sessions"
		}
		return pgErr.Message, ""
	}
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return err.Error(), fmt.Sprintf("check host and port in %s.dsn; is PostgreSQL running and listening there (listen_addresses, port)?", side)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return err.Error(), "the server did not answer in time: check the address and any firewall in between"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return err.Error(), fmt.Sprintf("check the host name in %s.dsn", side)
	}
	return err.Error(), ""
}

func (p *prechecker) source(ctx context.Context) []proto.TableID {
	conn, err := pgconfig.Connect(ctx, p.spec.Source.ConnDSN(), "sluice precheck")
	if err != nil {
		msg, fix := connectProblem("source", err)
		p.add("source.connect", "cannot connect to the source: "+msg, fix)
		return nil
	}
	defer conn.Close(context.Background())
	p.pass("source.connect", "connected as "+conn.Config().User)

	var walLevel, dbName, user string
	var super, repl, canCreate bool
	var freeSlots, freeSenders int
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_database(), current_user,
		r.rolsuper, r.rolreplication, has_database_privilege(current_database(), 'CREATE'),
		current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
		current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &dbName, &user, &super, &repl, &canCreate, &freeSlots, &freeSenders)
	if err != nil {
		p.add("source.settings", "cannot read the source's settings: "+err.Error(), "")
		return nil
	}
	// Every task needs a replication slot: its own for incremental sync,
	// a temporary one whose snapshot a copy-only task reads.
	incremental := p.spec.Sync.IncrementalEnabled()
	if walLevel != "logical" {
		p.add("source.wal_level", fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", walLevel),
			"set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")
	} else {
		p.pass("source.wal_level", "wal_level is logical")
	}
	if !super && !repl {
		p.add("source.privileges.replication", fmt.Sprintf("user %q may not use replication", user),
			fmt.Sprintf("ALTER ROLE %s REPLICATION;", pgx.Identifier{user}.Sanitize()))
	} else {
		p.pass("source.privileges.replication", fmt.Sprintf("user %q may use replication", user))
	}
	if !super && !canCreate {
		p.add("source.privileges.create", fmt.Sprintf("user %q may not create objects in database %q (the publication and the sluice.heartbeat table)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	} else {
		p.pass("source.privileges.create", fmt.Sprintf("user %q may create objects in database %q", user, dbName))
	}
	if p.spec.Sync.DDLEnabled() {
		// PostgreSQL 15 lets only superusers create event triggers.
		if !super {
			p.add("source.privileges.event_trigger", fmt.Sprintf("sync.ddl needs event triggers in the source, which only a superuser may create; user %q is not one", user),
				fmt.Sprintf("ALTER ROLE %s SUPERUSER; or set sync.ddl: false (schema changes then stop the task at the first changed row)", pgx.Identifier{user}.Sanitize()))
		} else {
			p.pass("source.privileges.event_trigger", fmt.Sprintf("user %q may create the DDL capture's event triggers", user))
		}
	}
	if freeSlots < 1 {
		p.add("source.replication_slots", "no free replication slot (max_replication_slots is used up)",
			"raise max_replication_slots in postgresql.conf and restart, or drop unused slots: SELECT pg_drop_replication_slot('name')")
	} else {
		p.pass("source.replication_slots", fmt.Sprintf("%d free replication slots", freeSlots))
	}
	if freeSenders < 1 {
		p.add("source.wal_senders", "no free WAL sender (max_wal_senders is used up)", "raise max_wal_senders in postgresql.conf and restart PostgreSQL")
	} else {
		p.pass("source.wal_senders", fmt.Sprintf("%d free WAL senders", freeSenders))
	}
	if incremental {
		slot := proto.SlotName(p.spec.Name)
		info, err := capture.LookupSlot(ctx, conn, p.spec.Name)
		if err == nil && info.Exists {
			p.add("source.slot_name", fmt.Sprintf("a replication slot named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: SELECT pg_drop_replication_slot('%s')", slot))
		} else if err == nil {
			p.pass("source.slot_name", fmt.Sprintf("no replication slot %s yet", slot))
		}
		var pubExists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, slot).Scan(&pubExists); err == nil && pubExists {
			p.add("source.publication", fmt.Sprintf("a publication named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: DROP PUBLICATION %s", pgx.Identifier{slot}.Sanitize()))
		} else {
			p.pass("source.publication", fmt.Sprintf("no publication %s yet", slot))
		}
	}
	if walLevel == "logical" && (super || repl) {
		p.replicationConnection(ctx)
	}

	tables, err := capture.ListTables(ctx, conn, p.spec.Objects)
	var selErr *capture.SelectionError
	switch {
	case errors.As(err, &selErr):
		if len(selErr.Missing) > 0 {
			p.add("source.objects", "not found in the source: "+strings.Join(selErr.Missing, ", "), "fix the names under objects")
		}
		if len(selErr.Unsupported) > 0 {
			p.add("source.objects", "cannot be synced yet: "+strings.Join(selErr.Unsupported, ", "), "leave them out of objects (list the tables to sync)")
		}
		return nil
	case err != nil:
		p.add("source.objects", err.Error(), "")
		return nil
	case len(tables) == 0:
		p.add("source.objects", "the selection has no tables", "list a schema with tables, or the tables themselves, under objects")
		return nil
	}
	p.pass("source.objects", fmt.Sprintf("%d tables selected", len(tables)))
	p.tableChecks(ctx, conn, tables, super)
	p.filters(ctx, conn, tables)
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
		msg, fix := connectProblem("source", err)
		if fix == "" {
			fix = "allow replication connections for this user in pg_hba.conf (a line with database \"replication\"), then reload PostgreSQL"
		}
		p.add("source.replication_connection", "cannot open a replication session: "+msg, fix)
		return
	}
	p.pass("source.replication_connection", "a replication session opens")
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
		p.add("source.tables", "cannot inspect the tables: "+err.Error(), "")
		return
	}
	var noIdentity, noSelect, notOwned []string
	for rows.Next() {
		var name string
		var ident byte
		var hasPK, canSelect, owns bool
		var size int64
		if err := rows.Scan(&name, &ident, &hasPK, &canSelect, &owns, &size); err != nil {
			p.add("source.tables", err.Error(), "")
			return
		}
		p.sourceBytes += size
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
		p.add("source.tables", err.Error(), "")
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
		p.add("source.tables", "cannot inspect the partitions: "+err.Error(), "")
		return
	}
	incremental := p.spec.Sync.IncrementalEnabled()
	switch {
	case !incremental:
	case len(noIdentity) > 0:
		fixes := make([]string, len(noIdentity))
		for i, n := range noIdentity {
			fixes[i] = "ALTER TABLE " + n + " REPLICA IDENTITY FULL;"
		}
		p.add("source.replica_identity", "tables without a primary key and without REPLICA IDENTITY FULL cannot have their updates and deletes replicated: "+strings.Join(noIdentity, ", "),
			"add a primary key, or run: "+strings.Join(fixes, " "))
	default:
		p.pass("source.replica_identity", "every table has a primary key or REPLICA IDENTITY FULL")
	}
	if len(noSelect) > 0 {
		p.add("source.privileges.select", "no SELECT privilege on: "+strings.Join(noSelect, ", "), "GRANT SELECT ON those tables TO the source user")
	} else {
		p.pass("source.privileges.select", "every table can be read")
	}
	switch {
	case !incremental:
	case len(notOwned) > 0:
		p.add("source.privileges.owner", "a publication can only include tables the user owns (or a superuser): "+strings.Join(notOwned, ", "),
			"connect as the tables' owner, or GRANT the owning role to the source user")
	default:
		p.pass("source.privileges.owner", "the user may publish every table")
	}
	p.pass("source.size", fmt.Sprintf("the selected tables take %s in the source", bytesText(p.sourceBytes)))
	exts, err := conn.Query(ctx, `SELECT DISTINCT e.extname FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = COALESCE(NULLIF(t.typelem, 0), t.oid) AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid
		WHERE a.attrelid = ANY($1::text[]::regclass[]) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`, names)
	if err == nil {
		p.typeExtensions, err = pgx.CollectRows(exts, pgx.RowTo[string])
	}
	if err != nil {
		p.add("source.tables", "cannot list the extensions the tables' types come from: "+err.Error(), "")
	}
}

// filters tries each row filter and column list as the publication will
// hold it, in a transaction rolled back: PostgreSQL checks them then. An
// UPDATE or DELETE of a published table also needs the filter's columns
// in its replica identity (the old row decides whether it leaves the
// filter), and a column list to cover the replica identity, or
// PostgreSQL refuses the application's UPDATE and DELETE at the source:
// EXPLAIN of each shows that without running it.
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
		p.add("source.objects", "these name tables that are not selected (or do not exist): "+strings.Join(unknown, ", "), "fix the table names under filter, operations and columns")
	}
	var nFilters, nColumns int
	for _, t := range tables {
		name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
		if f := p.spec.RowFilter(t); f != "" {
			nFilters++
			cond, err := proto.FilterCondition(f)
			if err == nil {
				// PostgreSQL itself checks that the filter is one boolean
				// expression of the table: a prepared statement holds one
				// statement, and WHERE takes only a boolean.
				err = prepareOnly(ctx, conn, "SELECT 1 FROM "+name+" WHERE "+cond)
			}
			if err == nil {
				err = p.tryPublished(ctx, conn, t, name+" WHERE "+cond, "SELECT 1 FROM "+name+" WHERE "+cond+" LIMIT 0")
			}
			if err != nil {
				p.publicationProblem("source.filters", err, fmt.Sprintf("the row filter of %s, (%s),", t, f),
					"write one condition on the table's own columns, with built-in immutable operators and functions (no subqueries, no user functions)",
					fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL; or filter on primary-key columns only", name))
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
	if nFilters > 0 {
		p.pass("source.filters", fmt.Sprintf("%d row filters are valid", nFilters))
	}
	if nColumns > 0 {
		p.pass("source.columns", fmt.Sprintf("%d column lists are valid", nColumns))
	}
}

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
		var col string
		if err := tx.QueryRow(ctx, `SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1`, name).Scan(&col); err != nil {
			return err
		}
		if ops.Has(proto.OpUpdate) {
			if _, err := tx.Exec(ctx, fmt.Sprintf("EXPLAIN UPDATE %s SET %s = %s WHERE false", name, col, col)); err != nil {
				return err
			}
		}
		if ops.Has(proto.OpDelete) {
			if _, err := tx.Exec(ctx, fmt.Sprintf("EXPLAIN DELETE FROM %s WHERE false", name)); err != nil {
				return err
			}
		}
		return errRollback
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
		p.add(id, fmt.Sprintf("%s does not cover the replica identity: PostgreSQL would refuse UPDATE and DELETE on the table (%s)", what, pgErr.Detail), identityFix)
		return
	}
	p.add(id, fmt.Sprintf("%s cannot be published: %v", what, err), invalidFix)
}

// errRollback ends a transaction that must leave nothing behind.
var errRollback = errors.New("rolled back")

func (p *prechecker) destination(ctx context.Context, tables []proto.TableID) {
	if p.spec.Destination.Type == "kafka" {
		p.kafkaDestination(ctx, tables)
		return
	}
	conn, err := pgconfig.Connect(ctx, p.spec.Destination.ConnDSN(), "sluice precheck")
	if err != nil {
		msg, fix := connectProblem("destination", err)
		p.add("destination.connect", "cannot connect to the destination: "+msg, fix)
		return
	}
	defer conn.Close(context.Background())
	p.pass("destination.connect", "connected as "+conn.Config().User)
	var canCreate, super bool
	var user, dbName string
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'), r.rolsuper
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &dbName, &canCreate, &super); err != nil {
		p.add("destination.settings", "cannot read the destination's settings: "+err.Error(), "")
		return
	}
	if !canCreate && !super {
		p.add("destination.privileges.create", fmt.Sprintf("user %q may not create schemas in database %q (the synced schemas and sluice.apply_offsets)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	} else {
		p.pass("destination.privileges.create", fmt.Sprintf("user %q may create schemas in database %q", user, dbName))
	}
	p.space(ctx, conn)
	if len(tables) == 0 {
		return
	}
	// The destination names (renames, name_case); with schema sync, a
	// renamed table is created and loaded under its source name first,
	// so that name must be free too.
	names := p.spec.Names()
	p.naming(tables, names)
	p.extensions(ctx, conn)
	var lookFor, targets []proto.TableID
	for _, t := range tables {
		target := names.Table(t)
		targets = append(targets, target)
		lookFor = append(lookFor, target)
		if target != t && p.spec.Sync.SchemaEnabled() {
			lookFor = append(lookFor, t)
		}
	}
	existing, err := postgres.ExistingTables(ctx, conn, lookFor)
	if err != nil {
		p.add("destination.tables", "cannot look up tables: "+err.Error(), "")
		return
	}
	switch {
	case !p.spec.Sync.SchemaEnabled():
	case len(existing) == 0:
		p.pass("destination.conflicting_tables", "none of the tables exists at the destination yet")
	case p.spec.ConflictPolicy() == "precheck":
		p.add("destination.conflicting_tables", "these tables already exist at the destination: "+joinTables(existing),
			"drop or rename them, leave them out of objects, or set conflicting_tables: ignore to write into them (they keep their rows; the full sync adds the rows whose key is new)")
	default:
		p.conflictsIgnored(ctx, conn, tables, names, existing)
	}
	if !p.spec.Sync.SchemaEnabled() && len(existing) < len(targets) {
		have := map[string]bool{}
		for _, t := range existing {
			have[t.Key()] = true
		}
		var missing []proto.TableID
		for _, t := range targets {
			if !have[t.Key()] {
				missing = append(missing, t)
			}
		}
		p.add("destination.tables", "schema sync is off and these tables do not exist at the destination: "+joinTables(missing),
			"create them, or turn schema sync on (sync.schema: true)")
	}
}

// conflictsIgnored judges tables that exist at the destination under
// conflicting_tables: ignore. The full sync keeps their rows, adding the
// source's rows whose key is new, which needs a key to tell; and a
// renamed table cannot be renamed into one that exists.
func (p *prechecker) conflictsIgnored(ctx context.Context, conn *pgx.Conn, tables []proto.TableID, names *proto.NameMap, existing []proto.TableID) {
	const id = "destination.conflicting_tables"
	exists := map[string]bool{}
	for _, t := range existing {
		exists[t.Key()] = true
	}
	var renamedOnto, kept, keptNames []string
	for _, t := range tables {
		target := names.Table(t)
		switch {
		case target != t && exists[target.Key()]:
			renamedOnto = append(renamedOnto, fmt.Sprintf("%s -> %s", t, target))
		case target != t && exists[t.Key()]:
			// Loaded under its source name before the rename.
			renamedOnto = append(renamedOnto, fmt.Sprintf("%s (loaded under this name, then renamed to %s)", t, target))
		case target == t && exists[t.Key()]:
			kept = append(kept, pgx.Identifier{t.Schema, t.Name}.Sanitize())
			keptNames = append(keptNames, t.String())
		}
	}
	if len(renamedOnto) > 0 {
		p.add(id, "renamed tables cannot be written into tables that exist at the destination: "+strings.Join(renamedOnto, ", "),
			"drop those destination tables, or rename to names that are free")
	}
	if len(kept) == 0 {
		return
	}
	rows, err := conn.Query(ctx, `SELECT t FROM unnest($1::text[]) AS t WHERE NOT EXISTS (
		SELECT 1 FROM pg_index i WHERE i.indrelid = t::regclass AND (i.indisprimary OR i.indisunique) AND i.indpred IS NULL)`, kept)
	var keyless []string
	if err == nil {
		keyless, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		p.add(id, "cannot inspect the existing tables: "+err.Error(), "")
		return
	}
	if len(keyless) > 0 {
		display := map[string]string{}
		for i, k := range kept {
			display[k] = keptNames[i]
		}
		for i, k := range keyless {
			keyless[i] = display[k]
		}
		p.add(id, "these tables exist at the destination without a primary key or unique key, so the full sync cannot tell their rows from the source's: "+strings.Join(keyless, ", "),
			"drop them, or give them the source's primary key")
		return
	}
	p.warn(id, "these tables already exist at the destination and will be written into (conflicting_tables: ignore): "+strings.Join(keptNames, ", ")+
		"; they keep their definitions and rows: the full sync adds the source's rows whose key is new and leaves a row whose key exists as it is; incremental sync then overwrites rows with the same key",
		"drop or rename them to start from the source's definitions and rows")
}

// naming checks the names the destination will get. Sluice keeps its
// own tables in schema sluice there.
func (p *prechecker) naming(tables []proto.TableID, names *proto.NameMap) {
	var clash []proto.TableID
	seen := map[string]proto.TableID{}
	var twice []string
	for _, t := range tables {
		target := names.Table(t)
		if target.Schema == "sluice" || strings.HasPrefix(target.Schema, "pg_") {
			clash = append(clash, target)
		}
		if prev, ok := seen[target.Key()]; ok {
			twice = append(twice, fmt.Sprintf("%s and %s both become %s", prev, t, target))
		}
		seen[target.Key()] = t
	}
	if len(twice) > 0 {
		p.add("destination.naming", "two tables get one name at the destination: "+strings.Join(twice, "; "), "change rename or name_case so that every table keeps a name of its own")
		return
	}
	if len(clash) > 0 {
		p.add("destination.naming", "schema sluice holds Sluice's own tables at the destination (positions, heartbeats): "+joinTables(clash)+" cannot be synced into it",
			"leave schema sluice out of objects")
		return
	}
	p.pass("destination.naming", "every table name is free to use at the destination")
}

// extensions checks that the extensions whose types the tables use can
// be created at the destination (schema sync creates them).
func (p *prechecker) extensions(ctx context.Context, conn *pgx.Conn) {
	if len(p.typeExtensions) == 0 {
		p.pass("destination.types", "the tables use built-in types only, or types they define themselves")
		return
	}
	rows, err := conn.Query(ctx, `SELECT e FROM unnest($1::text[]) AS e WHERE NOT EXISTS (SELECT 1 FROM pg_available_extensions a WHERE a.name = e)`, p.typeExtensions)
	if err != nil {
		p.add("destination.types", "cannot list the destination's extensions: "+err.Error(), "")
		return
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		p.add("destination.types", "cannot list the destination's extensions: "+err.Error(), "")
		return
	}
	if len(missing) > 0 {
		p.add("destination.types", "the tables use types of extensions the destination server does not have: "+strings.Join(missing, ", "),
			"install those extensions' packages on the destination server (CREATE EXTENSION must find them)")
		return
	}
	p.pass("destination.types", "the extensions the tables' types come from are available: "+strings.Join(p.typeExtensions, ", "))
}

// space compares the selected tables' size with the free space of the
// destination's data directory, when that can be measured: the server runs
// on this machine and the user may read data_directory.
func (p *prechecker) space(ctx context.Context, conn *pgx.Conn) {
	const id = "destination.space"
	host := conn.Config().Host
	local := strings.HasPrefix(host, "/") || host == "localhost" || net.ParseIP(host).IsLoopback()
	var dir string
	if !local || conn.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = 'data_directory'`).Scan(&dir) != nil || dir == "" {
		p.pass(id, fmt.Sprintf("the selection takes %s in the source; the destination's free space cannot be measured from here", bytesText(p.sourceBytes)))
		return
	}
	free, ok := freeBytes(dir)
	if !ok {
		p.pass(id, fmt.Sprintf("the selection takes %s in the source; the destination's free space cannot be measured from here", bytesText(p.sourceBytes)))
		return
	}
	if free < p.sourceBytes {
		p.add(id, fmt.Sprintf("the selection takes %s in the source, the destination's disk has %s free", bytesText(p.sourceBytes), bytesText(free)),
			"free space on the destination's disk, or select fewer tables")
		return
	}
	p.pass(id, fmt.Sprintf("the selection takes %s in the source, the destination's disk has %s free", bytesText(p.sourceBytes), bytesText(free)))
}

// bytesText writes a size in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func joinTables(ts []proto.TableID) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// kafkaDestination checks a Kafka destination: brokers, topics,
// transactions, schema registry.
func (p *prechecker) kafkaDestination(ctx context.Context, tables []proto.TableID) {
	names := p.spec.Names()
	p.naming(tables, names)
	topics := map[string]int{}
	for _, t := range tables {
		topics[p.spec.TopicFor(t)] = p.spec.PartitionsFor(t)
	}
	if t := p.spec.Destination.DDLTopic; t != "" && p.spec.Sync.DDLEnabled() {
		topics[t] = max(topics[t], 1)
	}
	topics[p.spec.Destination.OffsetsTopicName()] = 1
	if p.spec.Destination.Heartbeat && p.spec.Sync.IncrementalEnabled() {
		topics[p.spec.Destination.HeartbeatTopicName()] = max(topics[p.spec.Destination.HeartbeatTopicName()], 1)
	}
	opts := kafka.Options{Task: p.spec.Name, Spec: p.spec.Destination.KafkaSpec}
	for _, c := range kafka.Probe(ctx, opts, topics) {
		if c.Problem != "" {
			p.add(c.ID, c.Problem, c.Fix)
		} else {
			p.pass(c.ID, c.Found)
		}
	}
}
