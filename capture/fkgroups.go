package capture

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// LinkedTables finds the tables of a selection that foreign keys link, in
// either direction and transitively (a partition's keys count as its
// root's), and names one table of each linked set, its anchor: the set's
// first key in sort order. The result maps the key of every table in a
// set of two or more to its anchor's key; unlinked tables are left out.
// Apply groups follow anchors, so that a destination which checks
// foreign keys sees each source transaction's changes to linked tables
// committed together.
func LinkedTables(ctx context.Context, q Querier, tables []proto.TableID) (map[string]string, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	selected := make(map[string]bool, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
		selected[t.Key()] = true
	}
	parent := map[string]string{}
	var find func(string) string
	find = func(k string) string {
		p, ok := parent[k]
		if !ok || p == k {
			return k
		}
		root := find(p)
		parent[k] = root
		return root
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		// The smaller key is the root: it is the set's anchor.
		if rb < ra {
			ra, rb = rb, ra
		}
		parent[ra], parent[rb] = ra, ra
	}
	err := eachCatalogRow(ctx, q, `
		WITH sel AS (
			SELECT c.oid FROM unnest($1::text[], $2::text[]) AS l(schema, name)
			JOIN pg_catalog.pg_namespace n ON n.nspname = l.schema
			JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = l.name),
		keys AS (
			SELECT coalesce(pg_catalog.pg_partition_root(k.conrelid), k.conrelid) AS child,
			       coalesce(pg_catalog.pg_partition_root(k.confrelid), k.confrelid) AS parent
			FROM pg_catalog.pg_constraint k WHERE k.contype = 'f')
		SELECT DISTINCT cn.nspname, c.relname, pn.nspname, p.relname
		FROM keys
		JOIN pg_catalog.pg_class c ON c.oid = keys.child JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
		JOIN pg_catalog.pg_class p ON p.oid = keys.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
		WHERE keys.child IN (SELECT oid FROM sel) AND keys.parent IN (SELECT oid FROM sel) AND keys.child <> keys.parent`,
		[]any{schemas, names}, func(rows pgx.Rows) error {
			var a, b proto.TableID
			if err := rows.Scan(&a.Schema, &a.Name, &b.Schema, &b.Name); err != nil {
				return err
			}
			if selected[a.Key()] && selected[b.Key()] {
				union(a.Key(), b.Key())
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	if len(parent) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(parent))
	for k := range parent {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = find(k)
	}
	return out, nil
}
