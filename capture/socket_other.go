//go:build !linux

package capture

// kernelPending cannot ask the kernel here: as if more were coming.
func (c *pacedConn) kernelPending() bool { return true }
