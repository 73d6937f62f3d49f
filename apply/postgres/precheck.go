package postgres

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a PostgreSQL destination for a task: the connection,
// the privileges, space, the names the tables get, the extensions their
// types need, and the tables that exist already.
func (destination) Precheck(ctx context.Context, spec *proto.TaskSpec, src *proto.SourceFacts, c *proto.Checks) {
	p := &prechecker{spec: spec, src: src, Checks: c}
	p.destination(ctx, src.Tables)
}

// prechecker runs the checks of one precheck.
type prechecker struct {
	*proto.Checks
	spec *proto.TaskSpec
	src  *proto.SourceFacts
}

func (p *prechecker) destination(ctx context.Context, tables []proto.TableID) {
	conn, err := pgconfig.Connect(ctx, configOf(p.spec).ConnDSN(), "sluice precheck")
	if err != nil {
		msg, fix := pgconfig.ConnectProblem("destination", err)
		p.Fail("destination.connect", "cannot connect to the destination: "+msg, fix)
		return
	}
	defer conn.Close(context.Background())
	p.Pass("destination.connect", "connected as "+conn.Config().User)
	var canCreate, super bool
	var user, dbName string
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'), r.rolsuper
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &dbName, &canCreate, &super); err != nil {
		p.Fail("destination.settings", "cannot read the destination's settings: "+err.Error(), "")
		return
	}
	if !canCreate && !super {
		p.Fail("destination.privileges.create", fmt.Sprintf("user %q may not create schemas in database %q (the synced schemas and sluice.apply_offsets)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	} else {
		p.Pass("destination.privileges.create", fmt.Sprintf("user %q may create schemas in database %q", user, dbName))
	}
	p.space(ctx, conn)
	if len(tables) == 0 {
		return
	}
	defer p.replicaMode(ctx, conn, user, super, tables)
	// The destination names (renames, name_case); with schema sync, a
	// renamed table is created and loaded under its source name first,
	// so that name must be free too.
	names := p.spec.Names()
	apply.CheckNaming(p.spec, tables, p.Checks)
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
	existing, err := ExistingTables(ctx, conn, lookFor)
	if err != nil {
		p.Fail("destination.tables", "cannot look up tables: "+err.Error(), "")
		return
	}
	p.transformsFit(ctx, conn, existing)
	switch {
	case !p.spec.Sync.SchemaEnabled():
	case len(existing) == 0:
		p.Pass("destination.conflicting_tables", "none of the tables exists at the destination yet")
	case p.spec.ConflictPolicy() == "precheck":
		p.Fail("destination.conflicting_tables", "these tables already exist at the destination: "+apply.JoinTables(existing),
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
		p.Fail("destination.tables", "schema sync is off and these tables do not exist at the destination: "+apply.JoinTables(missing),
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
		p.Fail(id, "renamed tables cannot be written into tables that exist at the destination: "+strings.Join(renamedOnto, ", "),
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
		p.Fail(id, "cannot inspect the existing tables: "+err.Error(), "")
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
		p.Fail(id, "these tables exist at the destination without a primary key or unique key, so the full sync cannot tell their rows from the source's: "+strings.Join(keyless, ", "),
			"drop them, or give them the source's primary key")
		return
	}
	p.Warn(id, "these tables already exist at the destination and will be written into (conflicting_tables: ignore): "+strings.Join(keptNames, ", ")+
		"; they keep their definitions and rows: the full sync adds the source's rows whose key is new and leaves a row whose key exists as it is; incremental sync then overwrites rows with the same key",
		"drop or rename them to start from the source's definitions and rows")
}

// extensions checks that the extensions whose types the tables use can
// be created at the destination (schema sync creates them).
func (p *prechecker) extensions(ctx context.Context, conn *pgx.Conn) {
	if len(p.src.TypeExtensions) == 0 {
		p.Pass("destination.types", "the tables use built-in types only, or types they define themselves")
		return
	}
	rows, err := conn.Query(ctx, `SELECT e FROM unnest($1::text[]) AS e WHERE NOT EXISTS (SELECT 1 FROM pg_available_extensions a WHERE a.name = e)`, p.src.TypeExtensions)
	if err != nil {
		p.Fail("destination.types", "cannot list the destination's extensions: "+err.Error(), "")
		return
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		p.Fail("destination.types", "cannot list the destination's extensions: "+err.Error(), "")
		return
	}
	if len(missing) > 0 {
		p.Fail("destination.types", "the tables use types of extensions the destination server does not have: "+strings.Join(missing, ", "),
			"install those extensions' packages on the destination server (CREATE EXTENSION must find them)")
		return
	}
	p.Pass("destination.types", "the extensions the tables' types come from are available: "+strings.Join(p.src.TypeExtensions, ", "))
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
		p.Pass(id, fmt.Sprintf("the selection takes %s in the source; the destination's free space cannot be measured from here", proto.FormatBytes(p.src.Bytes)))
		return
	}
	free, ok := freeBytes(dir)
	if !ok {
		p.Pass(id, fmt.Sprintf("the selection takes %s in the source; the destination's free space cannot be measured from here", proto.FormatBytes(p.src.Bytes)))
		return
	}
	if free < p.src.Bytes {
		p.Fail(id, fmt.Sprintf("the selection takes %s in the source, the destination's disk has %s free", proto.FormatBytes(p.src.Bytes), proto.FormatBytes(free)),
			"free space on the destination's disk, or select fewer tables")
		return
	}
	p.Pass(id, fmt.Sprintf("the selection takes %s in the source, the destination's disk has %s free", proto.FormatBytes(p.src.Bytes), proto.FormatBytes(free)))
}

// replicaMode says how the destination's triggers, rules and foreign keys
// will treat replicated rows for this user, and warns of foreign keys
// already at the destination that cannot be deferred.
func (p *prechecker) replicaMode(ctx context.Context, conn *pgx.Conn, user string, super bool, tables []proto.TableID) {
	const id = "destination.replica_mode"
	canSet := super
	if !super {
		// PostgreSQL 15 can grant the setting alone.
		if err := conn.QueryRow(ctx, `SELECT has_parameter_privilege('session_replication_role', 'SET')`).Scan(&canSet); err != nil {
			canSet = false
		}
	}
	if canSet {
		p.Pass(id, fmt.Sprintf("user %q may set session_replication_role = replica: the destination's triggers, rules and foreign keys do not act on replicated rows (as in PostgreSQL's own subscriptions); they act on local writes", user))
		return
	}
	// Not a warning: this works, differently; the report says how.
	p.Pass(id, fmt.Sprintf("user %q may not set session_replication_role: triggers and rules Sluice creates on the synced tables are created disabled "+
		"(they would act on replicated rows); foreign keys Sluice creates are DEFERRABLE and checked when each source transaction commits "+
		"(batches end only there, and tables linked by foreign keys share an apply group); sluice task cutover gives both back the source's definitions. "+
		"To keep them as at the source during the task instead: GRANT SET ON PARAMETER session_replication_role TO %s; (or use a superuser)", user, pgx.Identifier{user}.Sanitize()))
	names := p.spec.Names()
	targets := make([]string, len(tables))
	for i, t := range tables {
		targets[i] = pgx.Identifier{names.Table(t).Schema, names.Table(t).Name}.Sanitize()
	}
	rows, err := conn.Query(ctx, `SELECT format('ALTER TABLE %s ALTER CONSTRAINT %I DEFERRABLE;', k.conrelid::regclass, k.conname)
		FROM pg_constraint k WHERE k.contype = 'f' AND NOT k.condeferrable
		  AND (k.conrelid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t) OR k.confrelid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t))
		ORDER BY 1`, targets)
	var fixes []string
	if err == nil {
		fixes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		p.Fail("destination.foreign_keys", "cannot inspect the destination's foreign keys: "+err.Error(), "")
		return
	}
	if len(fixes) > 0 {
		p.Warn("destination.foreign_keys", fmt.Sprintf("%d foreign keys on the synced tables at the destination cannot be deferred: with replica mode off they check every write, "+
			"and a batch that writes a transaction's tables in another order than the source fails on them", len(fixes)),
			strings.Join(fixes, " "))
	}
}
