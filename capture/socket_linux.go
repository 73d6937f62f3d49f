package capture

import "golang.org/x/sys/unix"

// kernelPending reports whether the kernel holds bytes of the socket not
// read yet (unknown counts as yes).
func (c *pacedConn) kernelPending() bool {
	n, serr := 0, error(nil)
	if err := c.raw.Control(func(fd uintptr) {
		n, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	}); err != nil || serr != nil {
		return true
	}
	return n > 0
}
