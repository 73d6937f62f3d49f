package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// PrepareSource creates what capture needs in the source before the slot:
// the publication of the task's tables, and nothing else (the heartbeat
// and the DDL log are logical decoding messages, messages.go). Idempotent;
// an existing publication is set to exactly these tables, which takes an
// older version's heartbeat and DDL log tables out of it; those tables
// are dropped once no task uses them.
//
// filter gives a table's row filter (nil: none). The publication applies
// it (PostgreSQL 15 row filters) when PostgreSQL allows that, its columns
// all in the replica identity: an UPDATE that moves a row into the filter
// then arrives as an INSERT and one that moves it out as a DELETE. Any
// other filter the capture evaluates (filter.go).
//
// columns gives a table's selected columns (nil: all): the publication's
// column list, so the others never leave the source.
//
// ddl (DDL sync): the DDL log travels as messages (see
// InstallDDLCapture), but while the task's trigger function is an older
// version's, which inserts into sluice.ddl_log, the publication keeps
// that table (the task's rows): a DDL between this and
// InstallDDLCapture, which replaces the function, is not lost.
func PrepareSource(ctx context.Context, conn *pgx.Conn, task string, tables []proto.TableID, filter func(proto.TableID) string, columns func(proto.TableID) []string, ddl bool) error {
	pub := proto.SlotName(task)
	list := make([]string, 0, len(tables)+1)
	if ddl {
		var legacy bool
		err := conn.QueryRow(ctx, `SELECT to_regclass('sluice.ddl_log') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_proc p
			JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'sluice' AND p.proname = $1 AND strpos(p.prosrc, 'sluice.ddl_log') > 0)`,
			pub+"_ddl").Scan(&legacy)
		if err != nil {
			return fmt.Errorf("look up the task's DDL trigger function: %w", err)
		}
		if legacy {
			list = append(list, fmt.Sprintf("%s WHERE (task = %s)", pgx.Identifier{DDLLogTable.Schema, DDLLogTable.Name}.Sanitize(), quoteLiteral(task)))
		}
	}
	for _, t := range tables {
		item := pgx.Identifier{t.Schema, t.Name}.Sanitize()
		if columns != nil {
			if cols := columns(t); len(cols) > 0 {
				quoted := make([]string, len(cols))
				for i, c := range cols {
					quoted[i] = pgx.Identifier{c}.Sanitize()
				}
				item += " (" + strings.Join(quoted, ", ") + ")"
			}
		}
		if filter != nil {
			if f := filter(t); f != "" {
				cond, err := proto.FilterCondition(f)
				if err != nil {
					return fmt.Errorf("row filter of %s: %w", t, err)
				}
				inPub, err := PublicationFilters(ctx, conn, t, cond)
				if err != nil {
					return fmt.Errorf("row filter of %s: %w", t, err)
				}
				if inPub {
					item += " WHERE " + cond
				}
			}
		}
		list = append(list, item)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, pub).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", pub, err)
	}
	// Partitioned tables publish their partitions' changes as the root's:
	// they sync as one table (a TRUNCATE of one partition is then not
	// published; PostgreSQL's own limit).
	ident := pgx.Identifier{pub}.Sanitize()
	forTables := ""
	if len(list) > 0 {
		forTables = " FOR TABLE " + strings.Join(list, ", ")
	}
	stmts := []string{fmt.Sprintf("CREATE PUBLICATION %s%s WITH (publish_via_partition_root = true)", ident, forTables)}
	if exists {
		stmts = []string{fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = true)", ident)}
		if len(list) > 0 {
			stmts = append(stmts, fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", ident, strings.Join(list, ", ")))
		} else {
			// No table yet (a schema taken whole, empty so far): SET
			// TABLE needs one, so the ones listed go one by one.
			stmts = append(stmts, fmt.Sprintf(`DO $$ DECLARE r record; BEGIN
				FOR r IN SELECT prrelid::regclass AS rel FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = %s LOOP
					EXECUTE format('ALTER PUBLICATION %%I DROP TABLE %%s', %s, r.rel);
				END LOOP; END $$`, quoteLiteral(pub), quoteLiteral(pub)))
		}
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create publication %s: %w", pub, err)
		}
	}
	return dropUnusedLegacyTables(ctx, conn)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SlotInfo describes the task's replication slot.
type SlotInfo struct {
	Exists       bool
	Active       bool
	ActivePID    int32
	ConfirmedLSN proto.LSN
}

