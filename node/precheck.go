package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/apply/postgres"
	"github.com/sluicedb/sluice/capture"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// Precheck checks a task before anything is created for it, and lists
// every problem with its fix. It creates nothing in the source or the
// destination.
func Precheck(ctx context.Context, spec *proto.TaskSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p := &prechecker{spec: spec}
	tables := p.source(ctx)
	p.destination(ctx, tables)
	if len(p.problems) > 0 {
		return &proto.PrecheckError{Problems: p.problems}
	}
	return nil
}

type prechecker struct {
	spec     *proto.TaskSpec
	problems []proto.Problem
}

func (p *prechecker) add(check, msg, fix string) {
	p.problems = append(p.problems, proto.Problem{Check: check, Message: msg, Fix: fix})
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
	conn, err := pgconfig.Connect(ctx, p.spec.Source.DSN, "sluice precheck")
	if err != nil {
		msg, fix := connectProblem("source", err)
		p.add("source.connect", "cannot connect to the source: "+msg, fix)
		return nil
	}
	defer conn.Close(context.Background())

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
	if walLevel != "logical" {
		p.add("source.wal_level", fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", walLevel),
			"set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")
	}
	if !super && !repl {
		p.add("source.privileges", fmt.Sprintf("user %q may not use replication", user),
			fmt.Sprintf("ALTER ROLE %s REPLICATION;", pgx.Identifier{user}.Sanitize()))
	}
	if !super && !canCreate {
		p.add("source.privileges", fmt.Sprintf("user %q may not create objects in database %q (the publication and the sluice.heartbeat table)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	}
	if p.spec.Sync.IncrementalEnabled() {
		if freeSlots < 1 {
			p.add("source.replication_slots", "no free replication slot (max_replication_slots is used up)",
				"raise max_replication_slots in postgresql.conf and restart, or drop unused slots: SELECT pg_drop_replication_slot('name')")
		}
		if freeSenders < 1 {
			p.add("source.wal_senders", "no free WAL sender (max_wal_senders is used up)", "raise max_wal_senders in postgresql.conf and restart PostgreSQL")
		}
		slot := proto.SlotName(p.spec.Name)
		info, err := capture.LookupSlot(ctx, conn, p.spec.Name)
		if err == nil && info.Exists {
			p.add("source.replication_slots", fmt.Sprintf("a replication slot named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: SELECT pg_drop_replication_slot('%s')", slot))
		}
		var pubExists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, slot).Scan(&pubExists); err == nil && pubExists {
			p.add("source.publication", fmt.Sprintf("a publication named %s already exists", slot),
				fmt.Sprintf("delete the task that owns it, or drop it: DROP PUBLICATION %s", pgx.Identifier{slot}.Sanitize()))
		}
		if walLevel == "logical" && (super || repl) {
			p.replicationConnection(ctx)
		}
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
	p.tableChecks(ctx, conn, tables, super)
	return tables
}

// replicationConnection checks that pg_hba.conf lets the user open a
// replication session, which it governs apart from normal ones.
func (p *prechecker) replicationConnection(ctx context.Context) {
	cfg, err := pgconfig.ParseReplication(p.spec.Source.DSN, "sluice precheck")
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
	}
}

func (p *prechecker) tableChecks(ctx context.Context, conn *pgx.Conn, tables []proto.TableID, super bool) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	rows, err := conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relreplident,
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		has_table_privilege(c.oid, 'SELECT'),
		pg_has_role(c.relowner, 'USAGE')
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
		if err := rows.Scan(&name, &ident, &hasPK, &canSelect, &owns); err != nil {
			p.add("source.tables", err.Error(), "")
			return
		}
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
	if len(noIdentity) > 0 && p.spec.Sync.IncrementalEnabled() {
		fixes := make([]string, len(noIdentity))
		for i, n := range noIdentity {
			fixes[i] = "ALTER TABLE " + n + " REPLICA IDENTITY FULL;"
		}
		p.add("source.replica_identity", "tables without a primary key and without REPLICA IDENTITY FULL cannot have their updates and deletes replicated: "+strings.Join(noIdentity, ", "),
			"add a primary key, or run: "+strings.Join(fixes, " "))
	}
	if len(noSelect) > 0 {
		p.add("source.privileges", "no SELECT privilege on: "+strings.Join(noSelect, ", "), "GRANT SELECT ON those tables TO the source user")
	}
	if len(notOwned) > 0 && p.spec.Sync.IncrementalEnabled() {
		p.add("source.privileges", "a publication can only include tables the user owns (or a superuser): "+strings.Join(notOwned, ", "),
			"connect as the tables' owner, or GRANT the owning role to the source user")
	}
}

func (p *prechecker) destination(ctx context.Context, tables []proto.TableID) {
	conn, err := pgconfig.Connect(ctx, p.spec.Destination.DSN, "sluice precheck")
	if err != nil {
		msg, fix := connectProblem("destination", err)
		p.add("destination.connect", "cannot connect to the destination: "+msg, fix)
		return
	}
	defer conn.Close(context.Background())
	var canCreate, super bool
	var user, dbName string
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'), r.rolsuper
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &dbName, &canCreate, &super); err != nil {
		p.add("destination.settings", "cannot read the destination's settings: "+err.Error(), "")
		return
	}
	if !canCreate && !super {
		p.add("destination.privileges", fmt.Sprintf("user %q may not create schemas in database %q (the synced schemas and sluice.apply_offsets)", user, dbName),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{dbName}.Sanitize(), pgx.Identifier{user}.Sanitize()))
	}
	if len(tables) == 0 {
		return
	}
	existing, err := postgres.ExistingTables(ctx, conn, tables)
	if err != nil {
		p.add("destination.tables", "cannot look up tables: "+err.Error(), "")
		return
	}
	if p.spec.Sync.SchemaEnabled() && p.spec.ConflictPolicy() == "precheck" && len(existing) > 0 {
		p.add("destination.conflicting_tables", "these tables already exist at the destination: "+joinTables(existing),
			"drop or rename them, leave them out of objects, or set conflicting_tables: ignore to write into them (full sync replaces their rows with the source's)")
	}
	if !p.spec.Sync.SchemaEnabled() && len(existing) < len(tables) {
		have := map[string]bool{}
		for _, t := range existing {
			have[t.Key()] = true
		}
		var missing []proto.TableID
		for _, t := range tables {
			if !have[t.Key()] {
				missing = append(missing, t)
			}
		}
		p.add("destination.tables", "schema sync is off and these tables do not exist at the destination: "+joinTables(missing),
			"create them, or turn schema sync on (sync.schema: true)")
	}
}

func joinTables(ts []proto.TableID) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}
