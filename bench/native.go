package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/testenv"
)

// native is PostgreSQL's own logical replication of one source database
// into one destination database: a publication of the benchmark tables
// and a subscription with copy_data = false (the benchmark seeds both
// sides itself; CreateCopying for the schema/ scenarios' copy), with the subscription's defaults otherwise
// (synchronous_commit = off, streaming = off, binary = false).
type native struct {
	src, dst     *testenv.Postgres
	srcDB, dstDB string
	name         string // publication, subscription and slot name
	tables       []string
	src1, dst1   *pgx.Conn // superuser sessions in the two databases
}

// newNative creates the publication (once) and keeps sessions open.
func newNative(ctx context.Context, src, dst *testenv.Postgres, srcDB, dstDB, name string, tables []string) (*native, error) {
	n := &native{src: src, dst: dst, srcDB: srcDB, dstDB: dstDB, name: name, tables: tables}
	var err error
	if n.src1, err = connect(ctx, src.DSN(srcDB)); err != nil {
		return nil, err
	}
	if n.dst1, err = connect(ctx, dst.DSN(dstDB)); err != nil {
		n.src1.Close(context.Background())
		return nil, err
	}
	list := ""
	for i, t := range tables {
		if i > 0 {
			list += ", "
		}
		list += t
	}
	if err := execSQL(ctx, n.src1, time.Minute, fmt.Sprintf("DROP PUBLICATION IF EXISTS %s; CREATE PUBLICATION %s FOR TABLE %s", n.name, n.name, list)); err != nil {
		n.Close(ctx)
		return nil, err
	}
	return n, nil
}

// Close drops the subscription (and with it the slot) and the sessions.
func (n *native) Close(ctx context.Context) {
	if err := n.Drop(ctx); err != nil {
		logf("warning: drop subscription %s: %v", n.name, err)
	}
	n.src1.Close(context.Background())
	n.dst1.Close(context.Background())
}

// lastStart is when the logical replication launcher of a destination
// cluster may last have started a worker. The launcher starts workers at
// most once per wal_retrieve_retry_interval (5 s by default), so a
// measured ENABLE waits (untimed) until that has passed, or the yardstick
// would pay an idle wait that has nothing to do with replication speed.
// Besides CREATE and ENABLE, DISABLE and DROP count too: the exiting
// worker wakes the launcher, which may start a worker for the
// subscription before the ALTER or DROP commits (the log then says "will
// not start because the subscription was removed during startup").
var lastStart = map[*testenv.Postgres]time.Time{}

const launcherInterval = 5*time.Second + 500*time.Millisecond

// Create creates the subscription, enabled or not; its slot is created at
// the source now.
func (n *native) Create(ctx context.Context, enabled bool) error {
	return n.create(ctx, enabled, false)
}

// CreateCopying creates the subscription enabled and with copy_data =
// true: its table sync workers copy every table first (the schema/
// scenarios' yardstick of a task's full sync).
func (n *native) CreateCopying(ctx context.Context) error { return n.create(ctx, true, true) }

func (n *native) create(ctx context.Context, enabled, copyData bool) error {
	if err := n.Drop(ctx); err != nil {
		return err
	}
	if enabled {
		if err := n.waitLauncher(ctx); err != nil {
			return err
		}
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=postgres", n.src.Port, n.srcDB)
	sql := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (copy_data = %t, enabled = %t)",
		n.name, sqlLiteral(conninfo), n.name, copyData, enabled)
	if err := execSQL(ctx, n.dst1, 2*time.Minute, sql); err != nil {
		return err
	}
	if enabled {
		lastStart[n.dst] = time.Now()
		return n.waitStreaming(ctx)
	}
	return nil
}

// Drop removes the subscription and its slot, if they exist.
func (n *native) Drop(ctx context.Context) error {
	var exists bool
	if err := n.dst1.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", n.name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		err := execSQL(ctx, n.dst1, 2*time.Minute, fmt.Sprintf("DROP SUBSCRIPTION %s", n.name))
		lastStart[n.dst] = time.Now()
		if err != nil {
			return err
		}
	}
	// A slot left behind by an interrupted run.
	return execSQL(ctx, n.src1, time.Minute, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, n.name)
}

// Disable stops the subscription's worker and waits until the source's
// walsender has let go of the slot.
func (n *native) Disable(ctx context.Context) error {
	err := execSQL(ctx, n.dst1, time.Minute, fmt.Sprintf("ALTER SUBSCRIPTION %s DISABLE", n.name))
	lastStart[n.dst] = time.Now()
	if err != nil {
		return err
	}
	return poll(ctx, time.Minute, 20*time.Millisecond, "slot "+n.name+" released", func() (bool, error) {
		var active bool
		err := n.src1.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", n.name).Scan(&active)
		return !active, err
	})
}

// PrepareEnable waits (untimed) until the launcher will start a worker at
// once; call it right before a measured Enable.
func (n *native) PrepareEnable(ctx context.Context) error { return n.waitLauncher(ctx) }

// Enable starts the subscription's worker; it returns at once.
func (n *native) Enable(ctx context.Context) error {
	lastStart[n.dst] = time.Now()
	return execSQL(ctx, n.dst1, time.Minute, fmt.Sprintf("ALTER SUBSCRIPTION %s ENABLE", n.name))
}

func (n *native) waitLauncher(ctx context.Context) error {
	if d := time.Until(lastStart[n.dst].Add(launcherInterval)); d > 0 {
		return sleepCtx(ctx, d)
	}
	return nil
}

// waitStreaming waits until the apply worker runs and holds the slot.
func (n *native) waitStreaming(ctx context.Context) error {
	return poll(ctx, 2*time.Minute, 20*time.Millisecond, "subscription "+n.name+" streaming", func() (bool, error) {
		var active bool
		err := n.src1.QueryRow(ctx, "SELECT COALESCE((SELECT active FROM pg_replication_slots WHERE slot_name = $1), false)", n.name).Scan(&active)
		return active, err
	})
}

// WaitTablesReady waits until the subscription has n tables, all ready
// (state 'r' in pg_subscription_rel: copied, synchronised and handed to
// the apply worker), printing a progress line every ten seconds.
func (n *native) WaitTablesReady(ctx context.Context, tables int, timeout time.Duration) error {
	start := time.Now()
	next := start.Add(10 * time.Second)
	return poll(ctx, timeout, 100*time.Millisecond, fmt.Sprintf("all %d tables of subscription %s ready", tables, n.name), func() (bool, error) {
		var ready, total int
		err := n.dst1.QueryRow(ctx, `SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, n.name).Scan(&ready, &total)
		if err == nil && time.Now().After(next) {
			logf("    %.0fs: native: %d of %d tables ready", time.Since(start).Seconds(), ready, tables)
			next = time.Now().Add(10 * time.Second)
		}
		return ready == tables && total == tables, err
	})
}

// Status is a progress line: the slot's lag at the source.
func (n *native) Status(ctx context.Context) string {
	var active bool
	var lag *int64
	err := n.src1.QueryRow(ctx, `SELECT active, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, n.name).Scan(&active, &lag)
	if err != nil {
		return "native: " + err.Error()
	}
	l := "?"
	if lag != nil {
		l = fmt.Sprintf("%.1f MB", float64(*lag)/1e6)
	}
	return fmt.Sprintf("native slot active %v, %s behind the source's WAL", active, l)
}

// poll calls cond every interval until it reports true, fails, or timeout
// passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return err
		}
	}
}
