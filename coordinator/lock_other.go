//go:build !unix

package coordinator

import "io"

type noLock struct{}

func (noLock) Close() error { return nil }

// lockDir does not lock where flock is missing; bbolt's lock (which waits)
// still keeps a second process out.
func lockDir(string) (io.Closer, error) { return noLock{}, nil }
