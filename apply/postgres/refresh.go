package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
)

// Periodic refreshes the materialized views of each schema whose objects
// entry says refresh: interval (apply.PeriodicWorker).
func (s *Sink) Periodic(spec *proto.TaskSpec) []apply.Periodic {
	var out []apply.Periodic
	names := spec.Names()
	for _, o := range spec.Objects {
		opts, _ := o.Options.(*ObjectOptions)
		if opts == nil || opts.RefreshEvery() == 0 {
			continue
		}
		schema := names.Table(proto.TableID{Schema: o.Schema, Name: "-"}).Schema
		out = append(out, apply.Periodic{Name: "refresh materialized views of " + schema, Every: opts.RefreshEvery(),
			Run: func(ctx context.Context) error { return s.refreshViews(ctx, schema) }})
	}
	return out
}

// refreshViews refreshes a schema's materialized views, concurrently
// (readers go on) where a view is populated and has a unique index.
func (s *Sink) refreshViews(ctx context.Context, schema string) error {
	return s.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT format('%I.%I', m.schemaname, m.matviewname),
			m.ispopulated AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = format('%I.%I', m.schemaname, m.matviewname)::regclass
				AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL)
			FROM pg_catalog.pg_matviews m WHERE m.schemaname = $1 ORDER BY 1`, schema)
		if err != nil {
			return err
		}
		type view struct {
			name       string
			concurrent bool
		}
		views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (view, error) {
			var v view
			return v, r.Scan(&v.name, &v.concurrent)
		})
		if err != nil {
			return err
		}
		for _, v := range views {
			how := ""
			if v.concurrent {
				how = "CONCURRENTLY "
			}
			if _, err := conn.Exec(ctx, "REFRESH MATERIALIZED VIEW "+how+v.name); err != nil {
				return fmt.Errorf("refresh %s: %w", v.name, err)
			}
		}
		return nil
	})
}
