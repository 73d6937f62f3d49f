package node

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Classify sorts a failure into the retry window it belongs to
// (invariant 7): lost or refused connections, server shutdowns and
// timeouts are connection failures; everything else (constraint
// violations, missing objects, permissions, recovered panics) is "other".
func Classify(err error) proto.ErrorKind {
	if err == nil {
		return ""
	}
	// A recovered panic is a bug, never a connection problem, whatever
	// its value (it is not unwrapped, but say so before anything else).
	var panicErr *safe.PanicError
	if errors.As(err, &panicErr) {
		return proto.ErrorOther
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"57": // operator intervention: admin/crash shutdown, cannot connect now
			return proto.ErrorConnection
		}
		if pgErr.Code == "53300" { // too many connections
			return proto.ErrorConnection
		}
		return proto.ErrorOther
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrTimeout),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return proto.ErrorConnection
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return proto.ErrorConnection
	}
	return proto.ErrorOther
}
