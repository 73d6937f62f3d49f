package emu

import "sync"

// faults counts the loads still to be failed on purpose; each Inject call
// adds to its counter and each load on the BE takes at most one fault.
type faults struct {
	mu             sync.Mutex
	publishTimeout int
	tooManyVers    int
	dropConn       int
}

type fault uint8

const (
	faultNone fault = iota
	faultPublishTimeout
	faultTooManyVersions
	faultDropConnection
)

// InjectPublishTimeout makes the next n loads commit but answer "Publish
// Timeout"; their rows become visible PublishDelay later (get_load_state
// says COMMITTED until then).
func (e *Emulator) InjectPublishTimeout(n int) { e.faults.add(&e.faults.publishTimeout, n) }

// InjectTooManyVersions makes the next n loads fail with Doris's -235
// "too many versions" error without loading anything.
func (e *Emulator) InjectTooManyVersions(n int) { e.faults.add(&e.faults.tooManyVers, n) }

// InjectDropConnection makes the BE read part of the next n loads' bodies
// and then close the connection without answering; nothing is loaded and
// the label stays free.
func (e *Emulator) InjectDropConnection(n int) { e.faults.add(&e.faults.dropConn, n) }

func (f *faults) add(c *int, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*c += n
}

// next takes the fault for the load arriving now; a dropped connection
// comes first, as it happens before a load could fail otherwise.
func (f *faults) next() fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.dropConn > 0:
		f.dropConn--
		return faultDropConnection
	case f.tooManyVers > 0:
		f.tooManyVers--
		return faultTooManyVersions
	case f.publishTimeout > 0:
		f.publishTimeout--
		return faultPublishTimeout
	}
	return faultNone
}
