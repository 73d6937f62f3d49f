package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// The heartbeat is a non-transactional logical decoding message of the
// task (messages.go), written every HeartbeatInterval. It travels the
// same path as the data: apply measures latency from its time, and the
// slot moves even when the synced tables are idle. Being a message, not a
// row, no publication (a user's FOR ALL TABLES one included) carries it.

// heartbeat writes the task's heartbeat until ctx ends. Failures are
// logged and retried at the next tick: the capture session reports source
// outages.
func (c *Capture) heartbeat(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(c.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := func() error {
			if conn == nil || conn.IsClosed() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				var err error
				if conn, err = pgconfig.Connect(cctx, c.cfg.SourceDSN, "sluice heartbeat "+c.cfg.Task); err != nil {
					return err
				}
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := conn.Exec(wctx, heartbeatSQL, c.cfg.Task)
			return err
		}()
		if err != nil && ctx.Err() == nil {
			if !failing {
				c.cfg.Logger.Warn("heartbeat write failed", "task", c.cfg.Task, "err", err)
			}
			failing = true
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
		} else {
			failing = false
		}
	}
}

// dropUnusedLegacyTables drops the tables older versions kept in the
// source's sluice schema for the heartbeat and the DDL log (both messages
// now), once nothing uses them: no publication lists them (a task not yet
// restarted on this version still publishes its heartbeat row) and, for
// the DDL log, no task's trigger function still writes it. Idempotent.
func dropUnusedLegacyTables(ctx context.Context, conn *pgx.Conn) error {
	for _, t := range []proto.TableID{proto.HeartbeatTable, DDLLogTable} {
		name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
		var unused bool
		err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM pg_publication_rel WHERE prrelid = to_regclass($1))
			AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = $2 AND p.prorettype = 'event_trigger'::regtype AND strpos(p.prosrc, $1) > 0)`,
			t.Schema+"."+t.Name, proto.ReservedSchema).Scan(&unused)
		if err != nil {
			return fmt.Errorf("look up %s: %w", t, err)
		}
		if !unused {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			return fmt.Errorf("drop %s: %w", t, err)
		}
	}
	return nil
}
