package postgres

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicedb/sluice/proto"
)

// BeginTable empties a table before its full-sync copy.
func (s *Sink) BeginTable(ctx context.Context, t proto.TableID) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return wrapTable(t, "empty", (&writer{tx: tx}).truncate(ctx, t))
	})
}

// CopyChunk loads COPY rows into the table. They come straight from the
// source's COPY TO: no value is parsed or converted on the way.
func (s *Sink) CopyChunk(ctx context.Context, t proto.TableID, columns []string, format proto.CopyFormat, r io.Reader) (int64, error) {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = ident(c)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	opts := ""
	if format == proto.CopyBinary {
		opts = " (FORMAT binary)"
	}
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, r, fmt.Sprintf("COPY %s (%s) FROM STDIN%s", tableName(t), strings.Join(cols, ", "), opts))
	if err != nil {
		return 0, wrapTable(t, "load", err)
	}
	return tag.RowsAffected(), nil
}

// FinishTable stores the snapshot position of a copied table.
func (s *Sink) FinishTable(ctx context.Context, task string, t proto.TableID, at proto.Position, epoch uint64) error {
	positions := s.allShards(map[string]proto.TableID{t.Key(): t}, map[string]proto.Position{t.Key(): at})
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return writeOffsets(ctx, tx, task, epoch, positions)
	})
	if err == nil {
		s.remember(positions)
	}
	return err
}

// CopyFormatFor picks binary COPY when the destination runs the source's
// major version and the table has built-in types only: the binary form is
// then the same on both sides, and cheaper to produce and to load.
func (s *Sink) CopyFormatFor(ctx context.Context, t *proto.TableDef, sourceMajor int) (proto.CopyFormat, error) {
	if !t.BuiltinTypesOnly() {
		return proto.CopyText, nil
	}
	var major int
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int / 10000`).Scan(&major); err != nil {
		return proto.CopyText, err
	}
	if major != sourceMajor {
		return proto.CopyText, nil
	}
	return proto.CopyBinary, nil
}
