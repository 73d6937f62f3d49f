package capture

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/proto"
)

// SnapshotReader reads tables as of one exported snapshot. Several readers
// importing the same snapshot see the same rows, so one table can be read
// in parallel, chunk by chunk.
type SnapshotReader struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

// OpenSnapshotReader starts a read-only repeatable-read transaction on the
// source and imports the snapshot. The exporting connection must still be
// open and idle.
func OpenSnapshotReader(ctx context.Context, dsn, snapshotName, task string) (*SnapshotReader, error) {
	conn, err := pgconfig.Connect(ctx, dsn, "sluice snapshot "+task)
	if err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(snapshotName))
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("import snapshot %s: %w", snapshotName, err)
	}
	return &SnapshotReader{conn: conn, tx: tx}, nil
}

// Export exports the reader's snapshot again, under a new name that other
// sessions (on any node) import while this reader stays open: the
// snapshot a replication slot exported dies as soon as its connection
// starts streaming, this one lives as long as the reader.
func (r *SnapshotReader) Export(ctx context.Context) (string, error) {
	var name string
	if err := r.tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&name); err != nil {
		return "", fmt.Errorf("export the full sync's snapshot: %w", err)
	}
	return name, nil
}

// Alive checks that the reader's session, and so its snapshot, is still
// there.
func (r *SnapshotReader) Alive(ctx context.Context) error {
	_, err := r.tx.Exec(ctx, `SELECT 1`)
	return err
}

// Tx is the snapshot transaction, for reading the schema in the same cut.
func (r *SnapshotReader) Tx() pgx.Tx { return r.tx }

// Close ends the transaction and the session.
func (r *SnapshotReader) Close() {
	if r.conn != nil {
		_ = r.tx.Rollback(context.Background())
		r.conn.Close(context.Background())
		r.conn = nil
	}
}

// Chunk is a range of a table's heap pages: [FromPage, ToPage), ToPage < 0
// meaning to the end. Ranges of ctid are the one way to split every table,
// with or without a key, and PostgreSQL scans them directly (TID range
// scan).
type Chunk struct {
	Table    proto.TableID
	Columns  []string
	FromPage int64
	ToPage   int64
	Index    int // 0-based within the table
	Of       int
	Format   proto.CopyFormat
	// Filter is the table's row filter, a SQL condition ("" for none).
	Filter string
	// Partitioned: the table is a partitioned root, read with its
	// partitions; a page range then applies to every partition.
	Partitioned bool
	// Exprs are the table's transformed and added columns (task spec
	// transform, add_columns): the query computes them in place of, or
	// beside, the stored values.
	Exprs []proto.ColumnExpr
}

// PlanChunks splits a table into chunks of about pagesPerChunk pages of
// data. The last chunk is open-ended. A table whose values live
// mostly in TOAST has few heap pages for its size, so the split counts the
// TOAST table's bytes too: a 1 GB table of large documents is read in
// parallel like a 1 GB table of small rows.
func (r *SnapshotReader) PlanChunks(ctx context.Context, t *proto.TableDef, pagesPerChunk int64) ([]Chunk, error) {
	// A partitioned table's chunks are page ranges of every partition at
	// once: as many pages as its largest partition, as much data as all.
	var pages, totalPages int64
	err := r.tx.QueryRow(ctx, `SELECT coalesce(max(pg_relation_size(c.oid)), 0) / current_setting('block_size')::bigint,
		coalesce(sum(pg_relation_size(c.oid) + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)), 0) / current_setting('block_size')::bigint
		FROM pg_class c WHERE c.relkind <> 'p'
		  AND c.oid IN (SELECT pt.relid FROM pg_partition_tree($1::regclass) pt WHERE pt.isleaf UNION SELECT $1::regclass)`,
		pgx.Identifier{t.ID.Schema, t.ID.Name}.Sanitize()).Scan(&pages, &totalPages)
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", t.ID, err)
	}
	n := int64(1)
	if pagesPerChunk > 0 && totalPages > pagesPerChunk {
		n = (totalPages + pagesPerChunk - 1) / pagesPerChunk
	}
	if n > pages {
		n = max(pages, 1) // a chunk is at least one heap page
	}
	step := (pages + n - 1) / n
	cols := t.CopiedColumns()
	chunks := make([]Chunk, n)
	for i := range chunks {
		chunks[i] = Chunk{Table: t.ID, Columns: cols, FromPage: int64(i) * step, ToPage: int64(i+1) * step, Index: i, Of: int(n), Partitioned: t.Partitioned}
	}
	chunks[n-1].ToPage = -1
	return chunks, nil
}

// CopySQL is the COPY statement that reads a chunk; an error when its
// row filter could break out of its WHERE clause.
func (c Chunk) CopySQL() (string, error) {
	opts := ""
	if c.Format == proto.CopyBinary {
		opts = " (FORMAT binary)"
	}
	cols := make([]string, len(c.Columns))
	for i, name := range c.Columns {
		cols[i] = pgx.Identifier{name}.Sanitize()
		for _, e := range c.Exprs {
			if e.Column == name {
				if err := proto.CheckFilter(e.Expr); err != nil {
					return "", fmt.Errorf("%s: %w", e.Field, err)
				}
				cols[i] = e.SQL() + " AS " + cols[i]
			}
		}
	}
	table := pgx.Identifier{c.Table.Schema, c.Table.Name}.Sanitize()
	var conds []string
	if c.Of > 1 {
		conds = append(conds, fmt.Sprintf("ctid >= '(%d,0)'::tid", c.FromPage))
		if c.ToPage >= 0 {
			conds = append(conds, fmt.Sprintf("ctid < '(%d,0)'::tid", c.ToPage))
		}
	}
	if c.Filter != "" {
		cond, err := proto.FilterCondition(c.Filter)
		if err != nil {
			return "", fmt.Errorf("row filter of %s: %w", c.Table, err)
		}
		conds = append(conds, cond)
	}
	if len(conds) == 0 && !c.Partitioned && len(c.Exprs) == 0 {
		return fmt.Sprintf("COPY %s (%s) TO STDOUT%s", table, strings.Join(cols, ", "), opts), nil
	}
	// COPY cannot read a partitioned table directly: a query can.
	query := fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "), proto.ReadFrom(c.Table, c.Partitioned))
	if len(conds) > 0 {
		query += " WHERE " + strings.Join(conds, " AND ")
	}
	return fmt.Sprintf("COPY (%s) TO STDOUT%s", query, opts), nil
}

// Copy writes the chunk's rows to w in the chunk's COPY format and
// returns how many there were. Rows stream through; nothing is held in memory.
func (r *SnapshotReader) Copy(ctx context.Context, c Chunk, w io.Writer) (int64, error) {
	sql, err := c.CopySQL()
	if err != nil {
		return 0, err
	}
	tag, err := r.tx.Conn().PgConn().CopyTo(ctx, w, sql)
	if err != nil {
		return 0, fmt.Errorf("read %s chunk %d/%d: %w", c.Table, c.Index+1, c.Of, err)
	}
	return tag.RowsAffected(), nil
}
