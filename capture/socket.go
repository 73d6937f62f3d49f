package capture

import (
	"bufio"
	"context"
	"net"
	"syscall"
)

// pacedConn is the replication socket, able to hold its reader back while
// a backlog streams in.
//
// When capture catches up on a backlog it reads faster than the walsender
// decodes: every message the walsender sends finds this process waiting
// and wakes it, and on loopback the walsender pays for that wake-up in its
// send call. Measured here: the walsender spent three times the system
// CPU it spends with PostgreSQL's own subscriber, and became the
// bottleneck. SO_RCVLOWAT makes the kernel wake the reader only once
// highLowat bytes are waiting, so the walsender streams without waking
// anyone; the capture loop returns to waking on every byte (lowat 1) as
// soon as a short read deadline passes, so a trickle of changes keeps its
// latency.
type pacedConn struct {
	net.Conn
	raw  syscall.RawConn
	high bool
	// in reads the socket 64 KiB at a time: pgconn asks for 8 KiB, and a
	// backlog of small messages would otherwise cost a system call each
	// 8 KiB.
	in *bufio.Reader
}

const (
	// highLowat is the wake-up threshold while streaming a backlog.
	highLowat = 64 << 10
)

func dialPaced(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil // a Unix socket: no pacing
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	pc := &pacedConn{Conn: c, raw: raw}
	pc.in = bufio.NewReaderSize(socketReader{pc}, 64<<10)
	return pc, nil
}

// socketReader reads the socket itself, for the buffer.
type socketReader struct{ c *pacedConn }

func (r socketReader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	// A read that fills half the buffer had more waiting: a backlog is
	// streaming.
	if n >= len(p)/2 && n >= 16<<10 && !r.c.high {
		r.c.setLowat(true)
	}
	return n, err
}

func (c *pacedConn) Read(p []byte) (int, error) { return c.in.Read(p) }

// setLowat switches between waking on a backlog's worth of bytes and on
// every byte.
func (c *pacedConn) setLowat(high bool) {
	v := 1
	if high {
		v = highLowat
	}
	var serr error
	if err := c.raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, v)
	}); err == nil && serr == nil {
		c.high = high
	}
}

// pending reports whether bytes from the server wait to be read, in the
// buffer or in the kernel's socket.
func (c *pacedConn) pending() bool {
	if c.in.Buffered() > 0 {
		return true
	}
	return c.kernelPending()
}
