package verify

import (
	"context"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/verify/pgverify"
)

// Window is slice k (from 0) of the n slices a table's key space is cut
// into for continuous verification, a round comparing one of them
// (Options.Range): for a key of one integer column, slices of one width
// between the source's smallest and largest key (two index lookups);
// for other keys, slices of about rows/n rows in key order (one pass
// over the keys at the source). The cuts are made in the order the
// comparison ranges keys at both ends (byte order when the collations
// differ), the first slice is unbounded below and the last above, so
// that the n of them cover every key of both ends, rows added since
// included. A slice past the keys there are (the table holds fewer rows
// than estimated) is the last one. A keyless table, or one slice, is the
// whole table.
func Window(ctx context.Context, src *pgverify.Side, dst apply.VerifyReader, t *proto.VerifyTable, rows int64, k, n int) (proto.KeyRange, error) {
	if n <= 1 || t.Keyless() {
		return proto.KeyRange{}, nil
	}
	order, err := byteOrder(ctx, src, dst, t)
	if err != nil {
		return proto.KeyRange{}, err
	}
	cuts, err := src.Split(ctx, t, order, proto.KeyRange{}, max(rows, int64(n)), n)
	if err != nil {
		return proto.KeyRange{}, err
	}
	slices := cutRange(proto.KeyRange{}, cuts)
	return slices[min(max(k, 0), len(slices)-1)], nil
}
