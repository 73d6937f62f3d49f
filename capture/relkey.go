package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/pgconfig"
)

// Under REPLICA IDENTITY FULL, pgoutput flags every column as part of the
// identity, but a row's key is still its primary key: destinations that
// key messages by it (Kafka's message keys, partitions and pkNames) would
// otherwise take the whole row for the key, and one row's changes would
// scatter over partitions. So the capture reads the table's primary key
// from the catalog when such a relation is described (once per relation
// per session), over a connection of its own.

// primaryKeySQL names a table's primary-key columns, none if it has none.
const primaryKeySQL = `SELECT a.attname FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	WHERE i.indrelid = $1 AND i.indisprimary`

// keyFullIdentity marks rel's primary-key columns as its key.
func (s *sessionState) keyFullIdentity(ctx context.Context, rel *relation) error {
	if s.catalog == nil || s.catalog.IsClosed() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgconfig.Connect(cctx, s.c.cfg.SourceDSN, "sluice capture "+s.c.cfg.Task)
		if err != nil {
			return fmt.Errorf("connect to source to read the primary key of %s: %w", rel.table, err)
		}
		s.catalog = conn
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := s.catalog.Query(qctx, primaryKeySQL, rel.id)
	if err != nil {
		return fmt.Errorf("read the primary key of %s: %w", rel.table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the primary key of %s: %w", rel.table, err)
	}
	for i := range rel.columns {
		rel.columns[i].Key = false
		for _, n := range names {
			if rel.columns[i].Name == n {
				rel.columns[i].Key = true
			}
		}
	}
	return nil
}
