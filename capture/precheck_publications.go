package capture

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// publications looks for the user's own FOR ALL TABLES publications
// beside Sluice: such a publication carries every table of the database,
// Sluice's too, and its subscribers stop at the first change of a table
// they lack ("logical replication target relation ... does not exist").
// Sluice keeps none there (its heartbeat and DDL log are logical decoding
// messages, its DDL state unlogged tables); an older version's heartbeat
// and DDL log tables stay until every task on the source restarted on
// this one: while they exist, a warning names them.
func (p *prechecker) publications(ctx context.Context, conn *pgx.Conn) {
	var pubs, tables []string
	err := conn.QueryRow(ctx, `SELECT
		coalesce((SELECT array_agg(pubname::text ORDER BY pubname) FROM pg_publication WHERE puballtables), '{}'),
		coalesce((SELECT array_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname) ORDER BY c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'sluice' AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'), '{}')`).Scan(&pubs, &tables)
	if err != nil {
		p.Fail("source.publications", "cannot read the source's publications: "+err.Error(), "")
		return
	}
	if len(pubs) == 0 {
		p.Pass("source.publications", "no FOR ALL TABLES publication")
		return
	}
	names := "publication " + strings.Join(pubs, ", ")
	if len(pubs) > 1 {
		names = "publications " + strings.Join(pubs, ", ")
	}
	if len(tables) == 0 {
		p.Pass("source.publications", names+" (FOR ALL TABLES) publish no table of Sluice's: its heartbeat and DDL log are logical decoding messages, its DDL state unlogged tables")
		return
	}
	p.Warn("source.publications",
		fmt.Sprintf("%s (FOR ALL TABLES) publish Sluice's %s, left by an older Sluice: their subscribers stop at the first change of a table they lack", names, strings.Join(tables, ", ")),
		"restart the tasks of this source on this version (they stop using these tables, the last one drops them), or create the tables on the subscribers, or publish the application's tables only (FOR TABLES IN SCHEMA ...)")
}
