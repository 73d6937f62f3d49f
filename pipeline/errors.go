package pipeline

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/sluicedb/sluice/apply"
	"github.com/sluicedb/sluice/internal/pgconfig"
	"github.com/sluicedb/sluice/internal/safe"
	"github.com/sluicedb/sluice/proto"
)

// Classify sorts a failure into the retry window it belongs to
// (invariant 7): lost or refused connections, server shutdowns and
// timeouts are connection failures; everything else (constraint
// violations, missing objects, permissions, recovered panics) is "other".
// The destination's registry entry classifies its client library's
// errors, the source's are PostgreSQL's, the stream's NATS's.
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
	if kind := apply.ClassifyError(err); kind != "" {
		return kind
	}
	if kind := pgconfig.Classify(err); kind != "" {
		return kind
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrTimeout):
		return proto.ErrorConnection
	}
	return proto.ErrorOther
}