// LookupSlot reads the task's slot from pg_replication_slots.
func LookupSlot(ctx context.Context, conn *pgx.Conn, task string) (SlotInfo, error) {
	var info SlotInfo
	var confirmed *string
	var pid *int32
	err := conn.QueryRow(ctx, `SELECT active, active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		proto.SlotName(task)).Scan(&info.Active, &pid, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("look up slot: %w", err)
	}
	info.Exists = true
	if pid != nil {
		info.ActivePID = *pid
	}
	if confirmed != nil {
		if info.ConfirmedLSN, err = proto.ParseLSN(*confirmed); err != nil {
			return info, err
		}
	}
	return info, nil
}

// ExportedSnapshot is a snapshot exported by slot creation. It stays
// importable while Conn is open and idle; close Conn (or start replication
// on it) once every reader has imported it.
type ExportedSnapshot struct {
	Conn *pgconn.PgConn
	// LSN is the slot's consistent point: transactions that committed
	// before it are in the snapshot, later ones are in the slot.
	LSN  proto.LSN
	Name string
}

// CreateSlot creates the task's logical slot (pgoutput) and exports its
// snapshot, the one consistent cut of full sync (invariant 4).
func CreateSlot(ctx context.Context, dsn, task string) (*ExportedSnapshot, error) {
	return createSlot(ctx, dsn, task, proto.SlotName(task), false)
}

// CreateTemporarySnapshot exports a fresh consistent snapshot through a
// temporary slot (dropped when the connection closes). Full sync uses it
// for tables it must copy again after an interruption, when the task's own
// slot's snapshot is gone; the changes such a table gets before the
// snapshot's LSN are skipped by position.
func CreateTemporarySnapshot(ctx context.Context, dsn, task string) (*ExportedSnapshot, error) {
	return createSlot(ctx, dsn, task, proto.SlotName(task)+"_snap", true)
}

func createSlot(ctx context.Context, dsn, task, slot string, temporary bool) (*ExportedSnapshot, error) {
	cfg, err := pgconfig.ParseReplication(dsn, "sluice slot "+task)
	if err != nil {
		return nil, err
	}
	// The session may go on to stream the slot (a capture's handover):
	// it needs the capture's socket (socket.go) as much as one that
	// capture.connect dials.
	cfg.DialFunc = dialPaced
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to source for replication: %w", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		Temporary:      temporary,
		SnapshotAction: "EXPORT_SNAPSHOT",
		Mode:           pglogrepl.LogicalReplication,
	})
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("create replication slot %s: %w", slot, err)
	}
	lsn, err := proto.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return &ExportedSnapshot{Conn: conn, LSN: lsn, Name: res.SnapshotName}, nil
}

// Close releases the snapshot's connection.
func (e *ExportedSnapshot) Close() {
	if e != nil && e.Conn != nil {
		e.Conn.Close(context.Background())
		e.Conn = nil
	}
}

// DropSlot drops the task's replication slot, if it exists.
func DropSlot(ctx context.Context, conn *pgx.Conn, task string) error {
	return dropSlot(ctx, conn, proto.SlotName(task))
}

// DropTaskObjects removes everything a task created in the source: its
// slot (ending the session that holds it, if any), its publication and
// its DDL capture (event triggers, function, recorded shapes); an older
// version's heartbeat and DDL log tables once unused, and the sluice
// schema with the last task. Objects already gone are fine.
func DropTaskObjects(ctx context.Context, conn *pgx.Conn, task string) error {
	slot := proto.SlotName(task)
	for _, s := range []string{slot, slot + "_snap"} {
		if err := dropSlot(ctx, conn, s); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{slot}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", slot, err)
	}
	if err := dropDDLCapture(ctx, conn, task); err != nil {
		return err
	}
	if err := dropUnusedLegacyTables(ctx, conn); err != nil {
		return err
	}
	// The schema only when nothing else lives in it.
	if _, err := conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sluice')
		   AND NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'sluice')
		   AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'sluice')
		THEN DROP SCHEMA IF EXISTS sluice; END IF; END $$`); err != nil {
		return fmt.Errorf("drop schema sluice: %w", err)
	}
	return nil
}

func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	// A walsender may still hold the slot for a moment after its client
	// went away; end it and retry briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err != nil {
			return fmt.Errorf("end session holding slot %s: %w", slot, err)
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !(errors.As(err, &pgErr) && pgErr.Code == "55006") || time.Now().After(deadline) { // object_in_use
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RetainedWAL is how many bytes of WAL the task's slot keeps at the
// source (from its restart_lsn to the current WAL position).
func RetainedWAL(ctx context.Context, conn *pgx.Conn, task string) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT coalesce(pg_current_wal_lsn() - restart_lsn, 0)::int8 FROM pg_replication_slots WHERE slot_name = $1`,
		proto.SlotName(task)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("retained WAL of slot %s: %w", proto.SlotName(task), err)
	}
	return n, nil
}
