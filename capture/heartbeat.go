package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// The heartbeat table has one row per task, updated every second. Its
// changes travel the same path as the data: apply measures latency from
// their commit time, and the slot moves even when the synced tables are
// idle. Each task's publication carries only its own row (a row filter).

const heartbeatDDL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.heartbeat (task text PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now())`

// heartbeat writes the task's row until ctx ends. Failures are logged and
// retried at the next tick: the capture session reports source outages.
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
			_, err := conn.Exec(wctx, `UPDATE sluice.heartbeat SET ts = now() WHERE task = $1`, c.cfg.Task)
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

// ensureHeartbeatRow creates the heartbeat table if needed and the task's
// row.
func ensureHeartbeatRow(ctx context.Context, conn *pgx.Conn, task string) error {
	if _, err := conn.Exec(ctx, heartbeatDDL); err != nil {
		return fmt.Errorf("create %s: %w", proto.HeartbeatTable, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sluice.heartbeat (task) VALUES ($1) ON CONFLICT (task) DO NOTHING`, task); err != nil {
		return fmt.Errorf("insert heartbeat row: %w", err)
	}
	return nil
}
